-- +goose Up
-- Search reads its tiers from indexes in id order (usersql.SearchPage,
-- docs/storage.md): the exact and prefix tiers from a B-tree per folded
-- field, kept by Postgres from the search key (its fields are separated by
-- U+001F: field n is split_part n + 1), each entry ending with the user's
-- id; walks of the tenant's users from (tenant_id, id), which holds what a
-- walk tests. Adding the columns rewrites the table once.
ALTER TABLE users
    ADD COLUMN search_email        text COLLATE "C" GENERATED ALWAYS AS (split_part(search_key, E'\x1f', 2)) STORED,
    ADD COLUMN search_display_name text COLLATE "C" GENERATED ALWAYS AS (split_part(search_key, E'\x1f', 3)) STORED,
    ADD COLUMN search_given_name   text COLLATE "C" GENERATED ALWAYS AS (split_part(search_key, E'\x1f', 4)) STORED,
    ADD COLUMN search_family_name  text COLLATE "C" GENERATED ALWAYS AS (split_part(search_key, E'\x1f', 5)) STORED,
    ADD COLUMN search_external_id  text COLLATE "C" GENERATED ALWAYS AS (split_part(search_key, E'\x1f', 6)) STORED;
CREATE INDEX users_tenant_search_email ON users (tenant_id, search_email, id);
CREATE INDEX users_tenant_search_display_name ON users (tenant_id, search_display_name, id);
CREATE INDEX users_tenant_search_given_name ON users (tenant_id, search_given_name, id);
CREATE INDEX users_tenant_search_family_name ON users (tenant_id, search_family_name, id);
CREATE INDEX users_tenant_search_external_id ON users (tenant_id, search_external_id, id);
CREATE INDEX users_tenant_id_search ON users (tenant_id, id) INCLUDE (search_key, state);

-- +goose Down
DROP INDEX users_tenant_id_search;
DROP INDEX users_tenant_search_external_id;
DROP INDEX users_tenant_search_family_name;
DROP INDEX users_tenant_search_given_name;
DROP INDEX users_tenant_search_display_name;
DROP INDEX users_tenant_search_email;
ALTER TABLE users
    DROP COLUMN search_external_id,
    DROP COLUMN search_family_name,
    DROP COLUMN search_given_name,
    DROP COLUMN search_display_name,
    DROP COLUMN search_email;
