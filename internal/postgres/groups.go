package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Groups: users.GroupStore. Every change is one READ COMMITTED transaction
// that locks the group's row (SELECT … FOR UPDATE) before it reads or
// changes the group or its members, so that the changes of a group take
// turns and each counts what the one before did: a group's member_count is
// kept by the statements that add and remove its rows of group_members.
//
// The changes of a group must also reach the feed in the order they
// commit, so that a consumer sees each membership's events in the order of
// its changes; the feed's order is the txid's, which a transaction gets at
// its first write. The row lock is a write, and it does not order them: a
// transaction that waited for the row, holding its txid already, can lose
// the row to one that came after, when the holder's update moved the row.
// So each change first takes a transaction-level advisory lock on the
// group (lockGroupRow), which needs no txid and is granted in the order
// asked: the txids of a group's changes are then taken, one by one, by the
// holder of that lock, in the order of the commits.
//
// AddGroupMembers then locks the users it adds that are not members yet
// (FOR SHARE, in id order), so that no deletion of one can commit between
// its check and its insert; UpdateUser, deleting a user, holds the user and
// locks its groups' rows (in id order) before it deletes the memberships.
// Neither waits for the other over one membership: an add waits for a user
// that is not a member, a deletion for the groups its user is a member of.
// Should a deadlock happen all the same (it takes four transactions),
// Store.do runs the transaction again.

const (
	selectGroups = "SELECT " + usersql.GroupColumns + " FROM groups "

	insertGroup = `INSERT INTO groups (tenant_id, id, display_name, name_key, external_id, description, member_count,
	create_time, update_time, revision)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`

	// updateGroup writes the fields a caller sets; the members' count is
	// the membership statements'.
	updateGroup = `UPDATE groups SET display_name = $2, name_key = $3, external_id = $4, description = $5,
	update_time = $6, revision = revision + 1
WHERE id = $1`

	// countMembers adds $2 (negative: removes) to the members' count of
	// the group $1 and returns the group.
	countMembers = "UPDATE groups SET member_count = member_count + $2 WHERE id = $1 RETURNING " + usersql.GroupColumns

	// members reads which of the users $2 are members of the group $1.
	members = "SELECT user_id FROM group_members WHERE group_id = $1 AND user_id = ANY($2)"

	// lockMembers reads and locks, in id order, the tenant's ($1) users
	// with the ids $2: a user it returns cannot be deleted before the
	// transaction ends.
	lockMembers = "SELECT id, state FROM users WHERE id = ANY($2) AND tenant_id = $1 ORDER BY id FOR SHARE"

	// insertMembers inserts the memberships of the users $3 of the
	// tenant's ($1) group $2, created at $4, in the order of $3, but
	// those that exist, and returns the users it inserted.
	insertMembers = `INSERT INTO group_members (tenant_id, group_id, user_id, create_time)
SELECT $1, $2, m.user_id, $4 FROM unnest($3::uuid[]) WITH ORDINALITY AS m(user_id, n) ORDER BY m.n
ON CONFLICT (group_id, user_id) DO NOTHING
RETURNING user_id`

	// deleteMembers deletes the memberships of the users $2 of the group
	// $1 and returns the users it deleted.
	deleteMembers = "DELETE FROM group_members WHERE group_id = $1 AND user_id = ANY($2) RETURNING user_id"

	// lockUserGroups locks the groups of the user $1 in id order;
	// leaveGroups then deletes the user's memberships, lowers the count
	// of each group it left, and returns their ids. UpdateUser runs them
	// on a user it deletes.
	lockUserGroups = "SELECT id FROM groups WHERE id IN (SELECT group_id FROM group_members WHERE user_id = $1) ORDER BY id FOR UPDATE"
	leaveGroups    = `WITH left_groups AS (DELETE FROM group_members WHERE user_id = $1 RETURNING group_id)
UPDATE groups SET member_count = member_count - 1 FROM left_groups WHERE groups.id = left_groups.group_id
RETURNING groups.id`
)

