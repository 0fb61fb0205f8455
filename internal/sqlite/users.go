package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Users: users.UserStore.

// userColumns are the columns scanUser reads, in its order.
const userColumns = "tenant_id, id, email, display_name, state, labels, create_time, update_time, delete_time, revision, " +
	usersql.ProfileColumns

const selectUsers = "SELECT " + userColumns + " FROM users "

// errEmailInUse is the error of a write whose email address belongs to
// another user that is not deleted.
var (
	errEmailInUse = fmt.Errorf("email address already in use: %w", users.ErrEmailTaken)
	errExtInUse   = fmt.Errorf("external id already in use: %w", users.ErrExternalIDTaken)
)

// CreateUser inserts u, and the idempotency key if there is one, in one
// writer transaction; see users.UserStore.
func (s *Store) CreateUser(ctx context.Context, u *users.User, key *users.IdempotencyKey) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", u.ID)
	labels, err := encodeLabels(u.Labels)
	if err != nil {
		return nil, err
	}
	insertUnlimited, err := s.stmt(ctx, stmtInsertUserUnlimited)
	if err != nil {
		return nil, err
	}
	insertUser, err := s.stmt(ctx, stmtInsertUser)
	if err != nil {
		return nil, err
	}
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return nil, err
	}
	tenants, err := s.tenantStmts(ctx)
	if err != nil {
		return nil, err
	}
	var getKey, getUser, insertKey *sql.Stmt
	if key != nil {
		if getKey, err = s.stmt(ctx, stmtGetKey); err != nil {
			return nil, err
		}
		if getUser, err = s.stmt(ctx, stmtGetUserTx); err != nil {
			return nil, err
		}
		if insertKey, err = s.stmt(ctx, stmtInsertKey); err != nil {
			return nil, err
		}
	}

	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	if key != nil {
		var (
			fingerprint []byte
			userID      string
		)
		err := tx.StmtContext(ctx, getKey).QueryRowContext(ctx, u.Tenant, key.RequestID).Scan(&fingerprint, &userID)
		switch {
		case err == nil:
			if !bytes.Equal(fingerprint, key.Fingerprint) {
				return nil, usersql.RequestIDReused()
			}
			got, err := scanUser(tx.StmtContext(ctx, getUser).QueryRowContext(ctx, u.Tenant, userID))
			if errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("tenant %s: %w", u.Tenant, users.ErrNotFound) // deleted since
			}
			if err != nil {
				return nil, fmt.Errorf("user %s of request %s: %w", userID, key.RequestID, err)
			}
			if err := tx.Commit(); err != nil {
				return nil, err
			}
			return got, nil
		case !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("request %s: %w", key.RequestID, err)
		}
	}

	// Into a live tenant without a limit, the common case, in one
	// statement; otherwise the tenant is read, and its users counted, in
	// the writer's transaction, which keeps the count true until the
	// commit.
	args := append([]any{u.Tenant, u.ID, u.Email, users.EmailKey(u.Email), u.DisplayName, u.State.String(), labels,
		u.CreateTime.UnixMicro(), u.UpdateTime.UnixMicro(), nullTime(u.DeleteTime), u.Revision}, usersql.ProfileArgs(u)...)
	res, err := tx.StmtContext(ctx, insertUnlimited).ExecContext(ctx, args...)
	if err != nil {
		return nil, writeError(err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		if err != nil {
			return nil, err
		}
		quota, err := tenants.quota(ctx, tx, u.Tenant)
		if err != nil {
			return nil, err
		}
		if quota.Full() {
			return nil, quota.Err()
		}
		if _, err := tx.StmtContext(ctx, insertUser).ExecContext(ctx, args...); err != nil {
			return nil, writeError(err)
		}
	}
	if key != nil {
		fingerprint := key.Fingerprint
		if fingerprint == nil {
			fingerprint = []byte{} // nil would bind NULL
		}
		_, err = tx.StmtContext(ctx, insertKey).ExecContext(ctx,
			u.Tenant, key.RequestID, fingerprint, u.ID, u.CreateTime.UnixMicro())
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", key.RequestID, err)
		}
	}
	created := stored(u.Clone())
	if err := appendEvents(ctx, tx.StmtContext(ctx, insertEvent), users.CreatedEvent(ctx, created)); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return created, nil
}

