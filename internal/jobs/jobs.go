// Package jobs runs usersd's durable background work on River
// (riverqueue.com): jobs are rows in the database, inserted in the same
// transaction as the change that causes them, and worked by bounded pools,
// one per queue, with retries and backoff. The jobs of a process that died
// run again within seconds (liveness locks on Postgres, a rescue at start
// on SQLite), and a lease is the backstop for a job that never returns. The
// same code runs on Postgres (River's pgx v5 driver) and on SQLite (its
// database/sql driver); docs/jobs.md says how it fits together and how to
// add a kind.
package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// The queues. Each has its own bounded pool of workers.
const (
	// QueueImport runs the chunks of bulk imports, and schema checks.
	QueueImport = "import"
	// QueueMaintenance runs periodic housekeeping such as the purge.
	QueueMaintenance = "maintenance"
	// QueueWebhooks runs webhook deliveries.
	QueueWebhooks = "webhooks"
	// QueueRelay runs the event relays: the webhook dispatcher and the
	// NATS publisher, one job of each at a time, so that deliveries,
	// however slow, never hold them up.
	QueueRelay = "relay"
)

// relayWorkers sizes QueueRelay's pool: a dispatcher and a publisher.
const relayWorkers = 2

// Defaults of Config.
const (
	DefaultImportWorkers      = 2
	DefaultMaintenanceWorkers = 1
	DefaultLease              = 5 * time.Minute
	DefaultMaxAttempts        = 10
	DefaultPurgeEvery         = time.Hour
	DefaultPollInterval       = time.Second
	DefaultWebhookWorkers     = 8
	DefaultRetryBase          = time.Second
	DefaultRetryMax           = time.Hour
	DefaultRelayEvery         = time.Second
	// hardStopWait bounds how long Stop waits for cancelled jobs to return
	// once its own deadline has passed.
	hardStopWait = 5 * time.Second
)

// Config holds a Queue's settings, those of its insert-only client and of
// its workers alike: the two River clients are built from the same values,
// so they agree. The zero value is usable.
type Config struct {
	// ImportWorkers and MaintenanceWorkers size the pools of the queues.
	ImportWorkers      int
	MaintenanceWorkers int
	// Lease is how long a job may stay running before it is taken to be
	// stuck and run again: the backstop for a live process whose job never
	// returns (a dead process's jobs do not wait for it). A job's own
	// timeout is half of it, so a live worker always gives up first.
	Lease time.Duration
	// MaxAttempts is how many times a failing job runs before it is
	// discarded (recorded on each job as it is inserted); the retries back
	// off exponentially, with jitter.
	MaxAttempts int
	// RetryBase is the wait before a failed job's first retry; each
	// retry waits twice as long as the one before, up to RetryMax, with
	// ±10% jitter.
	RetryBase time.Duration
	RetryMax  time.Duration
	// PurgeEvery is how often the purge of deleted users runs (and once at
	// start).
	PurgeEvery time.Duration
	// PollInterval is how often idle workers look for new jobs.
	PollInterval time.Duration
	// WebhookWorkers sizes the webhooks queue's pool: the delivery jobs
	// this replica runs at once; one subscription runs at most half of
	// them.
	WebhookWorkers int
	// RelayEvery is how often new events are dispatched to webhooks and
	// published to NATS.
	RelayEvery time.Duration

	Log        zerolog.Logger
	Registerer prometheus.Registerer // nil: no metrics
}

func (c *Config) defaults() {
	c.ImportWorkers = cmp.Or(c.ImportWorkers, DefaultImportWorkers)
	c.MaintenanceWorkers = cmp.Or(c.MaintenanceWorkers, DefaultMaintenanceWorkers)
	c.Lease = cmp.Or(c.Lease, DefaultLease)
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.PurgeEvery = cmp.Or(c.PurgeEvery, DefaultPurgeEvery)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	c.WebhookWorkers = cmp.Or(c.WebhookWorkers, DefaultWebhookWorkers)
	c.RelayEvery = cmp.Or(c.RelayEvery, DefaultRelayEvery)
	c.RetryBase = cmp.Or(c.RetryBase, DefaultRetryBase)
	c.RetryMax = max(cmp.Or(c.RetryMax, DefaultRetryMax), c.RetryBase)
}

// Deps is what the workers hand their work to, besides the service.
type Deps struct {
	// Deliverer POSTs webhook deliveries; nil: webhooks are not dispatched.
	Deliverer *webhooks.Deliverer
	// Publisher, when set, gets every event (NATS JetStream).
	Publisher Publisher
	// TracerProvider makes the spans of the jobs' runs; nil: no spans.
	TracerProvider trace.TracerProvider
}

// Publisher publishes an event elsewhere (natsevents.Publisher).
type Publisher interface {
	Publish(ctx context.Context, ev users.Event) error
}