var (
	// selectGroup reads the tenant's ($1) group with the id $2 while the
	// tenant is live; lockGroup locks its row too.
	selectGroup = selectGroups + "WHERE id = $2 AND tenant_id = $1 AND " + usersql.LiveTenant("$1")
	lockGroup   = selectGroup + " FOR UPDATE"

	// listMembers and listMembersAfter read a page of the members of the
	// tenant's ($1) group $2, from the first or after the user id $4, as
	// one row of NULLs when it has none and no row when the tenant has no
	// such group: the page is a range of the primary key (group_id,
	// user_id), in its order, whatever the group's size. There are two
	// statements, not one with an optional cursor, so that the plan of
	// each is the range scan.
	listMembers      = listMembersStmt("")
	listMembersAfter = listMembersStmt(" AND user_id > $4")

	// listUserGroups and listUserGroupsAfter read a page of the groups of
	// the tenant's ($1) user $2, from the first or after the group id $4,
	// as inLiveTenant statements: the page of memberships from
	// group_members_user_id_group_id, then each group by its primary key.
	listUserGroups      = listUserGroupsStmt("")
	listUserGroupsAfter = listUserGroupsStmt(" AND group_id > $4")
)

func listMembersStmt(after string) string {
	return `SELECT m.user_id, m.create_time FROM groups g LEFT JOIN LATERAL (
	SELECT user_id, create_time FROM group_members WHERE group_id = g.id` + after + ` ORDER BY user_id LIMIT $3
) m ON true
WHERE g.id = $2 AND g.tenant_id = $1 AND ` + usersql.LiveTenant("$1") + `
ORDER BY m.user_id`
}

func listUserGroupsStmt(after string) string {
	return inLiveTenant(selectGroups + `WHERE id IN (
	SELECT group_id FROM group_members WHERE user_id = $2 AND tenant_id = $1` + after + ` ORDER BY group_id LIMIT $3)
AND tenant_id = $1`)
}

// inLiveTenant returns a statement that runs sel, a select of
// usersql.GroupColumns of the groups of the tenant $1 in id order, for the
// tenant $1 while it is live: it returns sel's rows, one row of NULLs when
// sel has none, and no row when the tenant is deleted or does not exist.
// So one statement, on one snapshot, tells an empty page from a missing
// tenant (queryGroups).
func inLiveTenant(sel string) string { return liveTenantPage(sel, "g.*", "g.id") }

// liveTenantPage is inLiveTenant for a sel of another order: the statement
// returns the columns of sel's rows (qualified by g) in the order of
// orderBy (sel's, qualified by g). Its ORDER BY sorts the page alone, the
// rows sel returns, already in that order: the join's rows keep no order
// of sel's that the planner knows of.
func liveTenantPage(sel, columns, orderBy string) string {
	return "SELECT " + columns + " FROM tenants t LEFT JOIN LATERAL (" + sel + ") g ON true " +
		"WHERE t.id = $1 AND t.state = 'ACTIVE' ORDER BY " + orderBy
}

// groupColumnsOfG are usersql.GroupColumns qualified by g, the rows of
// liveTenantPage's sel.
var groupColumnsOfG = "g." + strings.ReplaceAll(usersql.GroupColumns, ", ", ", g.")

// errGroupIDInUse is the error of a group whose id is another's.
var errGroupIDInUse = fmt.Errorf("id already in use: %w", users.ErrIDTaken)

// inTx runs fn within a READ COMMITTED transaction on a connection of the
// pool and commits; Store.do runs it again, whole, after a deadlock or a
// serialization failure (txn), so fn must set its results afresh each run.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return s.do(ctx, txn, func(c *pgxpool.Conn) error {
		tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if err := fn(tx); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
}

