-- +goose Up
-- Long-running operations (bulk imports), as docs/storage.md describes them.
CREATE TABLE operations (
    id          uuid        PRIMARY KEY,
    request_id  text        NOT NULL UNIQUE,
    fingerprint bytea       NOT NULL,
    total       integer     NOT NULL,
    chunks      integer     NOT NULL,
    create_time timestamptz NOT NULL
);

-- One row per finished chunk of an operation: the operation's progress is
-- summed over them. failures is a JSON array of {"index": n, "reason": "…"}
-- sorted by index, '[]' when empty.
CREATE TABLE operation_chunks (
    operation_id uuid        NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    chunk        integer     NOT NULL,
    imported     integer     NOT NULL,
    failed       integer     NOT NULL,
    failures     jsonb       NOT NULL DEFAULT '[]',
    finish_time  timestamptz NOT NULL,
    PRIMARY KEY (operation_id, chunk)
);

-- The purge finds the users deleted longest ago without scanning the live
-- ones.
CREATE INDEX users_deleted_delete_time ON users (delete_time) WHERE state = 'DELETED';

-- +goose Down
DROP INDEX users_deleted_delete_time;
DROP TABLE operation_chunks;
DROP TABLE operations;
