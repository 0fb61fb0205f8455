package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Store keeps users, imports, events, webhooks, sink positions, tenants and
// groups in PostgreSQL: it is every store of package users (users.Store),
// one file per concept (users.go, imports.go, events.go, webhooks.go,
// sinks.go, tenants.go, groups.go). It is safe for concurrent use.
type Store struct {
	pool           *pgxpool.Pool
	jobs           Enqueuer
	acquireTimeout time.Duration
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
// (jobs.Queue). The Store calls it within the transaction that records why
// the jobs exist (the operation, the dispatcher's advanced position), so the
// jobs exist if and only if that commits.
type Enqueuer interface {
	// EnqueueImportTx enqueues one job per chunk within tx. An error rolls
	// the whole import back.
	EnqueueImportTx(ctx context.Context, tx pgx.Tx, chunks []users.ImportChunk) error
	// EnqueueDeliveriesTx enqueues one delivery job per element within tx.
	// An error rolls the whole dispatch back.
	EnqueueDeliveriesTx(ctx context.Context, tx pgx.Tx, deliveries []users.Delivery) error
	// EnqueueSchemaCheckTx enqueues the job of a schema check within tx,
	// the transaction of the tenant's change that starts it. An error
	// rolls that change back.
	EnqueueSchemaCheckTx(ctx context.Context, tx pgx.Tx, c users.SchemaCheck) error
}

// An Option configures a Store.
type Option func(*Store)

// WithJobs makes CreateImport and DispatchEvents enqueue their jobs on j.
// Without it, they fail.
func WithJobs(j Enqueuer) Option {
	return func(s *Store) { s.jobs = j }
}

// WithAcquireTimeout bounds the wait for a free connection of the pool
// (DefaultAcquireTimeout without it): a call that waits longer fails with
// users.ErrUnavailable, cause "pool_exhausted".
func WithAcquireTimeout(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.acquireTimeout = d
		}
	}
}

// NewStore returns a Store on pool, whose database must be migrated (see
// Migrate). The Store does not own the pool: the caller closes it.
func NewStore(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, acquireTimeout: DefaultAcquireTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", classify(ctx, err))
	}
	return nil
}

// wrap is usersql.Wrap with this store's classify: every exported method
// that a users store interface declares defers it once, on its named error
// result, so that no error leaves unclassified or wrapped twice. Store.do
// classifies too, to decide on its retries; classifying again changes
// nothing.
func wrap(ctx context.Context, errp *error, format string, args ...string) {
	usersql.Wrap(ctx, errp, classify, format, args...)
}

// rollback ends the transaction left open on c, if any. When ctx has ended
// it does not try: c.Release then destroys the connection, which rolls back
// on the server without making the caller wait.
func rollback(ctx context.Context, c *pgxpool.Conn) {
	pc := c.Conn().PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' || ctx.Err() != nil {
		return
	}
	_, _ = c.Exec(ctx, "ROLLBACK") // on failure Release destroys c
}

// parseID reads a user id in its canonical form, the only form stored ids
// have, and reports whether id was one.
func parseID(id string) (pgtype.UUID, bool) {
	if len(id) != 36 || strings.ContainsAny(id, "ABCDEF") {
		return pgtype.UUID{}, false
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return pgtype.UUID{}, false
	}
	return pgUUID(u), true
}

func pgUUID(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}