// CreateGroup checks that g's tenant is live and inserts g with its
// group.created event, in one transaction; see users.GroupStore.
func (s *Store) CreateGroup(ctx context.Context, g *users.Group) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", g.ID)
	id, err := uuid.Parse(g.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	created := *g
	created.MemberCount = 0
	usersql.StoredGroup(&created)
	evSQL, evArgs, err := appendEventsStmt([]users.Event{users.GroupEvent(ctx, users.EventGroupCreated, &created, nil)})
	if err != nil {
		return nil, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := liveTenant(ctx, tx, created.Tenant); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, insertGroup, created.Tenant, pgUUID(id), created.DisplayName, users.GroupNameKey(created.DisplayName),
			usersql.NullText(created.ExternalID), created.Description, created.MemberCount, created.CreateTime, created.UpdateTime, created.Revision)
		if err != nil {
			return groupWriteError(err)
		}
		_, err = tx.Exec(ctx, evSQL, evArgs...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &created, nil
}

// GetGroup reads the tenant's group in one statement; see
// users.GroupStore.
func (s *Store) GetGroup(ctx context.Context, tenant, id string) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	gid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var g *users.Group
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		g, err = scanGroup(c.QueryRow(ctx, selectGroup, tenant, gid))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return g, err
}

// ListGroups reads a page of the tenant's groups in one statement, with
// the SQL of usersql.GroupListClause; see users.GroupStore.
func (s *Store) ListGroups(ctx context.Context, q users.GroupQuery) (_ []*users.Group, err error) {
	defer wrap(ctx, &err, "list groups of %s", q.Tenant)
	q.Limit = max(q.Limit, 0)
	if q.After != "" {
		if _, ok := parseID(q.After); !ok {
			return nil, users.Invalid("after", "not a group id")
		}
	}
	clause, args := usersql.GroupListClause(usersql.Postgres, q)
	// The page is a range of an index (see GroupListClause); the
	// statement's ORDER BY sorts its rows alone, which in name order needs
	// their name_key, read but not returned.
	sel, columns := selectGroups+clause, "g.*"
	if q.ByName {
		sel, columns = "SELECT "+usersql.GroupColumns+", name_key FROM groups "+clause, groupColumnsOfG
	}
	stmt := liveTenantPage(sel, columns, usersql.GroupListOrder(q, "g"))
	var gs []*users.Group
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		gs, err = queryGroups(ctx, c, min(q.Limit, 1000), stmt, args...)
		return err
	})
	return gs, err
}

// UpdateGroup changes the tenant's group under a row lock, with a
// group.updated event when a field changed; see users.GroupStore. Like
// UpdateUser, it writes (and counts a revision) whatever fn changed.
func (s *Store) UpdateGroup(ctx context.Context, tenant, id string, fn func(*users.Group) error) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	gid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var got *users.Group
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		old, err := lockGroupRow(ctx, tx, tenant, gid)
		if err != nil {
			return err
		}
		g := *old
		if err := fn(&g); err != nil {
			return usersql.FnError(err)
		}
		// The fields UpdateGroup does not write keep their stored values.
		g.Tenant, g.ID, g.CreateTime, g.MemberCount, g.Revision = old.Tenant, old.ID, old.CreateTime, old.MemberCount, old.Revision+1
		usersql.StoredGroup(&g)
		_, err = tx.Exec(ctx, updateGroup, gid, g.DisplayName, users.GroupNameKey(g.DisplayName), usersql.NullText(g.ExternalID),
			g.Description, g.UpdateTime)
		if err != nil {
			return groupWriteError(err)
		}
		if paths := users.GroupChangedPaths(old, &g); len(paths) > 0 {
			if err := appendEvents(ctx, tx, []users.Event{users.GroupEvent(ctx, users.EventGroupUpdated, &g, paths)}); err != nil {
				return err
			}
		}
		got = &g
		return nil
	})
	return got, err
}