// GetUser returns the tenant's user with the id from the readers; see
// users.UserStore.
func (s *Store) GetUser(ctx context.Context, tenant, id string) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", id)
	get, err := s.stmt(ctx, stmtGetUser)
	if err != nil {
		return nil, err
	}
	u, err := scanUser(get.QueryRowContext(ctx, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return u, err
}

// BatchGetUsers returns the tenant's users with the ids, in one statement
// on the readers; see users.UserStore.
func (s *Store) BatchGetUsers(ctx context.Context, tenant string, ids []string) (_ []*users.User, err error) {
	defer wrap(ctx, &err, "batch get users of %s", tenant)
	if len(ids) == 0 {
		return nil, nil
	}
	// The unary + keeps SQLite from reading the tenant's index, which
	// without statistics it would prefer to the primary key: the ids are
	// looked up one by one, and only then checked for the tenant.
	const where = "WHERE +tenant_id = ?1 AND " // then liveTenant, then the ids
	var b strings.Builder
	b.Grow(len(selectUsers) + len(where) + len(liveTenant) + len(" AND id IN (?)") + 2*(len(ids)-1))
	b.WriteString(selectUsers)
	b.WriteString(where)
	b.WriteString(liveTenant)
	b.WriteString(" AND id IN (?")
	for range len(ids) - 1 {
		b.WriteString(",?")
	}
	b.WriteString(")")
	args := make([]any, 1, 1+len(ids))
	args[0] = tenant
	for _, id := range ids {
		args = append(args, id)
	}
	return s.query(ctx, b.String(), args, len(ids))
}

// ListUsers returns a page of users from the readers, with the SQL of
// usersql.ListClause, or usersql.SearchPage's for a search; see
// users.UserStore.
func (s *Store) ListUsers(ctx context.Context, q users.ListQuery) (_ []*users.User, err error) {
	defer wrap(ctx, &err, "list users")
	if q.Search != nil {
		return usersql.SearchPage(ctx, usersql.SQLite, q, func(ctx context.Context, from string, args []any) ([]*users.User, error) {
			return s.query(ctx, "SELECT "+userColumns+" "+from, args, q.Limit)
		})
	}
	clause, args, err := usersql.ListClause(usersql.SQLite, q)
	if err != nil {
		return nil, err
	}
	return s.query(ctx, selectUsers+clause, args, q.Limit)
}

// query runs a select of userColumns on the readers and reads every row.
func (s *Store) query(ctx context.Context, query string, args []any, sizeHint int) ([]*users.User, error) {
	rows, err := s.db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	var us []*users.User
	if sizeHint > 0 {
		us = make([]*users.User, 0, min(sizeHint, 1000))
	}
	return collect(rows, us, scanUser)
}

// UpdateUser reads the user in a writer transaction, which holds the
// database's write lock from its start, lets fn change a copy and writes it
// back; see users.UserStore.
func (s *Store) UpdateUser(ctx context.Context, tenant, id string, fn func(*users.User) error) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", id)
	getUser, err := s.stmt(ctx, stmtGetUserTx)
	if err != nil {
		return nil, err
	}
	updateUser, err := s.stmt(ctx, stmtUpdateUser)
	if err != nil {
		return nil, err
	}
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return nil, err
	}

	tenants, err := s.tenantStmts(ctx)
	if err != nil {
		return nil, err
	}

	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	old, err := scanUser(tx.StmtContext(ctx, getUser).QueryRowContext(ctx, tenant, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	u := old.Clone()
	if err := fn(u); err != nil {
		return nil, usersql.FnError(err)
	}
	if old.State == users.StateDeleted && u.State != users.StateDeleted {
		quota, err := tenants.quota(ctx, tx, tenant)
		if err != nil {
			return nil, err
		}
		if quota.Full() {
			return nil, quota.Err()
		}
	}
	labels, err := encodeLabels(u.Labels)
	if err != nil {
		return nil, err
	}
	_, err = tx.StmtContext(ctx, updateUser).ExecContext(ctx, append([]any{
		id, u.Email, users.EmailKey(u.Email), u.DisplayName, u.State.String(), labels,
		u.UpdateTime.UnixMicro(), nullTime(u.DeleteTime)}, usersql.ProfileArgs(u)...)...)
	if err != nil {
		return nil, writeError(err)
	}
	// The columns UpdateUser does not write keep their stored values.
	u.Tenant, u.ID, u.CreateTime, u.Revision = old.Tenant, old.ID, old.CreateTime, old.Revision+1
	u = stored(u)
	var evs []users.Event
	if ev, ok := users.ChangeEvent(ctx, old, u); ok {
		evs = append(evs, ev)
	}
	if old.State != users.StateDeleted && u.State == users.StateDeleted {
		// A deleted user is a member of no group.
		gids, err := leaveGroups(ctx, tx, id)
		if err != nil {
			return nil, err
		}
		for _, gid := range gids {
			evs = append(evs, users.MemberEvent(ctx, users.EventGroupMemberRemoved, u.Tenant, gid, u.ID))
		}
	}
	if len(evs) > 0 {
		if err := appendEvents(ctx, tx.StmtContext(ctx, insertEvent), evs...); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return u, nil
}

// PurgeDeleted deletes up to limit users deleted before the time, those
// deleted longest ago first, then users of the tenants deleted before it,
// and appends their user.purged events, in one writer transaction; a
// deleted tenant left with no users goes too. See users.UserStore.
func (s *Store) PurgeDeleted(ctx context.Context, before time.Time, limit int) (_ int, err error) {
	defer wrap(ctx, &err, "purge deleted users")
	if limit <= 0 {
		return 0, nil // SQLite reads a negative LIMIT as none
	}
	pickUsers, err := s.stmt(ctx, stmtPurgeSelect)
	if err != nil {
		return 0, err
	}
	pickTenantUsers, err := s.stmt(ctx, stmtPurgeTenantUsers)
	if err != nil {
		return 0, err
	}
	deleteUser, err := s.stmt(ctx, stmtDeleteUser)
	if err != nil {
		return 0, err
	}
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	cutoff := before.UnixMicro()
	refs, err := queryRefs(ctx, tx.StmtContext(ctx, pickUsers), cutoff, limit)
	if err != nil {
		return 0, err
	}
	if len(refs) < limit {
		more, err := queryRefs(ctx, tx.StmtContext(ctx, pickTenantUsers), cutoff, limit-len(refs))
		if err != nil {
			return 0, err
		}
		refs = append(refs, more...)
	}
	del, insEvent := tx.StmtContext(ctx, deleteUser), tx.StmtContext(ctx, insertEvent)
	for _, r := range refs {
		if _, err := del.ExecContext(ctx, r.id); err != nil {
			return 0, fmt.Errorf("purge user %s/%s: %w", r.tenant, r.id, err)
		}
		if err := appendEvents(ctx, insEvent, users.PurgedEvent(ctx, r.tenant, r.id)); err != nil {
			return 0, fmt.Errorf("purge user %s/%s: %w", r.tenant, r.id, err)
		}
	}
	if len(refs) < limit {
		// Every user of the tenants deleted before the time is gone.
		for _, q := range usersql.PurgeTenants(usersql.SQLite) {
			if _, err := tx.ExecContext(ctx, q, cutoff); err != nil {
				return 0, fmt.Errorf("purge deleted tenants: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.db.afterCommit(ctx)
	return len(refs), nil
}

// userRef names a user: its tenant and id.
type userRef struct{ tenant, id string }

// queryRefs runs q, which selects a tenant and a user id, and reads every
// row, so that the statement runs to its end.
func queryRefs(ctx context.Context, q *sql.Stmt, args ...any) ([]userRef, error) {
	rows, err := q.QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, nil, func(row rowScanner) (userRef, error) {
		var r userRef
		err := row.Scan(&r.tenant, &r.id)
		return r, err
	})
}

// tenantStmts are the statements that read a tenant's limit and count its
// users (stmtTenantLimit, stmtLiveUsers). They are prepared before a writer
// transaction begins: the writer has one connection, which preparing within
// the transaction would wait for forever.
type tenantStmts struct{ limit, live *sql.Stmt }

// tenantStmts prepares the statements of tenantStmts.
func (s *Store) tenantStmts(ctx context.Context) (tenantStmts, error) {
	limit, err := s.stmt(ctx, stmtTenantLimit)
	if err != nil {
		return tenantStmts{}, err
	}
	live, err := s.stmt(ctx, stmtLiveUsers)
	return tenantStmts{limit: limit, live: live}, err
}

// alive returns users.ErrNotFound, within tx, when the tenant does not
// exist or is deleted; its limit of users otherwise.
func (t tenantStmts) alive(ctx context.Context, tx *sql.Tx, tenant string) (maxUsers int64, err error) {
	err = tx.StmtContext(ctx, t.limit).QueryRowContext(ctx, tenant).Scan(&maxUsers)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("tenant %s: %w", tenant, users.ErrNotFound)
	}
	return maxUsers, err
}

// quota reads the tenant's limit of users, and when it has one counts its
// users, within tx; or returns users.ErrNotFound when the tenant does not
// exist or is deleted. The single writer keeps what it read true until the
// commit.
func (t tenantStmts) quota(ctx context.Context, tx *sql.Tx, tenant string) (usersql.Quota, error) {
	q := usersql.Quota{Tenant: tenant}
	var err error
	if q.Max, err = t.alive(ctx, tx, tenant); err != nil || q.Max == 0 {
		return q, err
	}
	return q, tx.StmtContext(ctx, t.live).QueryRowContext(ctx, tenant, q.Max).Scan(&q.Live)
}

// writeError translates an error from inserting or updating a user.
func writeError(err error) error {
	var serr *msqlite.Error
	// The UNIQUE indexes on users are users_tenant_email_key_live and
	// users_tenant_external_id_live, which SQLite names by their columns;
	// the primary key reports SQLITE_CONSTRAINT_PRIMARYKEY.
	if errors.As(err, &serr) && serr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		if strings.Contains(serr.Error(), "users.external_id") {
			return errExtInUse
		}
		return errEmailInUse
	}
	return err
}

// scanUser reads the userColumns of one row.
func scanUser(row rowScanner) (*users.User, error) {
	var (
		u                      users.User
		state, labels          string
		createTime, updateTime int64
		deleteTime             sql.NullInt64
		profile                usersql.ProfileRow
	)
	err := row.Scan(append([]any{&u.Tenant, &u.ID, &u.Email, &u.DisplayName, &state, &labels, &createTime, &updateTime, &deleteTime, &u.Revision},
		profile.Dest()...)...)
	if err != nil {
		return nil, err
	}
	if u.Profile, err = profile.Profile(false); err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	var ok bool
	if u.State, ok = users.ParseState(state); !ok {
		return nil, fmt.Errorf("user %s: stored state %q", u.ID, state)
	}
	if labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &u.Labels); err != nil {
			return nil, fmt.Errorf("user %s: stored labels: %w", u.ID, err)
		}
		if len(u.Labels) == 0 {
			u.Labels = nil
		}
	}
	u.CreateTime = fromMicros(createTime)
	u.UpdateTime = fromMicros(updateTime)
	if deleteTime.Valid {
		u.DeleteTime = fromMicros(deleteTime.Int64)
	}
	return &u, nil
}

// stored returns u as it reads back from the database: times in UTC at
// microsecond precision and no empty labels map.
func stored(u *users.User) *users.User {
	if len(u.Labels) == 0 {
		u.Labels = nil
	}
	u.CreateTime = fromMicros(u.CreateTime.UnixMicro())
	u.UpdateTime = fromMicros(u.UpdateTime.UnixMicro())
	if !u.DeleteTime.IsZero() {
		u.DeleteTime = fromMicros(u.DeleteTime.UnixMicro())
	}
	return u
}

func encodeLabels(labels map[string]string) (string, error) {
	if len(labels) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(labels)
	if err != nil {
		return "", fmt.Errorf("labels: %w", err)
	}
	return string(b), nil
}

// LookupUser returns the tenant's user with the external id, from the
// readers; see users.UserStore.
func (s *Store) LookupUser(ctx context.Context, tenant, externalID string) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user with external id %q", externalID)
	u, err := scanUser(s.db.reader.QueryRowContext(ctx, selectByExternalID, tenant, externalID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return u, err
}

// selectByExternalID reads the tenant's (?1) user that is not deleted and
// has the external id ?2: one probe of users_tenant_external_id_live.
var selectByExternalID = selectUsers + "WHERE tenant_id = ?1 AND external_id = ?2 AND state <> 'DELETED' AND " + liveTenant

// CountUsers counts the users that match q, up to limit, on the readers;
// past it, SQLite has no estimate to give, and it returns limit+1. See
// users.UserStore.
func (s *Store) CountUsers(ctx context.Context, q users.ListQuery, limit int) (n int64, exact bool, err error) {
	defer wrap(ctx, &err, "count users of %s", q.Tenant)
	count, args, err := usersql.CountStatement(usersql.SQLite, q, limit)
	if err != nil {
		return 0, false, err
	}
	if err := s.db.reader.QueryRowContext(ctx, count, args...).Scan(&n); err != nil {
		return 0, false, err
	}
	return n, n <= int64(limit), nil
}
