package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Users: users.UserStore.

// The errors of a write that a unique index refused.
var (
	errEmailInUse = fmt.Errorf("email address already in use: %w", users.ErrEmailTaken)
	errIDInUse    = fmt.Errorf("id already in use: %w", users.ErrIDTaken)
	errExtInUse   = fmt.Errorf("external id already in use: %w", users.ErrExternalIDTaken)
)

// The columns of a user, in the order userRow scans them.
const (
	userColumns  = "tenant_id, id, email, display_name, state, labels, create_time, update_time, delete_time, revision, " + usersql.ProfileColumns
	userColumnsU = "u.tenant_id, u.id, u.email, u.display_name, u.state, u.labels, u.create_time, u.update_time, u.delete_time, u.revision, " +
		"u.external_id, u.given_name, u.family_name, u.phone_number, u.email_verified, u.phone_verified, u.locale, u.time_zone, u.attributes"
)

var (
	// selectUser reads the tenant's ($1) user with the id ($2) while the
	// tenant is live.
	selectUser = "SELECT " + userColumns + " FROM users WHERE tenant_id = $1 AND id = $2 AND " + usersql.LiveTenant("$1")

	selectUserForUpdate = selectUser + " FOR UPDATE"

	// selectUsers reads the tenant's ($1) users with the ids ($2) while the
	// tenant is live. The ids are looked up first, as before tenants:
	// OFFSET 0 keeps the planner from reading the tenant's users through an
	// index that leads with the tenant and filtering them by id, which it
	// does when a table's statistics are missing or stale and it takes the
	// tenant to hold a few users.
	selectUsers = "SELECT " + userColumns + " FROM (SELECT " + userColumns + " FROM users WHERE id = ANY($2) OFFSET 0) AS u " +
		"WHERE tenant_id = $1 AND " + usersql.LiveTenant("$1")

	// selectKeyUser reads the fingerprint of the tenant's ($1) request id
	// ($2) and the user it created, while the tenant is live.
	selectKeyUser = "SELECT k.fingerprint, " + userColumnsU + `
FROM idempotency_keys k JOIN users u ON u.id = k.user_id
WHERE k.tenant_id = $1 AND k.request_id = $2 AND ` + usersql.LiveTenant("$1")

	// insertUser is CreateUser's first statement without a key: it
	// inserts the user and its event when the tenant is live and has no
	// limit of users, and nothing otherwise.
	insertUser = insertUserStmt(unlimitedTenant, false)

	// insertUserWithKey is insertUser with the idempotency key: the user,
	// and its event, go in only if the key did. A concurrent insert of the
	// same request id waits for the first transaction and then inserts
	// nothing.
	insertUserWithKey = insertUserStmt(unlimitedTenant, true)

	// insertCheckedUser and insertCheckedUserWithKey insert whatever the
	// tenant: CreateUser's transaction runs them once it has checked the
	// tenant and its limit.
	insertCheckedUser        = insertUserStmt(anyTenant, false)
	insertCheckedUserWithKey = insertUserStmt(anyTenant, true)

	// liveUsers counts the tenant's ($1) users that are not deleted, up to
	// its limit ($2).
	liveUsers = usersql.LiveUsers(usersql.Postgres)

	// purgeTenants removes the tenants deleted before $1 that have no
	// users left, with their operations and subscriptions.
	purgeTenants = usersql.PurgeTenants(usersql.Postgres)
)