// Queue is River on one database: TTx is that database's transaction type
// (pgx.Tx or *sql.Tx). It needs only the database: it enqueues jobs inside
// the stores' transactions through an insert-only River client (no queues,
// never started: no goroutine, no connection of its own, no listener), so a
// store can be built on it before the service the workers need exists.
// Start then starts the workers, with a second River client on the same
// driver.
type Queue[TTx any] struct {
	driver  riverdriver.Driver[TTx]
	client  *river.Client[TTx] // insert-only
	inserts *inserts
	cfg     Config // defaults applied
	tables  tables
	// newRecovery returns, for the workers, how they bring back the jobs
	// of dead processes, their River client ID ("": River's default), and
	// the middleware to run around the jobs, outside the observer.
	newRecovery func(log zerolog.Logger) (recovery, string, []rivertype.Middleware)
	started     atomic.Bool
}

// NewPostgres returns the queue on a Postgres pool. Its tables must exist:
// see MigratePostgres.
func NewPostgres(pool *pgxpool.Pool, cfg Config) (*Queue[pgx.Tx], error) {
	driver := riverpgxv5.New(pool)
	return newQueue(driver, cfg, pgTables(pool), func(log zerolog.Logger) (recovery, string, []rivertype.Middleware) {
		l := newLifeline(pool, driver, log)
		return l, l.id, []rivertype.Middleware{l}
	})
}

// NewSQLite returns the queue on a SQLite database, given its single writer
// connection pool: River and the store share it, so their writes queue for
// the one connection instead of failing with SQLITE_BUSY. Its tables must
// exist: see MigrateSQLite.
func NewSQLite(writer *sql.DB, cfg Config) (*Queue[*sql.Tx], error) {
	driver := riversqlite.New(writer)
	return newQueue(driver, cfg, sqlTables(writer), func(zerolog.Logger) (recovery, string, []rivertype.Middleware) {
		return atStart{driver: driver}, "", nil
	})
}

// newQueue returns the queue on driver's database, whose tables t reads.
// It registers the metrics of inserts and of the queue's depth.
func newQueue[TTx any](driver riverdriver.Driver[TTx], cfg Config, t tables, rec func(zerolog.Logger) (recovery, string, []rivertype.Middleware)) (*Queue[TTx], error) {
	cfg.defaults()
	if cfg.ImportWorkers < 0 || cfg.MaintenanceWorkers < 0 || cfg.WebhookWorkers < 0 {
		return nil, errors.New("jobs: worker counts must not be negative")
	}
	ins := newInserts()
	d := newDepthCollector(t.depth)
	if err := cfg.register(ins.enqueued, d); err != nil {
		return nil, err
	}
	client, err := river.NewClient(driver, clientConfig(cfg, ins))
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Queue[TTx]{driver: driver, client: client, inserts: ins, cfg: cfg, tables: t, newRecovery: rec}, nil
}

// clientConfig is the River configuration both clients share: what decides
// how a job is inserted (its max attempts, the trace and counter of the
// insert middleware, how often an insert may notify the workers), the poll
// interval and the logger. The driver, and so the schema (River's default),
// is the Queue's for both.
func clientConfig(cfg Config, ins *inserts) *river.Config {
	return &river.Config{
		MaxAttempts:       cfg.MaxAttempts,
		FetchPollInterval: cfg.PollInterval,
		FetchCooldown:     min(river.FetchCooldownDefault, cfg.PollInterval),
		Logger:            slog.New(zerolog.NewSlogHandler(cfg.Log.With().Str("component", "jobs").Logger())),
		Middleware:        []rivertype.Middleware{ins},
	}
}

// EnqueueImportTx enqueues one job per chunk of an import, inside tx: the
// jobs exist if and only if tx commits. The trace of ctx goes with them.
func (q *Queue[TTx]) EnqueueImportTx(ctx context.Context, tx TTx, chunks []users.ImportChunk) error {
	args := make([]river.JobArgs, len(chunks))
	for i, c := range chunks {
		args[i] = importArgs(c)
	}
	return q.insertTx(ctx, tx, "import chunks", args)
}

// EnqueueSchemaCheckTx enqueues the job of a schema check inside tx, the
// transaction of the tenant's change that starts it.
func (q *Queue[TTx]) EnqueueSchemaCheckTx(ctx context.Context, tx TTx, c users.SchemaCheck) error {
	args := CheckSchemaArgs{Tenant: c.Tenant, OperationID: c.OperationID, Schema: c.Schema, CreateTime: c.CreateTime}
	return q.insertTx(ctx, tx, "schema check", []river.JobArgs{args})
}

