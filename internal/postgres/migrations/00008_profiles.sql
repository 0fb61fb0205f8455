-- +goose Up
-- Profile fields, tenant-defined attributes and search (docs/storage.md).
-- The columns have constant defaults: adding them rewrites no row.
-- pg_trgm ships with PostgreSQL's contrib modules (Debian's postgresql
-- package has it); creating it needs the CREATE privilege on the database.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

ALTER TABLE users
    ADD COLUMN external_id    text COLLATE "C" NULL,
    ADD COLUMN given_name     text    NOT NULL DEFAULT '',
    ADD COLUMN family_name    text    NOT NULL DEFAULT '',
    ADD COLUMN phone_number   text    NOT NULL DEFAULT '',
    ADD COLUMN email_verified boolean NOT NULL DEFAULT false,
    ADD COLUMN phone_verified boolean NOT NULL DEFAULT false,
    ADD COLUMN locale         text    NOT NULL DEFAULT '',
    ADD COLUMN time_zone      text    NOT NULL DEFAULT '',
    ADD COLUMN attributes     jsonb   NOT NULL DEFAULT '{}',
    -- The folded text that search matches (users.SearchKey); migration
    -- 00009 fills it for the users that exist.
    ADD COLUMN search_key     text COLLATE "C" NOT NULL DEFAULT '';

-- An external id is unique among the tenant's users that are not deleted;
-- LookupUser probes it.
CREATE UNIQUE INDEX users_tenant_external_id_live ON users (tenant_id, external_id)
    WHERE state <> 'DELETED' AND external_id IS NOT NULL;
-- Substring search: trigrams of the search key.
CREATE INDEX users_search_key_trgm ON users USING gin (search_key gin_trgm_ops);
-- Filters on attributes by equality (@>).
CREATE INDEX users_attributes ON users USING gin (attributes jsonb_path_ops);

-- A tenant's JSON Schema of its users' attributes, NULL for none.
ALTER TABLE tenants ADD COLUMN attributes_schema text NULL;

-- Schema checks (users.SchemaCheck) are operations too: kind tells them
-- from imports. A check has one chunk, which holds its counts (imported:
-- users checked, failed: users violating) and samples (failures); its
-- request_id is 'schema check <id>', which no import's can be.
ALTER TABLE operations ADD COLUMN kind text NOT NULL DEFAULT 'import'
    CHECK (kind IN ('import', 'schema_check'));
-- The id of the tenant's latest schema check, NULL before its first.
ALTER TABLE tenants ADD COLUMN attributes_schema_check uuid NULL;

-- +goose Down
ALTER TABLE tenants DROP COLUMN attributes_schema_check;
-- The release before knows imports only.
DELETE FROM operations WHERE kind <> 'import';
ALTER TABLE operations DROP COLUMN kind;
ALTER TABLE tenants DROP COLUMN attributes_schema;
DROP INDEX users_attributes;
DROP INDEX users_search_key_trgm;
DROP INDEX users_tenant_external_id_live;
ALTER TABLE users
    DROP COLUMN search_key,
    DROP COLUMN attributes,
    DROP COLUMN time_zone,
    DROP COLUMN locale,
    DROP COLUMN phone_verified,
    DROP COLUMN email_verified,
    DROP COLUMN phone_number,
    DROP COLUMN family_name,
    DROP COLUMN given_name,
    DROP COLUMN external_id;
