-- +goose Up
-- Profile fields, tenant-defined attributes and search (docs/storage.md).
ALTER TABLE users ADD COLUMN external_id    TEXT    NULL;
ALTER TABLE users ADD COLUMN given_name     TEXT    NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN family_name    TEXT    NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN phone_number   TEXT    NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN phone_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locale         TEXT    NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN time_zone      TEXT    NOT NULL DEFAULT '';
-- A JSON object, '{}' when empty.
ALTER TABLE users ADD COLUMN attributes     TEXT    NOT NULL DEFAULT '{}';
-- The folded text that search matches (users.SearchKey); migration 00009
-- fills it for the users that exist.
ALTER TABLE users ADD COLUMN search_key     TEXT    NOT NULL DEFAULT '';

-- An external id is unique among the tenant's users that are not deleted;
-- LookupUser probes it.
CREATE UNIQUE INDEX users_tenant_external_id_live ON users (tenant_id, external_id)
    WHERE state <> 'DELETED' AND external_id IS NOT NULL;

-- Substring search: an FTS5 index of the search key's trigrams, whose
-- rows are the users' rowids (external content), kept by triggers.
CREATE VIRTUAL TABLE users_search USING fts5(
    search_key, content = 'users', content_rowid = 'rowid', tokenize = 'trigram'
);
-- Index the users that exist (their keys are '' until migration 00009):
-- the update trigger removes a user's old key from the index, which must
-- be there to remove.
INSERT INTO users_search (users_search) VALUES ('rebuild');
-- +goose StatementBegin
CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_search (rowid, search_key) VALUES (new.rowid, new.search_key);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_search (users_search, rowid, search_key) VALUES ('delete', old.rowid, old.search_key);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER users_search_update AFTER UPDATE OF search_key ON users
WHEN old.search_key <> new.search_key BEGIN
    INSERT INTO users_search (users_search, rowid, search_key) VALUES ('delete', old.rowid, old.search_key);
    INSERT INTO users_search (rowid, search_key) VALUES (new.rowid, new.search_key);
END;
-- +goose StatementEnd

-- A tenant's JSON Schema of its users' attributes, NULL for none.
ALTER TABLE tenants ADD COLUMN attributes_schema TEXT NULL;

-- Schema checks (users.SchemaCheck) are operations too: kind tells them
-- from imports. A check has one chunk, which holds its counts (imported:
-- users checked, failed: users violating) and samples (failures); its
-- request_id is 'schema check <id>', which no import's can be.
ALTER TABLE operations ADD COLUMN kind TEXT NOT NULL DEFAULT 'import'
    CHECK (kind IN ('import', 'schema_check'));
-- The id of the tenant's latest schema check, NULL before its first.
ALTER TABLE tenants ADD COLUMN attributes_schema_check TEXT NULL;

-- +goose Down
ALTER TABLE tenants DROP COLUMN attributes_schema_check;
-- The release before knows imports only.
DELETE FROM operations WHERE kind <> 'import';
ALTER TABLE operations DROP COLUMN kind;
ALTER TABLE tenants DROP COLUMN attributes_schema;
DROP TRIGGER users_search_update;
DROP TRIGGER users_search_delete;
DROP TRIGGER users_search_insert;
DROP TABLE users_search;
DROP INDEX users_tenant_external_id_live;
ALTER TABLE users DROP COLUMN search_key;
ALTER TABLE users DROP COLUMN attributes;
ALTER TABLE users DROP COLUMN time_zone;
ALTER TABLE users DROP COLUMN locale;
ALTER TABLE users DROP COLUMN phone_verified;
ALTER TABLE users DROP COLUMN email_verified;
ALTER TABLE users DROP COLUMN phone_number;
ALTER TABLE users DROP COLUMN family_name;
ALTER TABLE users DROP COLUMN given_name;
ALTER TABLE users DROP COLUMN external_id;
