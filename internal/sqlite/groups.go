package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Groups: users.GroupStore. Groups change seldom next to users, so their
// statements are not kept prepared, but for the events' insert, which
// every change shares (stmtInsertEvent). Writes run in writer transactions,
// which the single writer serialises: reading a group in one is as good as
// locking it. A group's member_count is kept by the statements that add
// and remove its rows of group_members, in their transaction.

const selectGroups = "SELECT " + usersql.GroupColumns + " FROM groups "

var (
	// selectGroup reads the tenant's (?1) group with the id ?2 while the
	// tenant is live.
	selectGroup = selectGroups + "WHERE id = ?2 AND tenant_id = ?1 AND " + liveTenant

	insertGroup = "INSERT INTO groups (tenant_id, id, display_name, name_key, external_id, description, member_count, " +
		"create_time, update_time, revision) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"

	// updateGroup writes the fields a caller sets; the members' count is
	// the membership statements'.
	updateGroup = "UPDATE groups SET display_name = ?2, name_key = ?3, external_id = ?4, description = ?5, " +
		"update_time = ?6, revision = revision + 1 WHERE id = ?1"

	// countMembers adds ?2 (negative: removes) to the members' count of
	// the group ?1.
	countMembers = "UPDATE groups SET member_count = member_count + ?2 WHERE id = ?1"

	// memberStates reads the id and state of the tenant's (?1) users whose
	// ids are in the JSON array ?2, by the primary key.
	memberStates = "SELECT id, state FROM users WHERE id IN (SELECT value FROM json_each(?2)) AND +tenant_id = ?1"

	// insertMember inserts a membership unless it exists; only the
	// primary key's conflict is ignored (a foreign key's is an error).
	insertMember = "INSERT INTO group_members (tenant_id, group_id, user_id, create_time) VALUES (?1, ?2, ?3, ?4) " +
		"ON CONFLICT (group_id, user_id) DO NOTHING"

	deleteMember = "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2"

	// listMembers reads a page of the group ?2's members after the user
	// id ?3 from the primary key, while the group is the tenant's (?1) and
	// the tenant is live: both are conditions on constants, which SQLite
	// evaluates once.
	listMembers = "SELECT user_id, create_time FROM group_members WHERE group_id = ?2 AND user_id > ?3 " +
		"AND (SELECT tenant_id FROM groups WHERE id = ?2) = ?1 AND " + liveTenant + " ORDER BY user_id LIMIT ?4"

	// groupExists reads whether the tenant's (?1) group ?2 exists while
	// the tenant is live.
	groupExists = "SELECT EXISTS (SELECT 1 FROM groups WHERE id = ?2 AND tenant_id = ?1) AND " + liveTenant

	// listUserGroups reads a page of the groups of the tenant's (?1) user
	// ?2 after the group id ?3: the page of memberships from
	// group_members_user_id_group_id, then each group by its primary key.
	listUserGroups = selectGroups + "WHERE id IN (SELECT group_id FROM group_members " +
		"WHERE user_id = ?2 AND group_id > ?3 AND tenant_id = ?1 ORDER BY group_id LIMIT ?4) " +
		"AND tenant_id = ?1 AND " + liveTenant + " ORDER BY id"

	// The statements with which UpdateUser takes a user that it deletes
	// (?1) out of its groups: its groups in id order, their counts
	// lowered, its rows deleted.
	userGroups      = "SELECT group_id FROM group_members WHERE user_id = ?1 ORDER BY group_id"
	leaveGroupCount = "UPDATE groups SET member_count = member_count - 1 " +
		"WHERE id IN (SELECT group_id FROM group_members WHERE user_id = ?1)"
	deleteUserMembers = "DELETE FROM group_members WHERE user_id = ?1"
)