const (
	// unlimitedTenant has a row when the tenant $15 is live and has no
	// limit of users: CreateUser's first statement inserts from it, so
	// that it needs no lock and no count, and inserts nothing for the
	// other tenants, whose creates take the checked path.
	unlimitedTenant = "t AS (SELECT FROM tenants WHERE id = $15 AND state = 'ACTIVE' AND max_users = 0)"

	// anyTenant has one row.
	anyTenant = "t AS (SELECT)"

	// tenantLimit reads the tenant's ($1) limit of users, while it is
	// live; lockTenantLimit locks its row too.
	tenantLimit     = "SELECT max_users FROM tenants WHERE id = $1 AND state = 'ACTIVE'"
	lockTenantLimit = tenantLimit + " FOR UPDATE"

	// insertCreatedEvent appends the user.created event ($11 id, $12
	// snapshot, $13 time, $14 trace parent) of the user that the CTE u
	// inserted, if it inserted one.
	insertCreatedEvent = `e AS (
	INSERT INTO events (id, tenant_id, type, user_id, snapshot, time, trace_parent)
	SELECT $11::uuid, u.tenant_id, '` + string(users.EventCreated) + `', u.id, $12::jsonb, $13::timestamptz, $14::text
	FROM u
)
SELECT ` + userColumns + ` FROM u`

	updateUser = `UPDATE users
SET email = $2, email_key = $3, display_name = $4, state = $5, labels = $6,
	update_time = $7, delete_time = $8, revision = revision + 1,
	external_id = $9, given_name = $10, family_name = $11, phone_number = $12, email_verified = $13,
	phone_verified = $14, locale = $15, time_zone = $16, attributes = $17, search_key = $18
WHERE id = $1
RETURNING ` + userColumns

	// purgeDeleted skips users another transaction holds: one being
	// undeleted stays. Deleting a user cascades to its idempotency keys.
	purgeDeleted = `DELETE FROM users WHERE id IN (
	SELECT id FROM users WHERE state = 'DELETED' AND delete_time < $1
	ORDER BY delete_time LIMIT $2
	FOR UPDATE SKIP LOCKED)
RETURNING tenant_id, id`

	// purgeTenantUsers deletes users of the tenants deleted before $1,
	// skipping those another transaction holds.
	purgeTenantUsers = `DELETE FROM users WHERE id IN (
	SELECT u.id FROM tenants t JOIN users u ON u.tenant_id = t.id
	WHERE t.state = 'DELETED' AND t.delete_time < $1
	LIMIT $2
	FOR UPDATE OF u SKIP LOCKED)
RETURNING tenant_id, id`
)

// insertUserStmt returns a statement that inserts, for each row of the CTE
// t (none or one), the user ($1…$10, tenant $15, profile $16…$25) and its
// user.created event ($11…$14), and returns the user. withKey, it inserts
// the idempotency key (request id $26, fingerprint $27) first, and the user and the event only
// if the key went in; the foreign key is checked at the end of the
// statement, when both rows exist.
func insertUserStmt(t string, withKey bool) string {
	const values = "SELECT $15::text, $1::uuid, $2::text, $3::text, $4::text, $5::text, $6::jsonb, " +
		"$7::timestamptz, $8::timestamptz, $9::timestamptz, $10::bigint, $16::text, $17::text, $18::text, $19::text, " +
		"$20::boolean, $21::boolean, $22::text, $23::text, $24::jsonb, $25::text FROM "
	from := "t"
	key := ""
	if withKey {
		from = "k"
		key = `k AS (
	INSERT INTO idempotency_keys (tenant_id, request_id, fingerprint, user_id, create_time)
	SELECT $15::text, $26::text, $27::bytea, $1::uuid, $7::timestamptz FROM t
	ON CONFLICT (tenant_id, request_id) DO NOTHING
	RETURNING user_id
), `
	}
	return "WITH " + t + ", " + key + `u AS (
	INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision, ` +
		usersql.WriteColumns + `)
	` + values + from + `
	RETURNING ` + userColumns + `
), ` + insertCreatedEvent
}

// CreateUser inserts u and its user.created event; see users.UserStore.
// In a tenant that is live and has no limit of users, that is one
// statement, which with a key inserts the key, the user and the event, or,
// when the request id is taken, nothing; a second statement then reads the
// user the key points to. Every other case (a tenant with a limit, one
// that is deleted or missing, a key that vanished) goes on in
// createChecked's transaction.
func (s *Store) CreateUser(ctx context.Context, u *users.User, key *users.IdempotencyKey) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", u.ID)
	id, err := uuid.Parse(u.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	args, err := userArgs(u)
	if err != nil {
		return nil, err
	}
	args[0] = pgUUID(id)
	ev := users.CreatedEvent(ctx, u)
	evArgs, err := createdEventArgs(&ev)
	if err != nil {
		return nil, err
	}
	args = append(append(append(args, evArgs...), u.Tenant), usersql.ProfileArgs(u)...)
	insert := insertUser
	var fingerprint []byte
	if key != nil {
		fingerprint = key.Fingerprint
		if fingerprint == nil {
			fingerprint = []byte{} // nil would be NULL
		}
		args = append(args, key.RequestID, fingerprint)
		insert = insertUserWithKey
	}

	var got *users.User
	err = s.do(ctx, write, func(c *pgxpool.Conn) (err error) {
		got, err = scanUser(c.QueryRow(ctx, insert, args...))
		return err
	})
	if err == nil {
		return got, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, insertError(err)
	}
	if key != nil {
		err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
			got, err = replay(ctx, c, u.Tenant, key, fingerprint)
			return err
		})
		if got != nil || err != nil {
			return got, err
		}
	}
	err = s.do(ctx, txn, func(c *pgxpool.Conn) (err error) {
		got, err = createChecked(ctx, c, u.Tenant, key, fingerprint, args)
		return err
	})
	return got, err
}

