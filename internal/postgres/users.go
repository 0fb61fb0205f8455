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
)

// The columns of a user, in the order userRow scans them.
const (
	userColumns  = "id, email, display_name, state, labels, create_time, update_time, delete_time, revision"
	userColumnsU = "u.id, u.email, u.display_name, u.state, u.labels, u.create_time, u.update_time, u.delete_time, u.revision"
)

const (
	selectUser = "SELECT " + userColumns + " FROM users WHERE id = $1"

	selectUserForUpdate = selectUser + " FOR UPDATE"

	selectUsers = "SELECT " + userColumns + " FROM users WHERE id = ANY($1)"

	// insertCreatedEvent appends the user.created event ($11 id, $12
	// snapshot, $13 time, $14 trace parent) of the user that the CTE u
	// inserted, if it inserted one.
	insertCreatedEvent = `e AS (
	INSERT INTO events (id, type, user_id, snapshot, time, trace_parent)
	SELECT $11::uuid, '` + string(users.EventCreated) + `', u.id, $12::jsonb, $13::timestamptz, $14::text
	FROM u
)
SELECT ` + userColumns + ` FROM u`

	// insertUser inserts the user and its event in one statement.
	insertUser = `WITH u AS (
	INSERT INTO users (id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
	RETURNING ` + userColumns + `
), ` + insertCreatedEvent

	// insertUserWithKey inserts the user, and its event, only if it
	// inserted the key: a concurrent insert of the same request id waits
	// for the first transaction and then inserts nothing. The foreign key
	// is checked at the end of the statement, when both rows exist.
	insertUserWithKey = `WITH k AS (
	INSERT INTO idempotency_keys (request_id, fingerprint, user_id, create_time)
	VALUES ($15, $16, $1, $7)
	ON CONFLICT (request_id) DO NOTHING
	RETURNING user_id
), u AS (
	INSERT INTO users (id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision)
	SELECT k.user_id, $2::text, $3::text, $4::text, $5::text, $6::jsonb, $7::timestamptz, $8::timestamptz, $9::timestamptz, $10::bigint
	FROM k
	RETURNING ` + userColumns + `
), ` + insertCreatedEvent

	selectKeyUser = "SELECT k.fingerprint, " + userColumnsU + `
FROM idempotency_keys k JOIN users u ON u.id = k.user_id
WHERE k.request_id = $1`

	updateUser = `UPDATE users
SET email = $2, email_key = $3, display_name = $4, state = $5, labels = $6,
	update_time = $7, delete_time = $8, revision = revision + 1
WHERE id = $1
RETURNING ` + userColumns

	// purgeDeleted skips users another transaction holds: one being
	// undeleted stays. Deleting a user cascades to its idempotency keys.
	purgeDeleted = `DELETE FROM users WHERE id IN (
	SELECT id FROM users WHERE state = 'DELETED' AND delete_time < $1
	ORDER BY delete_time LIMIT $2
	FOR UPDATE SKIP LOCKED)
RETURNING id`
)

// CreateUser inserts u and its user.created event in one statement; see
// users.UserStore. With a key, the statement inserts the key, the user and the
// event, or, when the request id is taken, nothing; a second statement then
// reads the user the key points to.
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
	args = append(args, evArgs...)
	if key == nil {
		var got *users.User
		err := s.do(ctx, write, func(c *pgxpool.Conn) (err error) {
			got, err = scanUser(c.QueryRow(ctx, insertUser, args...))
			return err
		})
		if err != nil {
			return nil, insertError(err)
		}
		return got, nil
	}
	fingerprint := key.Fingerprint
	if fingerprint == nil {
		fingerprint = []byte{} // nil would be NULL
	}
	args = append(args, key.RequestID, fingerprint)
	// The key row may vanish between the two statements (if keys expire);
	// the next attempt then inserts.
	for range 3 {
		var got *users.User
		err := s.do(ctx, write, func(c *pgxpool.Conn) (err error) {
			got, err = scanUser(c.QueryRow(ctx, insertUserWithKey, args...))
			return err
		})
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, insertError(err)
		}
		var (
			stored []byte
			r      userRow
		)
		err = s.do(ctx, read, func(c *pgxpool.Conn) error {
			return c.QueryRow(ctx, selectKeyUser, key.RequestID).Scan(r.dest(&stored)...)
		})
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", key.RequestID, err)
		}
		if !bytes.Equal(stored, fingerprint) {
			return nil, usersql.RequestIDReused()
		}
		return r.user()
	}
	return nil, fmt.Errorf("request %s: idempotency key keeps disappearing", key.RequestID)
}