// CreateGroup inserts g and its group.created event in one writer
// transaction; see users.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g *users.Group) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", g.ID)
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return nil, err
	}
	tenants, err := s.tenantStmts(ctx)
	if err != nil {
		return nil, err
	}
	created := *g
	created.MemberCount = 0
	usersql.StoredGroup(&created)

	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tenants.alive(ctx, tx, g.Tenant); err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, insertGroup, created.Tenant, created.ID, created.DisplayName, users.GroupNameKey(created.DisplayName),
		usersql.NullText(created.ExternalID), created.Description, created.MemberCount,
		created.CreateTime.UnixMicro(), created.UpdateTime.UnixMicro(), created.Revision)
	if err != nil {
		return nil, groupWriteError(err)
	}
	if err := appendEvents(ctx, tx.StmtContext(ctx, insertEvent), users.GroupEvent(ctx, users.EventGroupCreated, &created, nil)); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return &created, nil
}

// GetGroup reads the tenant's group from the readers; see
// users.GroupStore.
func (s *Store) GetGroup(ctx context.Context, tenant, id string) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	g, err := scanGroup(s.db.reader.QueryRowContext(ctx, selectGroup, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return g, err
}

// ListGroups reads a page of the tenant's groups, in q's order, from the
// readers, with the SQL of usersql.GroupListClause; see users.GroupStore.
func (s *Store) ListGroups(ctx context.Context, q users.GroupQuery) (_ []*users.Group, err error) {
	defer wrap(ctx, &err, "list groups of %s", q.Tenant)
	q.Limit = max(q.Limit, 0) // SQLite reads a negative LIMIT as none
	clause, args := usersql.GroupListClause(usersql.SQLite, q)
	var gs []*users.Group
	err = s.readPage(ctx, exportTenant, []any{q.Tenant}, func(tx *sql.Tx) (n int, err error) {
		rows, err := tx.QueryContext(ctx, selectGroups+clause, args...)
		if err != nil {
			return 0, err
		}
		gs, err = collect(rows, make([]*users.Group, 0, min(q.Limit, 1000)), scanGroup)
		return len(gs), err
	})
	return gs, err
}

// UpdateGroup reads the group in a writer transaction, lets fn change a
// copy and writes it back, with a group.updated event when a field
// changed; see users.GroupStore. Like UpdateUser, it writes (and counts a
// revision) whatever fn changed.
func (s *Store) UpdateGroup(ctx context.Context, tenant, id string, fn func(*users.Group) error) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	old, err := readGroup(ctx, tx, tenant, id)
	if err != nil {
		return nil, err
	}
	g := *old
	if err := fn(&g); err != nil {
		return nil, usersql.FnError(err)
	}
	// The fields UpdateGroup does not write keep their stored values.
	g.Tenant, g.ID, g.CreateTime, g.MemberCount, g.Revision = old.Tenant, old.ID, old.CreateTime, old.MemberCount, old.Revision+1
	usersql.StoredGroup(&g)
	_, err = tx.ExecContext(ctx, updateGroup, id, g.DisplayName, users.GroupNameKey(g.DisplayName), usersql.NullText(g.ExternalID),
		g.Description, g.UpdateTime.UnixMicro())
	if err != nil {
		return nil, groupWriteError(err)
	}
	if paths := users.GroupChangedPaths(old, &g); len(paths) > 0 {
		if err := appendEvents(ctx, tx.StmtContext(ctx, insertEvent), users.GroupEvent(ctx, users.EventGroupUpdated, &g, paths)); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return &g, nil
}

// DeleteGroup reads the group in a writer transaction, lets check refuse,
// and deletes it, its memberships by cascade, with a group.deleted event;
// see users.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, tenant, id string, check func(*users.Group) error) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	g, err := readGroup(ctx, tx, tenant, id)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(g); err != nil {
			return nil, usersql.FnError(err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM groups WHERE id = ?1", id); err != nil {
		return nil, err
	}
	if err := appendEvents(ctx, tx.StmtContext(ctx, insertEvent), users.GroupEvent(ctx, users.EventGroupDeleted, g, nil)); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return g, nil
}

