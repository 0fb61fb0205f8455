-- +goose Up
-- Groups (users.Group) and their memberships, as docs/storage.md describes
-- them; times are integer microseconds since the Unix epoch. Unlike a user,
-- a group refers to its tenant by a foreign key: PurgeDeleted deletes a
-- tenant's groups before its row, and no purge can leave one behind.
CREATE TABLE groups (
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id),
    id           TEXT    PRIMARY KEY,
    display_name TEXT    NOT NULL,
    -- users.GroupNameKey(display_name), the folded name that ListGroups'
    -- filters compare.
    name_key     TEXT    NOT NULL,
    external_id  TEXT    NULL,
    description  TEXT    NOT NULL DEFAULT '',
    -- The rows of group_members of the group, kept by the statements that
    -- add and remove them, so that reading a group counts nothing.
    member_count INTEGER NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    create_time  INTEGER NOT NULL,
    update_time  INTEGER NOT NULL,
    revision     INTEGER NOT NULL
);

-- ListGroups pages through a tenant's groups by id; with a display name
-- to match (how identity providers find a group they provision), through
-- the groups of that name.
CREATE INDEX groups_tenant_id ON groups (tenant_id, id);
CREATE INDEX groups_tenant_name_key_id ON groups (tenant_id, name_key, id);
-- An external id is unique among the tenant's groups.
CREATE UNIQUE INDEX groups_tenant_external_id ON groups (tenant_id, external_id)
    WHERE external_id IS NOT NULL;

-- One row per member of a group, clustered by the primary key (WITHOUT
-- ROWID): a group's members lie together in user id order, and
-- ListGroupMembers reads a page as a range of them, however many members
-- the group has. Deleting a group or a user deletes its rows.
CREATE TABLE group_members (
    tenant_id   TEXT    NOT NULL,
    group_id    TEXT    NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (group_id, user_id)
) WITHOUT ROWID;

-- A user's groups in group id order (ListUserGroups), and the rows that
-- deleting the user (UpdateUser) or purging it (the cascade) removes.
CREATE INDEX group_members_user_id_group_id ON group_members (user_id, group_id);

-- Group events name their group. Those of the group itself (created,
-- updated, deleted) name no user: their user_id is ''.
ALTER TABLE events ADD COLUMN group_id TEXT NULL;

-- +goose Down
-- The release before knows user events only. The members go before their
-- groups: with foreign keys on, dropping a table deletes its rows first.
DELETE FROM events WHERE group_id IS NOT NULL;
ALTER TABLE events DROP COLUMN group_id;
DROP TABLE group_members;
DROP TABLE groups;
