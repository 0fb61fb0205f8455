package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Store is a users.Store on a DB. Writes run in IMMEDIATE transactions on
// the writer connection; reads that need a single statement run on the
// read-only pool. It is safe for concurrent use.
type Store struct {
	db    *DB
	jobs  Enqueuer
	stmts [numStmts]atomic.Pointer[sql.Stmt] // prepared on first use
}

var _ users.Store = (*Store)(nil)

// Enqueuer enqueues the jobs of bulk imports and webhook deliveries
// (jobs.Queue). The Store calls it within the writer transaction that
// records why the jobs exist (the operation, the dispatcher's advanced
// position), so the jobs exist if and only if that commits.
type Enqueuer interface {
	// EnqueueImportTx enqueues one job per chunk within tx. An error rolls
	// the whole import back.
	EnqueueImportTx(ctx context.Context, tx *sql.Tx, chunks []users.ImportChunk) error
	// EnqueueDeliveriesTx enqueues one delivery job per element within tx.
	// An error rolls the whole dispatch back.
	EnqueueDeliveriesTx(ctx context.Context, tx *sql.Tx, deliveries []users.Delivery) error
}

// An Option configures a Store.
type Option func(*Store)

// WithJobs makes CreateImport and DispatchEvents enqueue their jobs on j.
// Without it, they fail.
func WithJobs(j Enqueuer) Option {
	return func(s *Store) { s.jobs = j }
}

// NewStore returns a Store on db. The schema must be migrated (see Migrate)
// before the Store is used; the Store does not outlive db.
func NewStore(db *DB, opts ...Option) *Store {
	s := &Store{db: db}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Ping reports whether both the readers and the writer can reach the
// database. It waits for the writer if a write is in progress.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping reader: %w", err)
	}
	if err := s.db.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping writer: %w", err)
	}
	return nil
}

// userColumns are the columns scanUser reads, in its order.
const userColumns = "id, email, display_name, state, labels, create_time, update_time, delete_time, revision"

const selectUsers = "SELECT " + userColumns + " FROM users "

// The statements the Store prepares once and reuses.
type stmtID int

const (
	stmtGetUser         stmtID = iota // on the readers
	stmtGetUserTx                     // on the writer, within a transaction
	stmtGetKey                        // on the writer
	stmtInsertUser                    // on the writer
	stmtInsertKey                     // on the writer
	stmtUpdateUser                    // on the writer
	stmtGetOperation                  // on the readers
	stmtGetOperationTx                // on the writer, by request id
	stmtInsertOperation               // on the writer
	stmtChunkState                    // on the writer
	stmtImportUser                    // on the writer
	stmtInsertChunk                   // on the writer
	stmtPurgeSelect                   // on the writer
	stmtDeleteUser                    // on the writer
	stmtInsertEvent                   // on the writer
	stmtListEvents                    // on the readers
	stmtPurgeEvents                   // on the writer
	stmtListEventsTx                  // on the writer, within a transaction
	stmtGetEvent                      // on the readers
	numStmts
)

// readerStmts are the statements prepared on the readers.
var readerStmts = [numStmts]bool{stmtGetUser: true, stmtGetOperation: true, stmtListEvents: true, stmtGetEvent: true}

var queries = [numStmts]string{
	stmtGetUser:   selectUsers + "WHERE id = ?1",
	stmtGetUserTx: selectUsers + "WHERE id = ?1",
	stmtGetKey:    "SELECT fingerprint, user_id FROM idempotency_keys WHERE request_id = ?1",
	stmtInsertUser: "INSERT INTO users (id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
	stmtInsertKey: "INSERT INTO idempotency_keys (request_id, fingerprint, user_id, create_time) VALUES (?1, ?2, ?3, ?4)",
	stmtUpdateUser: "UPDATE users SET email = ?2, email_key = ?3, display_name = ?4, state = ?5, labels = ?6, " +
		"update_time = ?7, delete_time = ?8, revision = revision + 1 WHERE id = ?1",
	stmtGetOperation:    selectOperation + "WHERE o.id = ?1",
	stmtGetOperationTx:  selectOperation + "WHERE o.request_id = ?1",
	stmtInsertOperation: "INSERT INTO operations (id, request_id, fingerprint, total, chunks, create_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	stmtChunkState: "SELECT EXISTS (SELECT 1 FROM operations WHERE id = ?1), " +
		"EXISTS (SELECT 1 FROM operation_chunks WHERE operation_id = ?1 AND chunk = ?2)",
	// An address taken by a live user, stored before or earlier in the
	// same chunk, makes the insert do nothing; any other conflict (an id
	// in use) is an error.
	stmtImportUser: "INSERT INTO users (id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) " +
		"ON CONFLICT (email_key) WHERE state <> 'DELETED' DO NOTHING",
	stmtInsertChunk: "INSERT INTO operation_chunks (operation_id, chunk, imported, failed, failures, finish_time) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	stmtPurgeSelect: "SELECT id FROM users WHERE state = 'DELETED' AND delete_time < ?1 ORDER BY delete_time LIMIT ?2",
	// Deleting a user cascades to its idempotency keys.
	stmtDeleteUser: "DELETE FROM users WHERE id = ?1",
	stmtInsertEvent: "INSERT INTO events (id, type, user_id, snapshot, paths, time, trace_parent) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	stmtListEvents:   listEventsSQL,
	stmtListEventsTx: listEventsSQL,
	stmtGetEvent:     "SELECT " + eventColumns + " FROM events WHERE id = ?1",
	stmtPurgeEvents: "DELETE FROM events WHERE seq IN (SELECT seq FROM events " +
		"WHERE time < ?1 ORDER BY time LIMIT ?2)",
}