// AddGroupMembers checks the users and inserts the memberships that do
// not exist yet, with their events and the group's new count, in one
// writer transaction; see users.GroupStore.
func (s *Store) AddGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return nil, err
	}
	ids := usersql.UniqueIDs(userIDs)
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	g, err := readGroup(ctx, tx, tenant, id)
	if err != nil || len(ids) == 0 {
		return g, err
	}
	rows, err := tx.QueryContext(ctx, memberStates, tenant, string(idsJSON))
	if err != nil {
		return nil, err
	}
	found, err := collect(rows, make([]memberState, 0, len(ids)), scanMemberState)
	if err != nil {
		return nil, err
	}
	states := make(map[string]users.State, len(found))
	for _, m := range found {
		states[m.id] = m.state
	}
	if err := usersql.MemberViolations(userIDs, func(id string) (users.State, bool) {
		st, ok := states[id]
		return st, ok
	}); err != nil {
		return nil, err
	}

	ins, err := tx.PrepareContext(ctx, insertMember)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	now := users.Now().UnixMicro()
	added := make(map[string]bool, len(ids))
	for _, uid := range ids {
		res, err := ins.ExecContext(ctx, tenant, id, uid, now)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", uid, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n > 0 {
			added[uid] = true
		}
	}
	if err := s.countMembers(ctx, tx, insertEvent, g, users.EventGroupMemberAdded, ids, added); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return g, nil
}

// RemoveGroupMembers deletes the memberships that exist, with their events
// and the group's new count, in one writer transaction; see
// users.GroupStore.
func (s *Store) RemoveGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return nil, err
	}
	ids := usersql.UniqueIDs(userIDs)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	g, err := readGroup(ctx, tx, tenant, id)
	if err != nil || len(ids) == 0 {
		return g, err
	}
	del, err := tx.PrepareContext(ctx, deleteMember)
	if err != nil {
		return nil, err
	}
	defer del.Close()
	removed := make(map[string]bool, len(ids))
	for _, uid := range ids {
		res, err := del.ExecContext(ctx, id, uid)
		if err != nil {
			return nil, fmt.Errorf("member %s: %w", uid, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n > 0 {
			removed[uid] = true
		}
	}
	if err := s.countMembers(ctx, tx, insertEvent, g, users.EventGroupMemberRemoved, ids, removed); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return g, nil
}

// countMembers ends a change of g's members within tx: the users of ids
// in changed were added (typ users.EventGroupMemberAdded) or removed. It
// moves g's count, stored and in g, and appends their events with
// insertEvent, in the order of ids.
func (s *Store) countMembers(ctx context.Context, tx *sql.Tx, insertEvent *sql.Stmt, g *users.Group, typ users.EventType, ids []string, changed map[string]bool) error {
	if len(changed) == 0 {
		return nil
	}
	n := int64(len(changed))
	if typ == users.EventGroupMemberRemoved {
		n = -n
	}
	if _, err := tx.ExecContext(ctx, countMembers, g.ID, n); err != nil {
		return err
	}
	g.MemberCount += n
	evs := usersql.MemberEvents(ctx, typ, g.Tenant, g.ID, ids, func(id string) bool { return changed[id] })
	return appendEvents(ctx, tx.StmtContext(ctx, insertEvent), evs...)
}

// ListGroupMembers reads a page of the group's members from the readers;
// see users.GroupStore.
func (s *Store) ListGroupMembers(ctx context.Context, tenant, id, after string, limit int) (_ []users.GroupMember, err error) {
	defer wrap(ctx, &err, "members of group %s", id)
	limit = max(limit, 0) // SQLite reads a negative LIMIT as none
	var ms []users.GroupMember
	err = s.readPage(ctx, groupExists, []any{tenant, id}, func(tx *sql.Tx) (n int, err error) {
		rows, err := tx.QueryContext(ctx, listMembers, tenant, id, after, limit)
		if err != nil {
			return 0, err
		}
		ms, err = collect(rows, make([]users.GroupMember, 0, min(limit, 1000)), scanMember)
		return len(ms), err
	})
	return ms, err
}

// ListUserGroups reads a page of the user's groups from the readers; see
// users.GroupStore.
func (s *Store) ListUserGroups(ctx context.Context, tenant, userID, after string, limit int) (_ []*users.Group, err error) {
	defer wrap(ctx, &err, "groups of user %s", userID)
	limit = max(limit, 0) // SQLite reads a negative LIMIT as none
	var gs []*users.Group
	err = s.readPage(ctx, exportTenant, []any{tenant}, func(tx *sql.Tx) (n int, err error) {
		rows, err := tx.QueryContext(ctx, listUserGroups, tenant, userID, after, limit)
		if err != nil {
			return 0, err
		}
		gs, err = collect(rows, nil, scanGroup)
		return len(gs), err
	})
	return gs, err
}

// readPage reads a page with page, in a read-only transaction on a reader,
// whose statements all read one snapshot (WAL). page's statement returns
// rows only while what it reads (a group, a tenant's groups) exists, which
// page returns the number of; when it returns none, exists, a statement
// that selects one boolean with args, tells an empty page from a group or
// tenant that does not exist (users.ErrNotFound), in the same snapshot.
func (s *Store) readPage(ctx context.Context, exists string, args []any, page func(tx *sql.Tx) (int, error)) error {
	tx, err := s.db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() // it wrote nothing: a rollback ends it as well as a commit
	n, err := page(tx)
	if err != nil {
		return err
	}
	if n == 0 {
		var ok bool
		if err := tx.QueryRowContext(ctx, exists, args...).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return users.ErrNotFound
		}
	}
	return tx.Commit()
}

