package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Store keeps users, imports, events, webhooks, sink positions, tenants and
// groups on a DB: it is every store of package users (users.Store), one
// file per concept (users.go, imports.go, events.go, webhooks.go, sinks.go,
// tenants.go, groups.go). Writes run in
// IMMEDIATE transactions on the writer connection; reads that need a
// single statement run on the read-only pool. It is safe for concurrent
// use.
type Store struct {
	db    *DB
	jobs  Enqueuer
	stmts [numStmts]atomic.Pointer[sql.Stmt] // prepared on first use
}

var (
	_ users.UserStore    = (*Store)(nil)
	_ users.ImportStore  = (*Store)(nil)
	_ users.EventStore   = (*Store)(nil)
	_ users.WebhookStore = (*Store)(nil)
	_ users.SinkStore    = (*Store)(nil)
	_ users.TenantStore  = (*Store)(nil)
	_ users.GroupStore   = (*Store)(nil)
)

// errNoJobs is the error of CreateImport and DispatchEvents on a Store made
// without WithJobs.
var errNoJobs = errors.New("no job queue configured")

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
	// EnqueueSchemaCheckTx enqueues the job of a schema check within tx,
	// the transaction of the tenant's change that starts it. An error
	// rolls that change back.
	EnqueueSchemaCheckTx(ctx context.Context, tx *sql.Tx, c users.SchemaCheck) error
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

// The statements the Store prepares once and reuses.
type stmtID int

const (
	stmtGetUser             stmtID = iota // on the readers
	stmtGetUserTx                         // on the writer, within a transaction
	stmtGetKey                            // on the writer
	stmtInsertUser                        // on the writer
	stmtInsertUserUnlimited               // on the writer
	stmtInsertKey                         // on the writer
	stmtUpdateUser                        // on the writer
	stmtGetOperation                      // on the readers
	stmtGetOperationTx                    // on the writer, by request id
	stmtInsertOperation                   // on the writer
	stmtChunkState                        // on the writer
	stmtImportUser                        // on the writer
	stmtInsertChunk                       // on the writer
	stmtPurgeSelect                       // on the writer
	stmtDeleteUser                        // on the writer
	stmtInsertEvent                       // on the writer
	stmtListEvents                        // on the readers
	stmtPurgeEvents                       // on the writer
	stmtListEventsTx                      // on the writer, within a transaction
	stmtGetEvent                          // on the readers
	stmtPurgeTenantUsers                  // on the writer
	stmtTenantLimit                       // on the writer, within a transaction
	stmtLiveUsers                         // on the writer, within a transaction
	stmtListTenantEvents                  // on the readers
	numStmts
)

// readerStmts are the statements prepared on the readers.
var readerStmts = [numStmts]bool{stmtGetUser: true, stmtGetOperation: true, stmtListEvents: true, stmtGetEvent: true, stmtListTenantEvents: true}

// profileValues are the placeholders of usersql.WriteColumns after a
// user's first 11 columns.
const profileValues = "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21"

