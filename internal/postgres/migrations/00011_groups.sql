-- +goose Up
-- Groups (users.Group) and their memberships, as docs/storage.md describes
-- them. Unlike a user, a group refers to its tenant by a foreign key: groups
-- are created seldom, so the key share lock that each insert takes on the
-- tenant's row holds up nothing, and no purge can leave a group behind
-- its tenant (PurgeDeleted deletes a tenant's groups before its row).
CREATE TABLE groups (
    tenant_id    text COLLATE "C" NOT NULL REFERENCES tenants (id),
    id           uuid             PRIMARY KEY,
    display_name text             NOT NULL,
    -- users.GroupNameKey(display_name), the folded name that ListGroups'
    -- filters compare.
    name_key     text COLLATE "C" NOT NULL,
    external_id  text COLLATE "C" NULL,
    description  text             NOT NULL DEFAULT '',
    -- The rows of group_members of the group, kept by the statements that
    -- add and remove them, so that reading a group counts nothing.
    member_count bigint           NOT NULL DEFAULT 0 CHECK (member_count >= 0),
    create_time  timestamptz      NOT NULL,
    update_time  timestamptz      NOT NULL,
    revision     bigint           NOT NULL
);

-- ListGroups pages through a tenant's groups by id; with a display name
-- to match (how identity providers find a group they provision), through
-- the groups of that name.
CREATE INDEX groups_tenant_id ON groups (tenant_id, id);
CREATE INDEX groups_tenant_name_key_id ON groups (tenant_id, name_key, id);
-- An external id is unique among the tenant's groups.
CREATE UNIQUE INDEX groups_tenant_external_id ON groups (tenant_id, external_id)
    WHERE external_id IS NOT NULL;

-- One row per member of a group. The primary key lists a group's members in
-- user id order: ListGroupMembers reads a page as a range of it, however
-- many members the group has. Deleting a group or a user deletes its rows.
-- There is no foreign key to tenants, as for users: the tenant is the
-- group's.
CREATE TABLE group_members (
    tenant_id   text COLLATE "C" NOT NULL,
    group_id    uuid             NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id     uuid             NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    create_time timestamptz      NOT NULL,
    PRIMARY KEY (group_id, user_id)
);

-- A user's groups in group id order (ListUserGroups), and the rows that
-- deleting the user (UpdateUser) or purging it (the cascade) removes.
CREATE INDEX group_members_user_id_group_id ON group_members (user_id, group_id);

-- Group events name their group; those of the group itself (created,
-- updated, deleted) name no user.
ALTER TABLE events ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE events ADD COLUMN group_id uuid NULL;

-- +goose Down
-- The release before knows user events only.
DELETE FROM events WHERE group_id IS NOT NULL;
ALTER TABLE events DROP COLUMN group_id;
ALTER TABLE events ALTER COLUMN user_id SET NOT NULL;
DROP TABLE group_members;
DROP TABLE groups;
