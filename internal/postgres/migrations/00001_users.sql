-- +goose Up
-- Users, as docs/storage.md describes them. email_key sorts bytewise
-- (COLLATE "C") so both stores page through addresses in the same order;
-- labels are a JSON object, '{}' when empty.
CREATE TABLE users (
    id           uuid        PRIMARY KEY,
    email        text        NOT NULL,
    email_key    text        COLLATE "C" NOT NULL,
    display_name text        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('ACTIVE', 'SUSPENDED', 'DELETED')),
    labels       jsonb       NOT NULL DEFAULT '{}',
    create_time  timestamptz NOT NULL,
    update_time  timestamptz NOT NULL,
    delete_time  timestamptz NULL,
    revision     bigint      NOT NULL
);

-- An address is unique among the users that are not deleted.
CREATE UNIQUE INDEX users_email_key_live ON users (email_key) WHERE state <> 'DELETED';

-- The two keyset orders of ListUsers.
CREATE INDEX users_create_time_id ON users (create_time, id);
CREATE INDEX users_email_key_id ON users (email_key, id);

-- Which user each idempotent CreateUser request created.
CREATE TABLE idempotency_keys (
    request_id  text        PRIMARY KEY,
    fingerprint bytea       NOT NULL,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time timestamptz NOT NULL
);

-- Purging a user cascades to its keys; expiring keys scans by age.
CREATE INDEX idempotency_keys_user_id ON idempotency_keys (user_id);
CREATE INDEX idempotency_keys_create_time ON idempotency_keys (create_time);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE users;
