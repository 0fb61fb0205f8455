-- +goose Up
-- Tenants (users.Tenant), as docs/storage.md describes them; times are
-- integer microseconds since the Unix epoch. The tenant "default" always
-- exists: the users of v1 and of the unversioned paths are its users.
CREATE TABLE tenants (
    id                  TEXT    PRIMARY KEY,
    display_name        TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('ACTIVE', 'DELETED')),
    max_users           INTEGER NOT NULL DEFAULT 0,
    requests_per_second REAL    NOT NULL DEFAULT 0,
    create_time         INTEGER NOT NULL,
    update_time         INTEGER NOT NULL,
    delete_time         INTEGER,
    revision            INTEGER NOT NULL
);

INSERT INTO tenants (id, display_name, state, create_time, update_time, revision)
VALUES ('default', 'Default', 'ACTIVE',
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER),
        CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER), 1);

-- +goose Down
DROP TABLE tenants;