var queries = [numStmts]string{
	// By the primary key, then checked for the tenant (the unary + keeps
	// the tenant's indexes out of the plan; see BatchGetUsers).
	stmtGetUser:   selectUsers + "WHERE id = ?2 AND +tenant_id = ?1 AND " + liveTenant,
	stmtGetUserTx: selectUsers + "WHERE id = ?2 AND +tenant_id = ?1 AND " + liveTenant,
	stmtGetKey:    "SELECT fingerprint, user_id FROM idempotency_keys WHERE tenant_id = ?1 AND request_id = ?2",
	stmtInsertUser: "INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision, " +
		usersql.WriteColumns + ") " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, " + profileValues + ")",
	// stmtInsertUser if the tenant is live and has no limit; else nothing.
	stmtInsertUserUnlimited: "INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision, " +
		usersql.WriteColumns + ") " +
		"SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, " + profileValues + " WHERE (SELECT max_users FROM tenants WHERE id = ?1 AND state = 'ACTIVE') = 0",
	stmtInsertKey: "INSERT INTO idempotency_keys (tenant_id, request_id, fingerprint, user_id, create_time) VALUES (?1, ?2, ?3, ?4, ?5)",
	stmtUpdateUser: "UPDATE users SET email = ?2, email_key = ?3, display_name = ?4, state = ?5, labels = ?6, " +
		"update_time = ?7, delete_time = ?8, revision = revision + 1, " +
		"external_id = ?9, given_name = ?10, family_name = ?11, phone_number = ?12, email_verified = ?13, " +
		"phone_verified = ?14, locale = ?15, time_zone = ?16, attributes = ?17, search_key = ?18 WHERE id = ?1",
	stmtGetOperation:    selectOperation + "WHERE o.tenant_id = ?1 AND o.id = ?2 AND " + liveTenant,
	stmtGetOperationTx:  selectOperation + "WHERE o.tenant_id = ?1 AND o.request_id = ?2",
	stmtInsertOperation: "INSERT INTO operations (tenant_id, id, request_id, fingerprint, total, chunks, create_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	// The operation's tenant (NULL when there is no such operation), and
	// whether the chunk has finished.
	stmtChunkState: "SELECT (SELECT tenant_id FROM operations WHERE id = ?1), " +
		"EXISTS (SELECT 1 FROM operation_chunks WHERE operation_id = ?1 AND chunk = ?2)",
	// An address taken by a live user, stored before or earlier in the
	// same chunk, makes the insert do nothing; any other conflict (an
	// external id or an id in use) is an error.
	stmtImportUser: "INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision, " +
		usersql.WriteColumns + ") " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, " + profileValues + ") " +
		"ON CONFLICT (tenant_id, email_key) WHERE state <> 'DELETED' DO NOTHING",
	stmtInsertChunk: "INSERT INTO operation_chunks (operation_id, chunk, imported, failed, failures, finish_time) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	stmtPurgeSelect: "SELECT tenant_id, id FROM users WHERE state = 'DELETED' AND delete_time < ?1 ORDER BY delete_time LIMIT ?2",
	// The users of the tenants deleted before the time.
	stmtPurgeTenantUsers: "SELECT u.tenant_id, u.id FROM tenants t JOIN users u ON u.tenant_id = t.id " +
		"WHERE t.state = 'DELETED' AND t.delete_time < ?1 LIMIT ?2",
	// Deleting a user cascades to its idempotency keys.
	stmtDeleteUser: "DELETE FROM users WHERE id = ?1",
	stmtInsertEvent: "INSERT INTO events (id, tenant_id, type, user_id, snapshot, paths, time, trace_parent, group_id) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	stmtListEvents:       listEventsSQL,
	stmtListEventsTx:     listEventsSQL,
	stmtListTenantEvents: listTenantEventsSQL,
	stmtGetEvent:         "SELECT " + eventColumns + " FROM events WHERE id = ?1",
	stmtPurgeEvents: "DELETE FROM events WHERE seq IN (SELECT seq FROM events " +
		"WHERE time < ?1 ORDER BY time LIMIT ?2)",
	stmtTenantLimit: "SELECT max_users FROM tenants WHERE id = ?1 AND state = 'ACTIVE'",
	stmtLiveUsers:   usersql.LiveUsers(usersql.SQLite),
}

// liveTenant is usersql.LiveTenant of the tenant bound to ?1.
var liveTenant = usersql.LiveTenant("?1")

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
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if !s.stmts[id].CompareAndSwap(nil, st) {
		st.Close() // another caller prepared it first
		return s.stmts[id].Load(), nil
	}
	return st, nil
}

// wrap is usersql.Wrap with this store's classify: every exported method
// that a users store interface declares defers it once, on its named error
// result, so that no error leaves unclassified or wrapped twice.
func wrap(ctx context.Context, errp *error, format string, args ...string) {
	usersql.Wrap(ctx, errp, classify, format, args...)
}

// nullTime is t in microseconds, or NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// queryer is the reader pool or a writer transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is one row to read: a *sql.Row, or *sql.Rows at its current
// row.
type rowScanner = interface{ Scan(dest ...any) error }

// collect reads every row of rows with scan, appending to out, and closes
// rows, so that the statement runs to its end. It returns the first error
// of a scan, of the iteration or of the close.
func collect[T any](rows *sql.Rows, out []T, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, rows.Close()
}