// GetUser returns the user with the id; see users.UserStore.
func (s *Store) GetUser(ctx context.Context, id string) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var u *users.User
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		u, err = scanUser(c.QueryRow(ctx, selectUser, uid))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return u, err
}

// BatchGetUsers returns the users with the ids that exist; see
// users.UserStore. Ids that are not UUIDs match no user.
func (s *Store) BatchGetUsers(ctx context.Context, ids []string) (_ []*users.User, err error) {
	defer wrap(ctx, &err, "batch get users")
	uids := make([]pgtype.UUID, 0, len(ids))
	for _, id := range ids {
		if uid, ok := parseID(id); ok {
			uids = append(uids, uid)
		}
	}
	if len(uids) == 0 {
		return nil, nil
	}
	return s.queryUsers(ctx, len(uids), selectUsers, uids)
}

// ListUsers returns a page of users; see users.UserStore. The statement comes
// from usersql.ListClause.
func (s *Store) ListUsers(ctx context.Context, q users.ListQuery) (_ []*users.User, err error) {
	defer wrap(ctx, &err, "list users")
	clause, args, err := usersql.ListClause(usersql.Postgres, q)
	if err != nil {
		return nil, err
	}
	return s.queryUsers(ctx, min(max(q.Limit, 0), 1000), "SELECT "+userColumns+" FROM users "+clause, args...)
}

// UpdateUser changes a user under a row lock; see users.UserStore. It
// takes two round trips: BEGIN with SELECT … FOR UPDATE, then UPDATE with
// COMMIT.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*users.User) error) (_ *users.User, err error) {
	defer wrap(ctx, &err, "user %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var got *users.User
	err = s.do(ctx, txn, func(conn *pgxpool.Conn) (err error) {
		got, err = s.updateUser(ctx, conn, uid, fn)
		return err
	})
	return got, err
}

// updateUser is one try of UpdateUser's transaction on conn.
func (s *Store) updateUser(ctx context.Context, conn *pgxpool.Conn, uid pgtype.UUID, fn func(*users.User) error) (*users.User, error) {
	// Whatever happens below, no transaction outlives the call: a failed
	// one is rolled back, or, when ctx has ended or the connection broke,
	// Release destroys the connection and the server rolls back.
	defer rollback(ctx, conn)

	var b pgx.Batch
	b.Queue("BEGIN")
	b.Queue(selectUserForUpdate, uid)
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
	labels, err := labelsJSON(next)
	if err != nil {
		return nil, err
	}

	// The event is of the user as the update writes it: the columns the
	// update does not write keep their stored values.
	written := next.Clone()
	written.ID, written.CreateTime, written.Revision = cur.ID, cur.CreateTime, cur.Revision+1
	ev, changed := users.ChangeEvent(ctx, cur, written)

	b = pgx.Batch{}
	b.Queue(updateUser, uid, next.Email, users.EmailKey(next.Email), next.DisplayName, next.State.String(),
		labels, next.UpdateTime, nullTime(next.DeleteTime))
	if changed {
		sql, args, err := appendEventsStmt([]users.Event{ev})
		if err != nil {
			return nil, err
		}
		b.Queue(sql, args...)
	}
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, &b)
	got, err := scanUser(br.QueryRow())
	if err == nil && changed {
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
// deleted longest ago first, and appends their user.purged events, in one
// transaction; see users.UserStore.
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
	rows, err := tx.Query(ctx, purgeDeleted, before, limit)
	if err != nil {
		return 0, err
	}
	var (
		id  pgtype.UUID
		evs []users.Event
	)
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		evs = append(evs, users.PurgedEvent(ctx, uuid.UUID(id.Bytes).String()))
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := appendEvents(ctx, tx, evs); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return len(evs), nil
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
	id          pgtype.UUID
	email       string
	displayName string
	state       string
	labels      []byte
	createTime  time.Time
	updateTime  time.Time
	deleteTime  pgtype.Timestamptz
	revision    int64
}

// dest returns the scan destinations of the user columns, after extra.
func (r *userRow) dest(extra ...any) []any {
	return append(extra, &r.id, &r.email, &r.displayName, &r.state, &r.labels,
		&r.createTime, &r.updateTime, &r.deleteTime, &r.revision)
}

// user converts the row. Times come back in UTC; an empty labels object
// becomes a nil map and a NULL delete_time the zero time.
func (r *userRow) user() (*users.User, error) {
	u := &users.User{
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
// id ($1) for the caller.
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
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "users_email_key_live" {
		return errEmailInUse
	}
	return err
}