// EnqueueDeliveriesTx enqueues the deliveries inside tx, one job per
// subscription and up to DeliverBatchSize events: the store's
// DispatchEvents calls it in the transaction that advances its position.
func (q *Queue[TTx]) EnqueueDeliveriesTx(ctx context.Context, tx TTx, deliveries []users.Delivery) error {
	return q.insertTx(ctx, tx, "delivery batches", deliveryBatches(deliveries))
}

// insertTx inserts the jobs inside tx.
func (q *Queue[TTx]) insertTx(ctx context.Context, tx TTx, what string, args []river.JobArgs) error {
	if len(args) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(args))
	for i, a := range args {
		params[i] = river.InsertManyParams{Args: a}
	}
	if _, err := q.client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("jobs: enqueueing %d %s: %w", len(args), what, err)
	}
	return nil
}

// register registers the collectors with the Registerer, if any.
func (c *Config) register(cs ...prometheus.Collector) error {
	if c.Registerer == nil {
		return nil
	}
	for _, col := range cs {
		if err := c.Registerer.Register(col); err != nil {
			return fmt.Errorf("jobs: registering metrics: %w", err)
		}
	}
	return nil
}

// relayTimeout bounds one run of a relay job: relayTimeout, or half the
// lease if that is shorter.
func (c *Config) relayTimeout() time.Duration { return min(relayTimeout, c.Lease/2) }

// Start starts the workers: a River client with the pools, the workers
// (which call svc and deps) and the periodic jobs, working the queue's jobs
// until Stop. Before the workers start, on SQLite it puts every job still
// running back in the queue (their process died), and on Postgres it takes
// this process's liveness lock and starts looking for the jobs of dead
// processes, until Stop (docs/jobs.md). A Queue starts once.
func (q *Queue[TTx]) Start(ctx context.Context, svc *users.Service, deps Deps) (*Workers, error) {
	if q.started.Swap(true) {
		return nil, errors.New("jobs: the workers were started already")
	}
	cfg := q.cfg
	w := &workers{
		svc: svc, deliverer: deps.Deliverer, publisher: deps.Publisher, relayTimeout: cfg.relayTimeout(),
		maxAttempts: cfg.MaxAttempts, retry: backoff{base: cfg.RetryBase, max: cfg.RetryMax},
	}
	w.subs = newSubscriptions(cfg.WebhookWorkers, w.retry)
	tp := deps.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	o, err := newObserver(cfg, tp)
	if err != nil {
		return nil, err
	}
	rw := river.NewWorkers()
	river.AddWorker(rw, &importWorker{w: w})
	river.AddWorker(rw, &checkSchemaWorker{w: w})
	river.AddWorker(rw, &purgeWorker{w: w})
	river.AddWorker(rw, &purgeEventsWorker{w: w})
	river.AddWorker(rw, &dispatchWorker{w: w})
	river.AddWorker(rw, &deliverWorker{w: w})
	river.AddWorker(rw, &deliverBatchWorker{w: w})
	river.AddWorker(rw, &publishWorker{w: w})
	periodic := func(every time.Duration, args river.JobArgs) *river.PeriodicJob {
		return river.NewPeriodicJob(
			river.PeriodicInterval(every),
			func() (river.JobArgs, *river.InsertOpts) { return args, nil },
			&river.PeriodicJobOpts{ID: args.Kind(), RunOnStart: true},
		)
	}
	jobs := []*river.PeriodicJob{periodic(cfg.PurgeEvery, PurgeArgs{}), periodic(cfg.PurgeEvery, PurgeEventsArgs{})}
	var sinks []string
	if deps.Deliverer != nil {
		jobs = append(jobs, periodic(cfg.RelayEvery, DispatchArgs{}))
		sinks = append(sinks, sinkWebhooks)
	}
	if deps.Publisher != nil {
		jobs = append(jobs, periodic(cfg.RelayEvery, PublishArgs{}))
		sinks = append(sinks, sinkNATS)
	}
	w.events = newEventMetrics(svc, sinks, q.tables.backlogs)
	if err := cfg.register(w.events); err != nil {
		return nil, err
	}
	rec, id, mw := q.newRecovery(cfg.Log)
	rc := clientConfig(cfg, q.inserts)
	rc.ID = id
	rc.Queues = map[string]river.QueueConfig{
		QueueImport:      {MaxWorkers: cfg.ImportWorkers},
		QueueMaintenance: {MaxWorkers: cfg.MaintenanceWorkers},
		QueueWebhooks:    {MaxWorkers: cfg.WebhookWorkers},
		QueueRelay:       {MaxWorkers: relayWorkers},
	}
	rc.Workers = rw
	rc.PeriodicJobs = jobs
	rc.JobTimeout = cfg.Lease / 2
	rc.RescueStuckJobsAfter = cfg.Lease
	rc.RetryPolicy = w.retry
	// The recovery's middleware outermost, then the observer; periodic
	// jobs go through the insert middleware, as the store's jobs do.
	rc.Middleware = append(append(mw, rc.Middleware...), o)
	client, err := river.NewClient(q.driver, rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	w.insert = func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error {
		if _, err := client.Insert(ctx, args, opts); err != nil {
			return fmt.Errorf("jobs: enqueueing %s: %w", args.Kind(), err)
		}
		return nil
	}
	if err := rec.start(ctx, o); err != nil {
		return nil, err
	}
	if err := client.Start(ctx); err != nil {
		rec.stop()
		return nil, fmt.Errorf("jobs: starting: %w", err)
	}
	return &Workers{client: client, observe: o, recover: rec, log: cfg.Log}, nil
}

// Workers work a Queue's jobs, from Start until Stop.
type Workers struct {
	client  runner
	observe *observer
	recover recovery
	log     zerolog.Logger
	stopped atomic.Bool
}

// runner is what Workers do with their River client, whatever its
// transaction type.
type runner interface {
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	ID() string
}

// Stop stops taking jobs and waits for the running ones to finish until ctx
// ends; then it cancels them, and they go back to the queue to run again
// after their backoff. It returns an error if jobs had to be cancelled.
// Only the first call does anything.
func (w *Workers) Stop(ctx context.Context) error {
	if w.stopped.Swap(true) {
		return nil
	}
	start := time.Now()
	err := w.client.Stop(ctx)
	var cancelled int64
	if err != nil {
		cancelled = w.observe.running.Load()
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hardStopWait)
		defer cancel()
		err = w.client.StopAndCancel(hctx)
		if cancelled > 0 {
			err = errors.Join(fmt.Errorf("jobs: %d running jobs cancelled at the shutdown deadline; they will run again", cancelled), err)
		}
	}
	// Only now that no job runs may this process look dead.
	w.recover.stop()
	w.log.Info().Dur("took", time.Since(start)).Int64("cancelled", cancelled).Msg("shutdown: job workers stopped")
	return err
}