// stmt returns the prepared statement id, preparing it on first use. A
// writer statement must be fetched before the writer transaction begins:
// preparing needs the writer connection, which the transaction holds.
// No lock is held while preparing, so a caller waiting for the writer
// holds up no one else.
func (s *Store) stmt(ctx context.Context, id stmtID) (*sql.Stmt, error) {
	if st := s.stmts[id].Load(); st != nil {
		return st, nil
	}
	pool := s.db.writer
	if readerStmts[id] {
		pool = s.db.reader
	}
	st, err := pool.PrepareContext(ctx, queries[id])
	if err != nil {
		return nil, fmt.Errorf("sqlite: prepare: %w", err)
	}
	if !s.stmts[id].CompareAndSwap(nil, st) {
		st.Close() // another caller prepared it first
		return s.stmts[id].Load(), nil
	}
	return st, nil
}

// CreateUser inserts u, and the idempotency key if there is one, in one
// writer transaction; see users.Store.
func (s *Store) CreateUser(ctx context.Context, u *users.User, key *users.IdempotencyKey) (_ *users.User, err error) {
	defer classifyErr(ctx, &err)
	labels, err := encodeLabels(u.Labels)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.ID, err)
	}
	insertUser, err := s.stmt(ctx, stmtInsertUser)
	if err != nil {
		return nil, err
	}
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
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
		return nil, fmt.Errorf("create user %s: %w", u.ID, err)
	}
	defer tx.Rollback()

	if key != nil {
		var (
			fingerprint []byte
			userID      string
		)
		err := tx.StmtContext(ctx, getKey).QueryRowContext(ctx, key.RequestID).Scan(&fingerprint, &userID)
		switch {
		case err == nil:
			if !bytes.Equal(fingerprint, key.Fingerprint) {
				return nil, &users.InvalidError{
					Violations: []users.FieldViolation{{
						Field:       "request_id",
						Description: "request_id was already used for a different request",
					}},
					Reason: users.ReasonRequestIDReused,
				}
			}
			got, err := scanUser(tx.StmtContext(ctx, getUser).QueryRowContext(ctx, userID))
			if err != nil {
				return nil, fmt.Errorf("user %s of request %s: %w", userID, key.RequestID, err)
			}
			if err := tx.Commit(); err != nil {
				return nil, fmt.Errorf("create user %s: %w", u.ID, err)
			}
			return got, nil
		case !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("request %s: %w", key.RequestID, err)
		}
	}

	_, err = tx.StmtContext(ctx, insertUser).ExecContext(ctx,
		u.ID, u.Email, users.EmailKey(u.Email), u.DisplayName, u.State.String(), labels,
		u.CreateTime.UnixMicro(), u.UpdateTime.UnixMicro(), nullTime(u.DeleteTime), u.Revision)
	if err != nil {
		return nil, writeError(u.ID, err)
	}
	if key != nil {
		fingerprint := key.Fingerprint
		if fingerprint == nil {
			fingerprint = []byte{} // nil would bind NULL
		}
		_, err = tx.StmtContext(ctx, insertKey).ExecContext(ctx,
			key.RequestID, fingerprint, u.ID, u.CreateTime.UnixMicro())
		if err != nil {
			return nil, fmt.Errorf("request %s: %w", key.RequestID, err)
		}
	}
	created := stored(u.Clone())
	if err := appendEvents(ctx, tx.StmtContext(ctx, insertEvent), users.CreatedEvent(ctx, created)); err != nil {
		return nil, fmt.Errorf("create user %s: %w", u.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("create user %s: %w", u.ID, err)
	}
	s.db.afterCommit(ctx)
	return created, nil
}