// DeleteGroup locks the tenant's group, lets check refuse, and deletes it,
// its memberships by cascade, with a group.deleted event, in one
// transaction; see users.GroupStore.
func (s *Store) DeleteGroup(ctx context.Context, tenant, id string, check func(*users.Group) error) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	gid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var got *users.Group
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		g, err := lockGroupRow(ctx, tx, tenant, gid)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(g); err != nil {
				return usersql.FnError(err)
			}
		}
		if _, err := tx.Exec(ctx, "DELETE FROM groups WHERE id = $1", gid); err != nil {
			return err
		}
		if err := appendEvents(ctx, tx, []users.Event{users.GroupEvent(ctx, users.EventGroupDeleted, g, nil)}); err != nil {
			return err
		}
		got = g
		return nil
	})
	return got, err
}

// AddGroupMembers locks the group, then the users that are not members
// yet, checks them and inserts their memberships, with their events and
// the group's new count, in one transaction; see users.GroupStore.
func (s *Store) AddGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	gid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	ids := usersql.UniqueIDs(userIDs)
	uids := make([]pgtype.UUID, 0, len(ids))
	for _, id := range ids {
		if uid, ok := parseID(id); ok {
			uids = append(uids, uid) // any other id names no user
		}
	}
	var got *users.Group
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		g, err := lockGroupRow(ctx, tx, tenant, gid)
		if err != nil {
			return err
		}
		got = g
		if len(uids) == 0 {
			return usersql.MemberViolations(userIDs, func(string) (users.State, bool) { return 0, false })
		}
		// The members stay members while the group is locked, and are
		// not deleted: a deletion takes its user out of its groups, which
		// it locks first.
		rows, err := tx.Query(ctx, members, gid, uids)
		if err != nil {
			return err
		}
		already, err := collectIDs(rows)
		if err != nil {
			return err
		}
		fresh := make([]pgtype.UUID, 0, len(uids))
		for _, uid := range uids {
			if !already[uuid.UUID(uid.Bytes).String()] {
				fresh = append(fresh, uid)
			}
		}
		states := make(map[string]users.State, len(fresh))
		if len(fresh) > 0 {
			rows, err := tx.Query(ctx, lockMembers, tenant, fresh)
			if err != nil {
				return err
			}
			var (
				uid   pgtype.UUID
				state string
			)
			_, err = pgx.ForEachRow(rows, []any{&uid, &state}, func() error {
				st, ok := users.ParseState(state)
				if !ok {
					return fmt.Errorf("user %s: stored state %q", uuid.UUID(uid.Bytes), state)
				}
				states[uuid.UUID(uid.Bytes).String()] = st
				return nil
			})
			if err != nil {
				return err
			}
		}
		if err := usersql.MemberViolations(userIDs, func(id string) (users.State, bool) {
			if already[id] {
				return users.StateActive, true // not deleted, as every member
			}
			st, ok := states[id]
			return st, ok
		}); err != nil || len(fresh) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, insertMembers, tenant, gid, fresh, users.Now())
		if err != nil {
			return err
		}
		added, err := collectIDs(rows)
		if err != nil {
			return err
		}
		got, err = countGroupMembers(ctx, tx, gid, g, users.EventGroupMemberAdded, ids, added)
		return err
	})
	return got, err
}

// RemoveGroupMembers locks the group and deletes the memberships that
// exist, with their events and the group's new count, in one transaction;
// see users.GroupStore.
func (s *Store) RemoveGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (_ *users.Group, err error) {
	defer wrap(ctx, &err, "group %s", id)
	gid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	ids := usersql.UniqueIDs(userIDs)
	uids := make([]pgtype.UUID, 0, len(ids))
	for _, id := range ids {
		if uid, ok := parseID(id); ok {
			uids = append(uids, uid) // any other id is no member
		}
	}
	var got *users.Group
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		g, err := lockGroupRow(ctx, tx, tenant, gid)
		if err != nil || len(uids) == 0 {
			got = g
			return err
		}
		rows, err := tx.Query(ctx, deleteMembers, gid, uids)
		if err != nil {
			return err
		}
		removed, err := collectIDs(rows)
		if err != nil {
			return err
		}
		got, err = countGroupMembers(ctx, tx, gid, g, users.EventGroupMemberRemoved, ids, removed)
		return err
	})
	return got, err
}