// workers holds what the workers need.
type workers struct {
	relayTimeout time.Duration
	svc          *users.Service
	deliverer    *webhooks.Deliverer
	publisher    Publisher
	events       *eventMetrics
	maxAttempts  int     // of a webhook delivery, as of any job
	retry        backoff // the wait before a delivery's next attempt, as before a job's
	// insert enqueues a job outside any transaction (set once the client
	// exists, before it starts).
	insert func(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) error
	// subs is what this replica keeps of each subscription: its running
	// delivery jobs and its circuit.
	subs *subscriptions
}

// MigratePostgres creates or updates River's tables. Replicas starting at
// once take turns under an advisory lock.
func MigratePostgres(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("jobs: migrating: %w", err)
	}
	defer conn.Release()
	// The key is arbitrary but fixed: "usersd-river" in ASCII, truncated.
	const lockKey = 0x7573657273642d72
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(lockKey)); err != nil {
		return fmt.Errorf("jobs: migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(lockKey))
	return migrateUp(ctx, riverpgxv5.New(pool), log)
}

// MigrateSQLite creates or updates River's tables through the writer.
func MigrateSQLite(ctx context.Context, writer *sql.DB, log *slog.Logger) error {
	return migrateUp(ctx, riversqlite.New(writer), log)
}

func migrateUp[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], log *slog.Logger) error {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("jobs: migrating: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrating: %w", err)
	}
	return nil
}

// PendingPostgres and PendingSQLite report whether River's tables lack a
// migration this build knows.
func PendingPostgres(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	return pending(ctx, riverpgxv5.New(pool))
}

// PendingSQLite: see PendingPostgres.
func PendingSQLite(ctx context.Context, writer *sql.DB) (bool, error) {
	return pending(ctx, riversqlite.New(writer))
}

func pending[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) (bool, error) {
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return false, fmt.Errorf("jobs: %w", err)
	}
	have, err := m.ExistingVersions(ctx)
	if err != nil {
		return false, fmt.Errorf("jobs: reading migration versions: %w", err)
	}
	return len(have) < len(m.AllVersions()), nil
}

// backoff is the retry policy: exponential from base, capped at max, with
// ±10% jitter so that jobs failing together do not retry together.
type backoff struct{ base, max time.Duration }

// NextRetry implements river.ClientRetryPolicy. job.Errors holds the
// errors of the earlier attempts, not yet the one that just failed.
func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(b.after(len(job.Errors)))
}

// after is the wait before the attempt that follows n failed ones.
func (b backoff) after(n int) time.Duration {
	d := b.max
	if n < 40 && b.base<<n > 0 && b.base<<n < b.max {
		d = b.base << n
	}
	jitter := 0.9 + 0.2*rand.Float64()
	return time.Duration(float64(d) * jitter)
}
