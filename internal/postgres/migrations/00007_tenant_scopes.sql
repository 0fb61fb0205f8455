-- +goose Up
-- Every user, idempotency key, operation, event and webhook subscription
-- belongs to a tenant; what existed before tenants belongs to "default".
-- A column added with a constant default is not rewritten (the default is
-- kept in the catalog), so this runs in moments on a large table; the
-- defaults are dropped after, so that every insert names its tenant. There
-- is no foreign key to tenants: each insert would lock the tenant's row,
-- and every create of a busy tenant would queue on it. The indexes lead
-- with the tenant. See docs/storage.md.
ALTER TABLE users ADD COLUMN tenant_id text COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE users ALTER COLUMN tenant_id DROP DEFAULT;

DROP INDEX users_email_key_live;
DROP INDEX users_create_time_id;
DROP INDEX users_email_key_id;
CREATE UNIQUE INDEX users_tenant_email_key_live ON users (tenant_id, email_key) WHERE state <> 'DELETED';
CREATE INDEX users_tenant_create_time_id ON users (tenant_id, create_time, id);
CREATE INDEX users_tenant_email_key_id ON users (tenant_id, email_key, id);

ALTER TABLE idempotency_keys ADD COLUMN tenant_id text COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE idempotency_keys ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (tenant_id, request_id);

ALTER TABLE operations ADD COLUMN tenant_id text COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE operations ALTER COLUMN tenant_id DROP DEFAULT;
ALTER TABLE operations DROP CONSTRAINT operations_request_id_key;
ALTER TABLE operations ADD CONSTRAINT operations_tenant_request_id_key UNIQUE (tenant_id, request_id);

ALTER TABLE events ADD COLUMN tenant_id text COLLATE "C" NOT NULL DEFAULT 'default';
ALTER TABLE events ALTER COLUMN tenant_id DROP DEFAULT;
CREATE INDEX events_tenant_txid_seq ON events (tenant_id, txid, seq);

ALTER TABLE webhooks
    ADD COLUMN tenant_id   text COLLATE "C" NOT NULL DEFAULT 'default',
    ADD COLUMN all_tenants boolean          NOT NULL DEFAULT false;
ALTER TABLE webhooks ALTER COLUMN tenant_id DROP DEFAULT;

-- The planner learns the new column at once, rather than at autovacuum's
-- next pass: without statistics it may read a tenant's index where the
-- primary key is better. ANALYZE samples; it does not read whole tables.
ANALYZE users, events;

-- +goose Down
-- Only the default tenant's data fits the schema before tenants: the rest
-- is dropped.
DELETE FROM webhooks WHERE tenant_id <> 'default';
ALTER TABLE webhooks DROP COLUMN all_tenants, DROP COLUMN tenant_id;

DELETE FROM events WHERE tenant_id <> 'default';
ALTER TABLE events DROP COLUMN tenant_id;

DELETE FROM operations WHERE tenant_id <> 'default';
ALTER TABLE operations DROP CONSTRAINT operations_tenant_request_id_key;
ALTER TABLE operations DROP COLUMN tenant_id;
ALTER TABLE operations ADD CONSTRAINT operations_request_id_key UNIQUE (request_id);

DELETE FROM users WHERE tenant_id <> 'default';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys DROP COLUMN tenant_id;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (request_id);

ALTER TABLE users DROP COLUMN tenant_id;
CREATE UNIQUE INDEX users_email_key_live ON users (email_key) WHERE state <> 'DELETED';
CREATE INDEX users_create_time_id ON users (create_time, id);
CREATE INDEX users_email_key_id ON users (email_key, id);