// countGroupMembers ends a change of the members of g (whose id is gid)
// within tx: the users of ids in changed were added (typ
// users.EventGroupMemberAdded) or removed. It moves g's count, appends
// their events in the order of ids, and returns the group as it is then.
func countGroupMembers(ctx context.Context, tx pgx.Tx, gid pgtype.UUID, g *users.Group, typ users.EventType, ids []string, changed map[string]bool) (*users.Group, error) {
	if len(changed) == 0 {
		return g, nil
	}
	n := int64(len(changed))
	if typ == users.EventGroupMemberRemoved {
		n = -n
	}
	got, err := scanGroup(tx.QueryRow(ctx, countMembers, gid, n))
	if err != nil {
		return nil, err
	}
	evs := usersql.MemberEvents(ctx, typ, g.Tenant, g.ID, ids, func(id string) bool { return changed[id] })
	return got, appendEvents(ctx, tx, evs)
}

// ListGroupMembers reads a page of the group's members in one statement;
// see users.GroupStore.
func (s *Store) ListGroupMembers(ctx context.Context, tenant, id, after string, limit int) (_ []users.GroupMember, err error) {
	defer wrap(ctx, &err, "members of group %s", id)
	gid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	stmt, args := listMembers, []any{tenant, gid, max(limit, 0)}
	if after != "" {
		a, ok := parseID(after)
		if !ok {
			return nil, users.Invalid("after", "not a user id")
		}
		stmt, args = listMembersAfter, append(args, a)
	}
	var (
		ms    []users.GroupMember
		found bool
	)
	err = s.do(ctx, read, func(c *pgxpool.Conn) error {
		rows, err := c.Query(ctx, stmt, args...)
		if err != nil {
			return err
		}
		ms, found = make([]users.GroupMember, 0, min(max(limit, 0), 1000)), false
		var (
			uid pgtype.UUID
			ct  pgtype.Timestamptz
		)
		_, err = pgx.ForEachRow(rows, []any{&uid, &ct}, func() error {
			found = true
			if uid.Valid { // else the group has no members on the page
				ms = append(ms, users.GroupMember{UserID: uuid.UUID(uid.Bytes).String(), CreateTime: ct.Time.UTC()})
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, users.ErrNotFound
	}
	return ms, nil
}

// ListUserGroups reads a page of the user's groups in one statement; see
// users.GroupStore.
func (s *Store) ListUserGroups(ctx context.Context, tenant, userID, after string, limit int) (_ []*users.Group, err error) {
	defer wrap(ctx, &err, "groups of user %s", userID)
	// An id that is no UUID is no user's: the nil UUID, which no user
	// has, stands for it, so that the tenant is checked all the same.
	uid, _ := parseID(userID)
	uid.Valid = true
	stmt, args := listUserGroups, []any{tenant, uid, max(limit, 0)}
	if after != "" {
		a, ok := parseID(after)
		if !ok {
			return nil, users.Invalid("after", "not a group id")
		}
		stmt, args = listUserGroupsAfter, append(args, a)
	}
	var gs []*users.Group
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		gs, err = queryGroups(ctx, c, min(max(limit, 0), 1000), stmt, args...)
		return err
	})
	return gs, err
}

// leaveUserGroups takes the user uid, whom UpdateUser is deleting on conn
// (whose transaction holds the user's row), out of its groups: it locks
// them in id order, deletes the memberships and lowers the groups' counts,
// in one round trip. It returns the ids of the groups the user left, in id
// order.
func leaveUserGroups(ctx context.Context, conn *pgxpool.Conn, uid pgtype.UUID) ([]string, error) {
	var b pgx.Batch
	b.Queue(lockUserGroups, uid)
	b.Queue(leaveGroups, uid)
	br := conn.SendBatch(ctx, &b)
	_, err := br.Exec()
	var gids []string
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			var left map[string]bool
			if left, err = collectIDs(rows); err == nil {
				for gid := range left {
					gids = append(gids, gid)
				}
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// Canonical UUIDs sort as their bytes do: in the groups' id order.
	slices.Sort(gids)
	return gids, nil
}

// groupLockClass is the first key of the advisory locks of groups
// (pg_advisory_xact_lock(int4, int4), whose keys are apart from those of
// the one-bigint form that the job queue takes): "grp" in ASCII.
const groupLockClass = 0x677270

// lockGroupRow takes the group's advisory lock within tx, which must have
// written nothing yet (see the top of this file), then reads the tenant's
// group with SELECT … FOR UPDATE, in one round trip; or returns
// users.ErrNotFound. The lock's second key is the last 32 bits of the id,
// random in a UUIDv7: two groups that share it only take turns.
func lockGroupRow(ctx context.Context, tx pgx.Tx, tenant string, gid pgtype.UUID) (*users.Group, error) {
	var b pgx.Batch
	b.Queue("SELECT pg_advisory_xact_lock($1, $2)", int32(groupLockClass), int32(binary.BigEndian.Uint32(gid.Bytes[12:])))
	b.Queue(lockGroup, tenant, gid)
	br := tx.SendBatch(ctx, &b)
	_, err := br.Exec()
	var g *users.Group
	if err == nil {
		g, err = scanGroup(br.QueryRow())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return g, err
}

// collectIDs reads rows of one uuid column into a set of ids.
func collectIDs(rows pgx.Rows) (map[string]bool, error) {
	ids := map[string]bool{}
	var id pgtype.UUID
	_, err := pgx.ForEachRow(rows, []any{&id}, func() error {
		ids[uuid.UUID(id.Bytes).String()] = true
		return nil
	})
	return ids, err
}

// queryGroups runs an inLiveTenant statement on q and collects the
// groups; it returns users.ErrNotFound when the statement returns no row.
func queryGroups(ctx context.Context, q querier, capacity int, sql string, args ...any) ([]*users.Group, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	gs := make([]*users.Group, 0, capacity)
	live := false
	var r groupRow
	_, err = pgx.ForEachRow(rows, r.dest(), func() error {
		live = true
		if r.id.Valid { // else the page is empty
			gs = append(gs, r.group())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !live {
		return nil, users.ErrNotFound
	}
	return gs, nil
}

// groupWriteError translates an error of an insert or an update of a
// group.
func groupWriteError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "groups_pkey":
			return errGroupIDInUse
		case "groups_tenant_external_id":
			return errExtInUse
		}
	}
	return err
}

// groupRow holds the usersql.GroupColumns of one row as pgx scans them,
// or the NULLs of inLiveTenant's empty page (id not Valid).
type groupRow struct {
	tenant                 pgtype.Text
	id                     pgtype.UUID
	displayName            pgtype.Text
	externalID             pgtype.Text
	description            pgtype.Text
	memberCount            pgtype.Int8
	createTime, updateTime pgtype.Timestamptz
	revision               pgtype.Int8
}

func (r *groupRow) dest() []any {
	return []any{&r.tenant, &r.id, &r.displayName, &r.externalID, &r.description, &r.memberCount,
		&r.createTime, &r.updateTime, &r.revision}
}

// group converts the row: times in UTC, "" for a NULL external id.
func (r *groupRow) group() *users.Group {
	return &users.Group{
		Tenant:      r.tenant.String,
		ID:          uuid.UUID(r.id.Bytes).String(),
		DisplayName: r.displayName.String,
		ExternalID:  r.externalID.String,
		Description: r.description.String,
		MemberCount: r.memberCount.Int64,
		CreateTime:  r.createTime.Time.UTC(),
		UpdateTime:  r.updateTime.Time.UTC(),
		Revision:    r.revision.Int64,
	}
}

func scanGroup(row pgx.Row) (*users.Group, error) {
	var r groupRow
	if err := row.Scan(r.dest()...); err != nil {
		return nil, err
	}
	if !r.id.Valid {
		return nil, errors.New("group row of NULLs")
	}
	return r.group(), nil
}
