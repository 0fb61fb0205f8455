-- +goose Up
-- Users, as docs/storage.md describes them. Times are integer microseconds
-- since the Unix epoch; labels are a JSON object, '{}' when empty.
CREATE TABLE users (
    id           TEXT    PRIMARY KEY,
    email        TEXT    NOT NULL,
    email_key    TEXT    NOT NULL,
    display_name TEXT    NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('ACTIVE', 'SUSPENDED', 'DELETED')),
    labels       TEXT    NOT NULL DEFAULT '{}',
    create_time  INTEGER NOT NULL,
    update_time  INTEGER NOT NULL,
    delete_time  INTEGER,
    revision     INTEGER NOT NULL
);

-- An address is unique among the users that are not deleted.
CREATE UNIQUE INDEX users_email_key_live ON users (email_key) WHERE state <> 'DELETED';

-- The two keyset orders of ListUsers.
CREATE INDEX users_create_time_id ON users (create_time, id);
CREATE INDEX users_email_key_id ON users (email_key, id);

-- Which user each idempotent CreateUser request created.
CREATE TABLE idempotency_keys (
    request_id  TEXT    PRIMARY KEY,
    fingerprint BLOB    NOT NULL,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time INTEGER NOT NULL
);

-- Purging a user cascades to its keys; expiring keys scans by age.
CREATE INDEX idempotency_keys_user_id ON idempotency_keys (user_id);
CREATE INDEX idempotency_keys_create_time ON idempotency_keys (create_time);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE users;
