-- +goose Up
-- Search reads its tiers in id order (usersql.SearchPage,
-- docs/storage.md): from the FTS5 trigram index (users_search), or by
-- walking the tenant's users in id order, from this index alone: it holds
-- what a walk tests.
CREATE INDEX users_tenant_id_search ON users (tenant_id, id, search_key, state);

-- +goose Down
DROP INDEX users_tenant_id_search;
