-- +goose Up
-- Every user, idempotency key, operation, event and webhook subscription
-- belongs to a tenant; what existed before tenants belongs to "default".
-- The indexes lead with the tenant, so that each tenant's lists and
-- uniqueness rules are its own. See docs/storage.md.
ALTER TABLE users ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';

DROP INDEX users_email_key_live;
DROP INDEX users_create_time_id;
DROP INDEX users_email_key_id;
-- An address is unique among the tenant's users that are not deleted.
CREATE UNIQUE INDEX users_tenant_email_key_live ON users (tenant_id, email_key) WHERE state <> 'DELETED';
-- The two keyset orders of ListUsers, within a tenant.
CREATE INDEX users_tenant_create_time_id ON users (tenant_id, create_time, id);
CREATE INDEX users_tenant_email_key_id ON users (tenant_id, email_key, id);

-- Request ids are the caller's: unique within a tenant. Nothing refers to
-- idempotency_keys, so the table is rebuilt in place.
CREATE TABLE idempotency_keys_scoped (
    tenant_id   TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
INSERT INTO idempotency_keys_scoped (tenant_id, request_id, fingerprint, user_id, create_time)
SELECT 'default', request_id, fingerprint, user_id, create_time FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_scoped RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_user_id ON idempotency_keys (user_id);
CREATE INDEX idempotency_keys_create_time ON idempotency_keys (create_time);

-- operations.request_id was UNIQUE across all; it is unique per tenant now.
-- With foreign keys on, dropping operations would cascade to its chunks:
-- both tables are copied first, the child dropped before the parent.
CREATE TABLE operations_scoped (
    id          TEXT    PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    fingerprint BLOB    NOT NULL,
    total       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    UNIQUE (tenant_id, request_id)
);
INSERT INTO operations_scoped (id, tenant_id, request_id, fingerprint, total, chunks, create_time)
SELECT id, 'default', request_id, fingerprint, total, chunks, create_time FROM operations;
CREATE TABLE operation_chunks_scoped (
    operation_id TEXT    NOT NULL REFERENCES operations_scoped (id) ON DELETE CASCADE,
    chunk        INTEGER NOT NULL,
    imported     INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    failures     TEXT    NOT NULL DEFAULT '[]',
    finish_time  INTEGER NOT NULL,
    PRIMARY KEY (operation_id, chunk)
);
INSERT INTO operation_chunks_scoped SELECT operation_id, chunk, imported, failed, failures, finish_time FROM operation_chunks;
DROP TABLE operation_chunks;
DROP TABLE operations;
ALTER TABLE operations_scoped RENAME TO operations;
ALTER TABLE operation_chunks_scoped RENAME TO operation_chunks;

-- Each event names its tenant; a tenant's feed is read in feed order.
ALTER TABLE events ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
CREATE INDEX events_tenant_seq ON events (tenant_id, seq);

-- A subscription belongs to a tenant, and receives every tenant's events
-- when all_tenants is set.
ALTER TABLE webhooks ADD COLUMN tenant_id TEXT NOT NULL DEFAULT 'default';
ALTER TABLE webhooks ADD COLUMN all_tenants INTEGER NOT NULL DEFAULT 0;

-- +goose Down
-- Only the default tenant's data fits the schema before tenants: the rest
-- is dropped.
DELETE FROM webhooks WHERE tenant_id <> 'default';
ALTER TABLE webhooks DROP COLUMN all_tenants;
ALTER TABLE webhooks DROP COLUMN tenant_id;

DELETE FROM events WHERE tenant_id <> 'default';
DROP INDEX events_tenant_seq;
ALTER TABLE events DROP COLUMN tenant_id;

DELETE FROM operations WHERE tenant_id <> 'default';
CREATE TABLE operations_flat (
    id          TEXT    PRIMARY KEY,
    request_id  TEXT    NOT NULL UNIQUE,
    fingerprint BLOB    NOT NULL,
    total       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    create_time INTEGER NOT NULL
);
INSERT INTO operations_flat SELECT id, request_id, fingerprint, total, chunks, create_time FROM operations;
CREATE TABLE operation_chunks_flat (
    operation_id TEXT    NOT NULL REFERENCES operations_flat (id) ON DELETE CASCADE,
    chunk        INTEGER NOT NULL,
    imported     INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    failures     TEXT    NOT NULL DEFAULT '[]',
    finish_time  INTEGER NOT NULL,
    PRIMARY KEY (operation_id, chunk)
);
INSERT INTO operation_chunks_flat SELECT operation_id, chunk, imported, failed, failures, finish_time FROM operation_chunks;
DROP TABLE operation_chunks;
DROP TABLE operations;
ALTER TABLE operations_flat RENAME TO operations;
ALTER TABLE operation_chunks_flat RENAME TO operation_chunks;

DELETE FROM users WHERE tenant_id <> 'default';
CREATE TABLE idempotency_keys_flat (
    request_id  TEXT    PRIMARY KEY,
    fingerprint BLOB    NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time INTEGER NOT NULL
);
INSERT INTO idempotency_keys_flat SELECT request_id, fingerprint, user_id, create_time FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_flat RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_user_id ON idempotency_keys (user_id);
CREATE INDEX idempotency_keys_create_time ON idempotency_keys (create_time);

DROP INDEX users_tenant_email_key_live;
DROP INDEX users_tenant_create_time_id;
DROP INDEX users_tenant_email_key_id;
ALTER TABLE users DROP COLUMN tenant_id;
CREATE UNIQUE INDEX users_email_key_live ON users (email_key) WHERE state <> 'DELETED';
CREATE INDEX users_create_time_id ON users (create_time, id);
CREATE INDEX users_email_key_id ON users (email_key, id);
