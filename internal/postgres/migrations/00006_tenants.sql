-- +goose Up
-- Tenants (users.Tenant), as docs/storage.md describes them. The tenant
-- "default" always exists: the users of v1 and of the unversioned paths
-- are its users.
CREATE TABLE tenants (
    -- Ids sort byte by byte, as ListTenants' keyset pages need, whatever
    -- the database's collation.
    id                  text COLLATE "C" PRIMARY KEY,
    display_name        text             NOT NULL,
    state               text             NOT NULL CHECK (state IN ('ACTIVE', 'DELETED')),
    max_users           bigint           NOT NULL DEFAULT 0,
    requests_per_second double precision NOT NULL DEFAULT 0,
    create_time         timestamptz      NOT NULL,
    update_time         timestamptz      NOT NULL,
    delete_time         timestamptz      NULL,
    revision            bigint           NOT NULL
);

INSERT INTO tenants (id, display_name, state, create_time, update_time, revision)
VALUES ('default', 'Default', 'ACTIVE', date_trunc('milliseconds', now()), date_trunc('milliseconds', now()), 1);

-- +goose Down
DROP TABLE tenants;