// leaveGroups removes the memberships of the user with the id, whom
// UpdateUser is deleting within tx, and lowers the count of each of its
// groups. It returns the ids of those groups in id order.
func leaveGroups(ctx context.Context, tx *sql.Tx, id string) ([]string, error) {
	rows, err := tx.QueryContext(ctx, userGroups, id)
	if err != nil {
		return nil, err
	}
	gids, err := collect(rows, nil, func(row rowScanner) (string, error) {
		var gid string
		err := row.Scan(&gid)
		return gid, err
	})
	if err != nil || len(gids) == 0 {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, leaveGroupCount, id); err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, deleteUserMembers, id); err != nil {
		return nil, err
	}
	return gids, nil
}

// readGroup reads the tenant's group within tx, or returns
// users.ErrNotFound.
func readGroup(ctx context.Context, tx *sql.Tx, tenant, id string) (*users.Group, error) {
	g, err := scanGroup(tx.QueryRowContext(ctx, selectGroup, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return g, err
}

// groupWriteError translates an error of an insert or an update of a
// group. SQLite names the unique index on the tenant and the external id
// by its columns; the primary key reports SQLITE_CONSTRAINT_PRIMARYKEY.
func groupWriteError(err error) error {
	var serr *msqlite.Error
	if errors.As(err, &serr) {
		switch {
		case serr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("id in use: %w", users.ErrIDTaken)
		case serr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE && strings.Contains(serr.Error(), "groups.external_id"):
			return errExtInUse
		}
	}
	return err
}

// scanGroup reads the usersql.GroupColumns of one row.
func scanGroup(row rowScanner) (*users.Group, error) {
	var (
		g                      users.Group
		externalID             sql.NullString
		createTime, updateTime int64
	)
	if err := row.Scan(&g.Tenant, &g.ID, &g.DisplayName, &externalID, &g.Description, &g.MemberCount,
		&createTime, &updateTime, &g.Revision); err != nil {
		return nil, err
	}
	g.ExternalID = externalID.String
	g.CreateTime, g.UpdateTime = fromMicros(createTime), fromMicros(updateTime)
	return &g, nil
}

// scanMember reads a user id and a create time.
func scanMember(row rowScanner) (users.GroupMember, error) {
	var (
		m      users.GroupMember
		micros int64
	)
	err := row.Scan(&m.UserID, &micros)
	m.CreateTime = fromMicros(micros)
	return m, err
}

// memberState is a row of memberStates.
type memberState struct {
	id    string
	state users.State
}

func scanMemberState(row rowScanner) (memberState, error) {
	var (
		m     memberState
		state string
	)
	if err := row.Scan(&m.id, &state); err != nil {
		return m, err
	}
	var ok bool
	if m.state, ok = users.ParseState(state); !ok {
		return m, fmt.Errorf("user %s: stored state %q", m.id, state)
	}
	return m, nil
}