// GetUser returns the user with the id from the readers; see users.Store.
func (s *Store) GetUser(ctx context.Context, id string) (_ *users.User, err error) {
	defer classifyErr(ctx, &err)
	get, err := s.stmt(ctx, stmtGetUser)
	if err != nil {
		return nil, err
	}
	u, err := scanUser(get.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s: %w", id, users.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// BatchGetUsers returns the users with the ids, in one statement on the
// readers; see users.Store.
func (s *Store) BatchGetUsers(ctx context.Context, ids []string) (_ []*users.User, err error) {
	defer classifyErr(ctx, &err)
	if len(ids) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.Grow(len(selectUsers) + len("WHERE id IN (?)") + 2*(len(ids)-1))
	b.WriteString(selectUsers)
	b.WriteString("WHERE id IN (?")
	for range len(ids) - 1 {
		b.WriteString(",?")
	}
	b.WriteString(")")
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	us, err := s.query(ctx, b.String(), args, len(ids))
	if err != nil {
		return nil, fmt.Errorf("batch get users: %w", err)
	}
	return us, nil
}

// ListUsers returns a page of users from the readers, with the SQL of
// usersql.ListClause; see users.Store.
func (s *Store) ListUsers(ctx context.Context, q users.ListQuery) (_ []*users.User, err error) {
	defer classifyErr(ctx, &err)
	clause, args, err := usersql.ListClause(usersql.SQLite, q)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	us, err := s.query(ctx, selectUsers+clause, args, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// query runs a select of userColumns on the readers and reads every row.
func (s *Store) query(ctx context.Context, query string, args []any, sizeHint int) ([]*users.User, error) {
	rows, err := s.db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var us []*users.User
	if sizeHint > 0 {
		us = make([]*users.User, 0, min(sizeHint, 1000))
	}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return us, rows.Close()
}

// UpdateUser reads the user in a writer transaction, which holds the
// database's write lock from its start, lets fn change a copy and writes it
// back; see users.Store.
func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*users.User) error) (_ *users.User, err error) {
	defer classifyErr(ctx, &err)
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

	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("update user %s: %w", id, err)
	}
	defer tx.Rollback()

	old, err := scanUser(tx.StmtContext(ctx, getUser).QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %s: %w", id, users.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	u := old.Clone()
	if err := fn(u); err != nil {
		return nil, err
	}
	labels, err := encodeLabels(u.Labels)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", id, err)
	}
	_, err = tx.StmtContext(ctx, updateUser).ExecContext(ctx,
		id, u.Email, users.EmailKey(u.Email), u.DisplayName, u.State.String(), labels,
		u.UpdateTime.UnixMicro(), nullTime(u.DeleteTime))
	if err != nil {
		return nil, writeError(id, err)
	}
	// The columns UpdateUser does not write keep their stored values.
	u.ID, u.CreateTime, u.Revision = old.ID, old.CreateTime, old.Revision+1
	u = stored(u)
	if ev, ok := users.ChangeEvent(ctx, old, u); ok {
		if err := appendEvents(ctx, tx.StmtContext(ctx, insertEvent), ev); err != nil {
			return nil, fmt.Errorf("update user %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("update user %s: %w", id, err)
	}
	s.db.afterCommit(ctx)
	return u, nil
}

// writeError translates an error from inserting or updating user id.
func writeError(id string, err error) error {
	var serr *msqlite.Error
	// users_email_key_live is the only UNIQUE index on users; the primary
	// key reports SQLITE_CONSTRAINT_PRIMARYKEY.
	if errors.As(err, &serr) && serr.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return fmt.Errorf("user %s: email address already in use: %w", id, users.ErrEmailTaken)
	}
	return fmt.Errorf("write user %s: %w", id, err)
}

// scanUser reads the userColumns of one row.
func scanUser(row interface{ Scan(...any) error }) (*users.User, error) {
	var (
		u                      users.User
		state, labels          string
		createTime, updateTime int64
		deleteTime             sql.NullInt64
	)
	err := row.Scan(&u.ID, &u.Email, &u.DisplayName, &state, &labels, &createTime, &updateTime, &deleteTime, &u.Revision)
	if err != nil {
		return nil, err
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

// nullTime is t in microseconds, or NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