// createChecked is CreateUser's transaction for a user that its first
// statement did not insert. It returns users.ErrNotFound when the tenant
// is deleted or missing, the user a key's request created before, and a
// *users.QuotaError when the tenant has its limit of users; otherwise it
// inserts the user (and key and event) with args, those of insertUser.
// For a tenant with a limit it holds the tenant's row from the count to
// the commit (tenantQuota).
func createChecked(ctx context.Context, c *pgxpool.Conn, tenant string, key *users.IdempotencyKey, fingerprint []byte, args []any) (*users.User, error) {
	tx, err := c.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	quota, err := tenantQuota(ctx, tx, tenant)
	if err != nil {
		return nil, err
	}
	insert := insertCheckedUser
	if key != nil {
		got, err := replay(ctx, tx, tenant, key, fingerprint)
		if got != nil || err != nil {
			return got, err // the rollback ends a transaction that wrote nothing
		}
		insert = insertCheckedUserWithKey
	}
	if quota.Full() {
		return nil, quota.Err()
	}
	got, err := scanUser(tx.QueryRow(ctx, insert, args...))
	if errors.Is(err, pgx.ErrNoRows) && key != nil {
		// A create of the same request id committed since the read
		// above; this statement sees it.
		got, err = replay(ctx, tx, tenant, key, fingerprint)
		if got == nil && err == nil {
			err = fmt.Errorf("request %s: idempotency key keeps disappearing", key.RequestID)
		}
		return got, err
	}
	if err != nil {
		return nil, insertError(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return got, nil
}

// rowQuerier is a connection or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// replay returns, read on q, the user that the tenant's request with key's
// id created, nil when there is none (or the tenant is not live), or an
// *users.InvalidError when the request had another fingerprint.
func replay(ctx context.Context, q rowQuerier, tenant string, key *users.IdempotencyKey, fingerprint []byte) (*users.User, error) {
	var (
		stored []byte
		r      userRow
	)
	err := q.QueryRow(ctx, selectKeyUser, tenant, key.RequestID).Scan(r.dest(&stored)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", key.RequestID, err)
	}
	if !bytes.Equal(stored, fingerprint) {
		return nil, usersql.RequestIDReused()
	}
	return r.user()
}

// tenantQuota reads, on q within a transaction, the tenant's limit of
// users, or returns users.ErrNotFound when the tenant is deleted or
// missing. When the tenant has a limit, it locks the tenant's row until
// the transaction ends, so that the transactions that add users to the
// tenant take turns and each counts what the one before added, and counts
// the tenant's users that are not deleted, up to the limit. A tenant
// without a limit is not locked: its creates never queue on one row.
func tenantQuota(ctx context.Context, q rowQuerier, tenant string) (usersql.Quota, error) {
	quota := usersql.Quota{Tenant: tenant}
	err := q.QueryRow(ctx, tenantLimit, tenant).Scan(&quota.Max)
	if err == nil && quota.Max > 0 {
		// Read again under the lock: the tenant may have changed.
		err = q.QueryRow(ctx, lockTenantLimit, tenant).Scan(&quota.Max)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return quota, fmt.Errorf("tenant %s: %w", tenant, users.ErrNotFound)
	}
	if err != nil || quota.Max == 0 {
		return quota, err
	}
	return quota, q.QueryRow(ctx, liveUsers, tenant, quota.Max).Scan(&quota.Live)
}

// GetUser returns the tenant's user with the id, in one statement; see
// users.UserStore.
func (s *Store) GetUser(ctx context.Context, tenant, id string) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var u *users.User
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		u, err = scanUser(c.QueryRow(ctx, selectUser, tenant, uid))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return u, err
}

// BatchGetUsers returns the tenant's users with the ids that exist, in one
// statement; see users.UserStore. Ids that are not UUIDs match no user.
func (s *Store) BatchGetUsers(ctx context.Context, tenant string, ids []string) (_ []*users.User, err error) {
	defer wrap(ctx, &err, "batch get users of %s", tenant)
	uids := make([]pgtype.UUID, 0, len(ids))
	for _, id := range ids {
		if uid, ok := parseID(id); ok {
			uids = append(uids, uid)
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	return s.queryUsers(ctx, len(uids), selectUsers, tenant, uids)
}

// ListUsers returns a page of the tenant's users; see users.UserStore. The
// statement comes from usersql.ListClause; a search's, from
// usersql.SearchPage, planned for their values each time (an unnamed
// statement): how a search's tier is best read depends on its query.
func (s *Store) ListUsers(ctx context.Context, q users.ListQuery) (_ []*users.User, err error) {
	defer wrap(ctx, &err, "list users of %s", q.Tenant)
	if q.Search != nil {
		return usersql.SearchPage(ctx, usersql.Postgres, q, func(ctx context.Context, from string, args []any) ([]*users.User, error) {
			return s.queryUsers(ctx, min(max(q.Limit, 0), 1000), "SELECT "+userColumns+" "+from,
				append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
		})
	}
	clause, args, err := usersql.ListClause(usersql.Postgres, q)
	if err != nil {
		return nil, err
	}
	return s.queryUsers(ctx, min(max(q.Limit, 0), 1000), "SELECT "+userColumns+" FROM users "+clause, args...)
}

// UpdateUser changes the tenant's user under a row lock; see
// users.UserStore. It takes two round trips: BEGIN with SELECT … FOR
// UPDATE, then UPDATE with COMMIT; an undelete checks the tenant's limit of
// users in between (tenantQuota), and a deletion takes the user out of its
// groups (leaveUserGroups).
func (s *Store) UpdateUser(ctx context.Context, tenant, id string, fn func(*users.User) error) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var got *users.User
	err = s.do(ctx, txn, func(conn *pgxpool.Conn) (err error) {
		got, err = s.updateUser(ctx, conn, tenant, uid, fn)
		return err
	})
	return got, err
}

// updateUser is one try of UpdateUser's transaction on conn.
func (s *Store) updateUser(ctx context.Context, conn *pgxpool.Conn, tenant string, uid pgtype.UUID, fn func(*users.User) error) (*users.User, error) {
	// Whatever happens below, no transaction outlives the call: a failed
	// one is rolled back, or, when ctx has ended or the connection broke,
	// Release destroys the connection and the server rolls back.
	defer rollback(ctx, conn)

	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(selectUserForUpdate, tenant, uid)
	br := conn.SendBatch(ctx, &b)
	_, err := br.Exec()
	var cur *users.User
	if err == nil {
		cur, err = scanUser(br.QueryRow())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, err
	}

	next := cur.Clone()
	if err := fn(next); err != nil {
		return nil, usersql.FnError(err)
	}
	if cur.State == users.StateDeleted && next.State != users.StateDeleted {
		// An undelete adds a user to the tenant.
		quota, err := tenantQuota(ctx, conn, tenant)
		if err != nil {
			return nil, err
		}
		if quota.Full() {
			return nil, quota.Err()
		}
	}
	labels, err := labelsJSON(next)
	if err != nil {
		return nil, err
	}

	// The event is of the user as the update writes it: the columns the
	// update does not write keep their stored values.
	written := next.Clone()
	written.Tenant, written.ID, written.CreateTime, written.Revision = cur.Tenant, cur.ID, cur.CreateTime, cur.Revision+1
	var evs []users.Event
	if ev, ok := users.ChangeEvent(ctx, cur, written); ok {
		evs = append(evs, ev)
	}
	if cur.State != users.StateDeleted && next.State == users.StateDeleted {
		// A deleted user is a member of no group: one more round trip,
		// for deletions only, which holds the user's groups from here to
		// the commit.
		gids, err := leaveUserGroups(ctx, conn, uid)
		if err != nil {
			return nil, err
		}
		for _, gid := range gids {
			evs = append(evs, users.MemberEvent(ctx, users.EventGroupMemberRemoved, cur.Tenant, gid, cur.ID))
		}
	}

	b = pgx.Batch{}
	b.Queue(updateUser, append([]any{uid, next.Email, users.EmailKey(next.Email), next.DisplayName, next.State.String(),
		labels, next.UpdateTime, nullTime(next.DeleteTime)}, usersql.ProfileArgs(next)...)...)
	if len(evs) > 0 {
		sql, args, err := appendEventsStmt(evs)
		if err != nil {
			return nil, err
		}
		b.Queue(sql, args...)
	}
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, &b)
	got, err := scanUser(br.QueryRow())
	if err == nil && len(evs) > 0 {
		_, err = br.Exec()
	}
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("commit: %s", tag)
	}
	if err != nil {
		return nil, writeError(err)
	}
	return got, nil
}

// PurgeDeleted deletes up to limit users deleted before the time, those
// deleted longest ago first, then users of the tenants deleted before it,
// and appends their user.purged events, in one transaction; a deleted
// tenant left with no users goes too. See users.UserStore.
func (s *Store) PurgeDeleted(ctx context.Context, before time.Time, limit int) (_ int, err error) {
	defer wrap(ctx, &err, "purge deleted users")
	if limit <= 0 {
		return 0, nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	evs, err := purgeUsers(ctx, tx, purgeDeleted, before, limit, nil)
	if err != nil {
		return 0, err
	}
	if len(evs) < limit {
		if evs, err = purgeUsers(ctx, tx, purgeTenantUsers, before, limit-len(evs), evs); err != nil {
			return 0, err
		}
	}
	if err := appendEvents(ctx, tx, evs); err != nil {
		return 0, err
	}
	if len(evs) < limit {
		// Every user of the tenants deleted before the time is gone,
		// except those another transaction holds, which keep their
		// tenant.
		for _, q := range purgeTenants {
			if _, err := tx.Exec(ctx, q, before); err != nil {
				return 0, fmt.Errorf("purge deleted tenants: %w", err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return len(evs), nil
}

// purgeUsers runs del, a DELETE … RETURNING tenant_id, id of up to limit
// users, within tx and appends the user.purged events of the users it
// deleted to evs.
func purgeUsers(ctx context.Context, tx pgx.Tx, del string, before time.Time, limit int, evs []users.Event) ([]users.Event, error) {
	rows, err := tx.Query(ctx, del, before, limit)
	if err != nil {
		return nil, err
	}
	var (
		tenant string
		id     pgtype.UUID
	)
	_, err = pgx.ForEachRow(rows, []any{&tenant, &id}, func() error {
		evs = append(evs, users.PurgedEvent(ctx, tenant, uuid.UUID(id.Bytes).String()))
		return nil
	})
	return evs, err
}

// queryUsers runs a query that returns user rows and collects them.
func (s *Store) queryUsers(ctx context.Context, capacity int, sql string, args ...any) ([]*users.User, error) {
	var out []*users.User
	err := s.do(ctx, read, func(c *pgxpool.Conn) error {
		rows, err := c.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		out = make([]*users.User, 0, capacity)
		var r userRow
		dest := r.dest()
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			u, err := r.user()
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return rows.Err()
	})
	return out, err
}

// userRow holds the columns of one user as pgx scans them.
type userRow struct {
	tenant      string
	id          pgtype.UUID
	email       string
	displayName string
	state       string
	labels      []byte
	createTime  time.Time
	updateTime  time.Time
	deleteTime  pgtype.Timestamptz
	revision    int64
	profile     usersql.ProfileRow
}

// dest returns the scan destinations of the user columns, after extra.
func (r *userRow) dest(extra ...any) []any {
	return append(append(extra, &r.tenant, &r.id, &r.email, &r.displayName, &r.state, &r.labels,
		&r.createTime, &r.updateTime, &r.deleteTime, &r.revision), r.profile.Dest()...)
}

// user converts the row. Times come back in UTC; an empty labels object
// becomes a nil map and a NULL delete_time the zero time.
func (r *userRow) user() (*users.User, error) {
	u := &users.User{
		Tenant:      r.tenant,
		ID:          uuid.UUID(r.id.Bytes).String(),
		Email:       r.email,
		DisplayName: r.displayName,
		CreateTime:  r.createTime.UTC(),
		UpdateTime:  r.updateTime.UTC(),
		Revision:    r.revision,
	}
	var ok bool
	if u.State, ok = users.ParseState(r.state); !ok {
		return nil, fmt.Errorf("user %s: unknown state %q", u.ID, r.state)
	}
	if r.deleteTime.Valid {
		u.DeleteTime = r.deleteTime.Time.UTC()
	}
	p, err := r.profile.Profile(true)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	u.Profile = p
	if len(r.labels) > 0 && string(r.labels) != "{}" {
		if err := json.Unmarshal(r.labels, &u.Labels); err != nil {
			return nil, fmt.Errorf("user %s: labels: %w", u.ID, err)
		}
		if len(u.Labels) == 0 {
			u.Labels = nil
		}
	}
	return u, nil
}

// scanUser scans one user from row.
func scanUser(row pgx.Row) (*users.User, error) {
	var r userRow
	if err := row.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.user()
}

// userArgs returns the arguments $1…$10 of insertUser for u, leaving the
// id ($1) for the caller; the tenant ($15) follows the event's.
func userArgs(u *users.User) ([]any, error) {
	labels, err := labelsJSON(u)
	if err != nil {
		return nil, err
	}
	return []any{
		nil,
		u.Email,
		users.EmailKey(u.Email),
		u.DisplayName,
		u.State.String(),
		labels,
		u.CreateTime,
		u.UpdateTime,
		nullTime(u.DeleteTime),
		u.Revision,
	}, nil
}

// labelsJSON returns u's labels as a JSON object, "{}" when there are none.
func labelsJSON(u *users.User) (string, error) {
	if len(u.Labels) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(u.Labels)
	if err != nil {
		return "", fmt.Errorf("user %s: labels: %w", u.ID, err)
	}
	return string(b), nil
}

// insertError translates an error of an insert of a user.
func insertError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "users_pkey" {
		return errIDInUse
	}
	return writeError(err)
}

// writeError translates an error of a write to a user.
func writeError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "users_tenant_email_key_live":
			return errEmailInUse
		case "users_tenant_external_id_live":
			return errExtInUse
		}
	}
	return err
}

// selectByExternalID reads the tenant's ($1) user that is not deleted and
// has the external id $2, while the tenant is live: one probe of
// users_tenant_external_id_live.
var selectByExternalID = "SELECT " + userColumns + " FROM users WHERE tenant_id = $1 AND external_id = $2 AND state <> 'DELETED' AND " +
	usersql.LiveTenant("$1")

// LookupUser returns the tenant's user with the external id; see
// users.UserStore.
func (s *Store) LookupUser(ctx context.Context, tenant, externalID string) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user with external id %q", externalID)
	var u *users.User
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		u, err = scanUser(c.QueryRow(ctx, selectByExternalID, tenant, externalID))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return u, err
}

// CountUsers counts the users that match q up to limit, and past it reads
// the planner's estimate; see users.UserStore.
func (s *Store) CountUsers(ctx context.Context, q users.ListQuery, limit int) (n int64, exact bool, err error) {
	defer wrap(ctx, &err, "count users of %s", q.Tenant)
	count, args, err := usersql.CountStatement(usersql.Postgres, q, limit)
	if err != nil {
		return 0, false, err
	}
	err = s.do(ctx, read, func(c *pgxpool.Conn) error {
		if err := c.QueryRow(ctx, count, args...).Scan(&n); err != nil {
			return err
		}
		if n <= int64(limit) {
			exact = true
			return nil
		}
		where, args, err := usersql.WhereClause(usersql.Postgres, q)
		if err != nil {
			return err
		}
		var plan []byte
		if err := c.QueryRow(ctx, "EXPLAIN (FORMAT JSON) SELECT 1 FROM users"+where, args...).Scan(&plan); err != nil {
			return fmt.Errorf("estimate: %w", err)
		}
		var p []struct {
			Plan struct {
				Rows float64 `json:"Plan Rows"`
			} `json:"Plan"`
		}
		if err := json.Unmarshal(plan, &p); err != nil || len(p) == 0 {
			return fmt.Errorf("estimate: plan %.100q", plan)
		}
		n = max(n, int64(p[0].Plan.Rows))
		return nil
	})
	return n, exact, err
}
