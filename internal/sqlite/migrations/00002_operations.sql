-- +goose Up
-- Long-running operations (bulk imports), as docs/storage.md describes them.
-- Times are integer microseconds since the Unix epoch.
CREATE TABLE operations (
    id          TEXT    PRIMARY KEY,
    request_id  TEXT    NOT NULL UNIQUE,
    fingerprint BLOB    NOT NULL,
    total       INTEGER NOT NULL,
    chunks      INTEGER NOT NULL,
    create_time INTEGER NOT NULL
);

-- One row per finished chunk of an operation: the operation's progress is
-- summed over them. failures is a JSON array of {"index": n, "reason": "…"}
-- sorted by index, '[]' when empty.
CREATE TABLE operation_chunks (
    operation_id TEXT    NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    chunk        INTEGER NOT NULL,
    imported     INTEGER NOT NULL,
    failed       INTEGER NOT NULL,
    failures     TEXT    NOT NULL DEFAULT '[]',
    finish_time  INTEGER NOT NULL,
    PRIMARY KEY (operation_id, chunk)
);

-- The purge finds the users deleted longest ago without scanning the live
-- ones.
CREATE INDEX users_deleted_delete_time ON users (delete_time) WHERE state = 'DELETED';

-- +goose Down
DROP INDEX users_deleted_delete_time;
DROP TABLE operation_chunks;
DROP TABLE operations;
