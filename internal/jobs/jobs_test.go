package jobs_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/testkit"
	"github.com/usersd/usersd/internal/users"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness runs the same test on one database: TTx is its transaction type.
type harness[TTx any] struct {
	// newQueue returns a queue on the database.
	newQueue func(t *testing.T, cfg jobs.Config) *jobs.Queue[TTx]
	// inTx runs fn in a transaction, then commits it or rolls it back.
	inTx func(ctx context.Context, commit bool, fn func(TTx) error) error
	// count runs a query that returns one integer; exec one that returns
	// nothing.
	count func(t *testing.T, query string) int
	exec  func(t *testing.T, query string)
	// store is the users store on the database, with q as its job queue.
	store func(q *jobs.Queue[TTx]) users.Store
	// dsn is the Postgres database's URL ("" on SQLite).
	dsn string
}

// forEachDatabase runs test on SQLite and on Postgres.
func forEachDatabase(t *testing.T, sqliteTest func(*testing.T, *harness[*sql.Tx]), pgTest func(*testing.T, *harness[pgx.Tx])) {
	t.Run("sqlite", func(t *testing.T) { sqliteTest(t, sqliteHarness(t)) })
	t.Run("postgres", func(t *testing.T) { pgTest(t, pgHarness(t)) })
}

func sqliteHarness(t *testing.T) *harness[*sql.Tx] {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "usersd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatal(err)
	}
	w := db.Writer()
	if err := jobs.MigrateSQLite(ctx, w, nil); err != nil {
		t.Fatal(err)
	}
	return &harness[*sql.Tx]{
		newQueue: func(t *testing.T, cfg jobs.Config) *jobs.Queue[*sql.Tx] {
			q, err := jobs.NewSQLite(w, cfg)
			if err != nil {
				t.Fatal(err)
			}
			return q
		},
		inTx: func(ctx context.Context, commit bool, fn func(*sql.Tx) error) error {
			tx, err := w.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if err := fn(tx); err != nil || !commit {
				return errors.Join(err, tx.Rollback())
			}
			return tx.Commit()
		},
		count: func(t *testing.T, query string) int {
			var n int
			if err := w.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return n
		},
		exec: func(t *testing.T, query string) {
			if _, err := w.ExecContext(t.Context(), query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		},
		store: func(q *jobs.Queue[*sql.Tx]) users.Store { return sqlite.NewStore(db, sqlite.WithJobs(q)) },
	}
}

func pgHarness(t *testing.T) *harness[pgx.Tx] {
	ctx := t.Context()
	dsn := pgtest.NewMigratedDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := jobs.MigratePostgres(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	return &harness[pgx.Tx]{
		newQueue: func(t *testing.T, cfg jobs.Config) *jobs.Queue[pgx.Tx] {
			q, err := jobs.NewPostgres(pool, cfg)
			if err != nil {
				t.Fatal(err)
			}
			return q
		},
		inTx: func(ctx context.Context, commit bool, fn func(pgx.Tx) error) error {
			tx, err := pool.Begin(ctx)
			if err != nil {
				return err
			}
			if err := fn(tx); err != nil || !commit {
				return errors.Join(err, tx.Rollback(ctx))
			}
			return tx.Commit(ctx)
		},
		count: func(t *testing.T, query string) int {
			var n int
			if err := pool.QueryRow(t.Context(), query).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			return n
		},
		exec: func(t *testing.T, query string) {
			if _, err := pool.Exec(t.Context(), query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		},
		store: func(q *jobs.Queue[pgx.Tx]) users.Store { return postgres.NewStore(pool, postgres.WithJobs(q)) },
		dsn:   dsn,
	}
}

// start starts q's workers with a service on store and deps, and stops
// them when the test ends (stopping them twice does nothing).
func start[TTx any](t *testing.T, q *jobs.Queue[TTx], svc *users.Service, deps jobs.Deps) *jobs.Workers {
	t.Helper()
	w, err := q.Start(t.Context(), svc, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Stop(ctx)
	})
	return w
}

// fast is a config that polls often, so tests do not wait for work.
func fast(reg prometheus.Registerer) jobs.Config {
	return jobs.Config{PollInterval: 50 * time.Millisecond, Registerer: reg, Log: zerolog.Nop()}
}

func chunks(n int) []users.ImportChunk {
	out := make([]users.ImportChunk, n)
	for i := range out {
		out[i] = users.ImportChunk{
			OperationID: "0194d0a0-0000-7000-8000-000000000001", Chunk: i, First: 2 * i,
			Rows: []users.ImportRow{{Email: fmt.Sprintf("a%d@example.com", i), DisplayName: "A"}, {Reject: "email: bad"}},
		}
	}
	return out
}

const countChunkJobs = "SELECT count(*) FROM river_job WHERE kind = 'import_users_chunk'"

// TestEnqueueInTransaction shows jobs are part of the caller's transaction:
// rolled back, they are gone; committed, they are there, with the trace of
// the caller and counted in the metrics.
func TestEnqueueInTransaction(t *testing.T) {
	forEachDatabase(t, testEnqueueInTransaction, testEnqueueInTransaction)
}

func testEnqueueInTransaction[TTx any](t *testing.T, h *harness[TTx]) {
	reg := prometheus.NewRegistry()
	q := h.newQueue(t, fast(reg))
	ctx := t.Context()
	if err := h.inTx(ctx, false, func(tx TTx) error { return q.EnqueueImportTx(ctx, tx, chunks(3)) }); err != nil {
		t.Fatal(err)
	}
	if n := h.count(t, countChunkJobs); n != 0 {
		t.Fatalf("after rollback: %d jobs, want 0", n)
	}
	tp := sdktrace.NewTracerProvider()
	tctx, span := tp.Tracer("test").Start(ctx, "request")
	if err := h.inTx(tctx, true, func(tx TTx) error { return q.EnqueueImportTx(tctx, tx, chunks(3)) }); err != nil {
		t.Fatal(err)
	}
	span.End()
	if n := h.count(t, countChunkJobs); n != 3 {
		t.Fatalf("after commit: %d jobs, want 3", n)
	}
	traceID := span.SpanContext().TraceID().String()
	rows, err := jobs.List(ctx, q, "import_users_chunk")
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range rows {
		if !strings.Contains(string(job.Metadata), traceID) {
			t.Errorf("job %d metadata %s lacks the caller's trace id %s", job.ID, job.Metadata, traceID)
		}
	}
	// Inserts are counted as they happen, rolled back later or not.
	if got := metric(t, reg, "usersd_jobs_inserted_total", map[string]string{"kind": "import_users_chunk"}); got != 6 {
		t.Errorf("usersd_jobs_inserted_total = %v, want 6", got)
	}
	if got := metric(t, reg, "usersd_job_queue_depth", map[string]string{"kind": "import_users_chunk", "state": "available"}); got != 3 {
		t.Errorf("usersd_job_queue_depth{available} = %v, want 3", got)
	}
}

// failingStore is a users.Store whose ImportChunk fails the first fails
// times (all of them when fails < 0), and can block until its context ends.
type failingStore struct {
	users.Store
	fails int32
	calls atomic.Int32
	block bool
	// started is closed at the first call.
	started chan struct{}
}

func (s *failingStore) ImportChunk(ctx context.Context, opID string, chunk int, valid []users.ImportedUser, failed []users.RowFailure) error {
	n := s.calls.Add(1)
	if n == 1 && s.started != nil {
		close(s.started)
	}
	if s.block && n == 1 {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.fails < 0 || n <= s.fails {
		return fmt.Errorf("boom %d", n)
	}
	return nil
}

// jobRow returns the one job of the kind.
func jobRow[TTx any](t *testing.T, q *jobs.Queue[TTx], kind string) *rivertype.JobRow {
	t.Helper()
	rows, err := jobs.List(t.Context(), q, kind)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d jobs of kind %s, want 1", len(rows), kind)
	}
	return rows[0]
}

// TestRetries shows a failing job runs again after a backoff, records each
// error, and is discarded after MaxAttempts; one that then succeeds
// completes.
func TestRetries(t *testing.T) {
	forEachDatabase(t, testRetries, testRetries)
}

func testRetries[TTx any](t *testing.T, h *harness[TTx]) {
	for _, tc := range []struct {
		name      string
		fails     int32
		wantState rivertype.JobState
		wantRuns  map[string]float64
	}{
		{"fails for good", -1, rivertype.JobStateDiscarded, map[string]float64{"retried": 1, "failed": 1, "completed": 0}},
		{"fails once", 1, rivertype.JobStateCompleted, map[string]float64{"retried": 1, "failed": 0, "completed": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			reg := prometheus.NewRegistry()
			cfg := fast(reg)
			cfg.MaxAttempts = 2
			q := h.newQueue(t, cfg)
			store := &failingStore{fails: tc.fails}
			// The cases share the database: each starts with no jobs.
			h.exec(t, "DELETE FROM river_job")
			if err := h.inTx(ctx, true, func(tx TTx) error { return q.EnqueueImportTx(ctx, tx, chunks(1)) }); err != nil {
				t.Fatal(err)
			}
			start(t, q, users.NewService(store, users.Config{}), jobs.Deps{})
			// The first retry is due about a second after the failure.
			testkit.Eventually(t, 20*time.Second, "job not finalized", func() bool {
				return jobRow(t, q, "import_users_chunk").FinalizedAt != nil
			})
			job := jobRow(t, q, "import_users_chunk")
			if job.State != tc.wantState || job.Attempt != 2 {
				t.Errorf("job state %s after %d attempts, want %s after 2", job.State, job.Attempt, tc.wantState)
			}
			if len(job.Errors) == 0 || !strings.Contains(job.Errors[0].Error, "boom 1") {
				t.Errorf("job errors %+v, want the first attempt's error recorded", job.Errors)
			}
			if tc.fails < 0 && (len(job.Errors) != 2 || !strings.Contains(job.Errors[1].Error, "boom 2")) {
				t.Errorf("job errors %+v, want both attempts' errors, the last one last", job.Errors)
			}
			for outcome, want := range tc.wantRuns {
				if got := metric(t, reg, "usersd_jobs_runs_total", map[string]string{"kind": "import_users_chunk", "outcome": outcome}); got != want {
					t.Errorf("usersd_jobs_runs_total{outcome=%q} = %v, want %v", outcome, got, want)
				}
			}
		})
	}
}

// TestStop shows the two ways a queue stops: a job that finishes within the
// deadline completes; one that does not is cancelled and goes back to the
// queue, and the next process runs it again.
func TestStop(t *testing.T) {
	forEachDatabase(t, testStop, testStop)
}

func testStop[TTx any](t *testing.T, h *harness[TTx]) {
	ctx := t.Context()
	q := h.newQueue(t, fast(nil))
	store := &failingStore{block: true, started: make(chan struct{})}
	if err := h.inTx(ctx, true, func(tx TTx) error { return q.EnqueueImportTx(ctx, tx, chunks(1)) }); err != nil {
		t.Fatal(err)
	}
	w := start(t, q, users.NewService(store, users.Config{}), jobs.Deps{})
	select {
	case <-store.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never started")
	}
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := w.Stop(sctx); err == nil {
		t.Fatal("Stop = nil with a job still running at the deadline, want an error")
	}
	job := jobRow(t, q, "import_users_chunk")
	if job.State != rivertype.JobStateRetryable && job.State != rivertype.JobStateAvailable {
		t.Fatalf("cancelled job is %s, want back in the queue (retryable or available)", job.State)
	}

	// The next process picks it up and finishes it (the store now works).
	q2 := h.newQueue(t, fast(nil))
	w2 := start(t, q2, users.NewService(store, users.Config{}), jobs.Deps{})
	testkit.Eventually(t, 20*time.Second, "cancelled job never completed", func() bool {
		return jobRow(t, q2, "import_users_chunk").State == rivertype.JobStateCompleted
	})
	if err := w2.Stop(ctx); err != nil {
		t.Errorf("Stop with nothing running = %v, want nil", err)
	}
}

// TestJobSpanLinksToRequest shows the job's span starts a trace of its own,
// linked to the span of the request that enqueued it.
func TestJobSpanLinksToRequest(t *testing.T) {
	forEachDatabase(t, testJobSpanLinksToRequest, testJobSpanLinksToRequest)
}

func testJobSpanLinksToRequest[TTx any](t *testing.T, h *harness[TTx]) {
	ctx := t.Context()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	cfg := fast(nil)
	var logs syncBuffer
	cfg.Log = zerolog.New(&logs)
	q := h.newQueue(t, cfg)
	rctx, req := tp.Tracer("test").Start(ctx, "request")
	if err := h.inTx(rctx, true, func(tx TTx) error { return q.EnqueueImportTx(rctx, tx, chunks(1)) }); err != nil {
		t.Fatal(err)
	}
	req.End()
	start(t, q, users.NewService(&failingStore{}, users.Config{}), jobs.Deps{TracerProvider: tp})
	var job sdktrace.ReadOnlySpan
	testkit.Eventually(t, 10*time.Second, "no job span", func() bool {
		for _, s := range rec.Ended() {
			if s.Name() == "job import_users_chunk" {
				job = s
				return true
			}
		}
		return false
	})
	if job.SpanContext().TraceID() == req.SpanContext().TraceID() {
		t.Error("the job's span is in the request's trace, want a trace of its own")
	}
	links := job.Links()
	if len(links) != 1 || links[0].SpanContext.SpanID() != req.SpanContext().SpanID() || links[0].SpanContext.TraceID() != req.SpanContext().TraceID() {
		t.Errorf("job span links %+v, want one link to the request span %v", links, req.SpanContext())
	}
	id := jobRow(t, q, "import_users_chunk").ID
	want := []string{fmt.Sprintf(`"job_id":%d`, id), `"kind":"import_users_chunk"`, `"trace_id":"` + job.SpanContext().TraceID().String(), `"outcome":"completed"`}
	line := logs.line("job run")
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("job log line %s lacks %s", line, w)
		}
	}
}

// TestPurgeRetention shows the purge job, which runs once at start and then
// periodically, hard-deletes exactly the users deleted longer ago than the
// retention, on an injected clock.
func TestPurgeRetention(t *testing.T) {
	forEachDatabase(t, testPurgeRetention, testPurgeRetention)
}

func testPurgeRetention[TTx any](t *testing.T, h *harness[TTx]) {
	ctx := t.Context()
	var now atomic.Pointer[time.Time]
	set := func(tm time.Time) { now.Store(&tm) }
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	set(t0)
	clock := func() time.Time { return *now.Load() }

	q := h.newQueue(t, fast(nil))
	svc := users.NewService(h.store(q), users.Config{Now: clock, DeletedRetention: 30 * 24 * time.Hour})
	create := func(email string) *users.User {
		u, err := svc.Create(ctx, users.CreateRequest{User: &users.User{Email: email, DisplayName: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	old, recent, live := create("old@example.com"), create("recent@example.com"), create("live@example.com")
	if _, err := svc.Delete(ctx, users.DefaultTenant, old.ID, ""); err != nil {
		t.Fatal(err)
	}
	set(t0.Add(2 * 24 * time.Hour))
	if _, err := svc.Delete(ctx, users.DefaultTenant, recent.ID, ""); err != nil {
		t.Fatal(err)
	}
	// 31 days after the first delete, 29 after the second.
	set(t0.Add(31 * 24 * time.Hour))
	start(t, q, svc, jobs.Deps{})
	testkit.Eventually(t, 20*time.Second, "the user deleted 31 days ago is still there", func() bool {
		_, err := svc.Get(ctx, users.DefaultTenant, old.ID)
		return errors.Is(err, users.ErrNotFound)
	})
	for _, u := range []*users.User{recent, live} {
		if _, err := svc.Get(ctx, users.DefaultTenant, u.ID); err != nil {
			t.Errorf("user %s (%s): %v, want kept", u.ID, u.Email, err)
		}
	}
}

// TestRelayTimeout: a relay job stuck on a database that stopped answering
// is cut short after 30 s, or half the lease if that is shorter, so a live
// process always gives up before its job is taken for lost.
func TestRelayTimeout(t *testing.T) {
	h := sqliteHarness(t)
	for _, tt := range []struct {
		lease, want time.Duration
	}{
		{0, 30 * time.Second}, // the default lease, 5m
		{4 * time.Second, 2 * time.Second},
		{time.Hour, 30 * time.Second},
	} {
		q := h.newQueue(t, jobs.Config{Lease: tt.lease})
		if got := jobs.RelayTimeout(q); got != tt.want {
			t.Errorf("lease %v: relay timeout %v, want %v", tt.lease, got, tt.want)
		}
	}
}

// TestClientsAgree shows the queue's insert-only client and its workers'
// client insert alike: the store's jobs and the periodic ones get the max
// attempts of the Config and are counted by the same metric, and a queue's
// workers start once.
func TestClientsAgree(t *testing.T) {
	forEachDatabase(t, testClientsAgree, testClientsAgree)
}

func testClientsAgree[TTx any](t *testing.T, h *harness[TTx]) {
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	cfg := fast(reg)
	cfg.MaxAttempts = 3
	cfg.MaintenanceWorkers = 1
	q := h.newQueue(t, cfg)
	if err := h.inTx(ctx, true, func(tx TTx) error { return q.EnqueueImportTx(ctx, tx, chunks(1)) }); err != nil {
		t.Fatal(err)
	}
	svc := users.NewService(&failingStore{}, users.Config{})
	start(t, q, svc, jobs.Deps{})
	if _, err := q.Start(ctx, svc, jobs.Deps{}); err == nil {
		t.Error("a second Start = nil, want an error")
	}
	testkit.Eventually(t, 10*time.Second, "the purge was never enqueued", func() bool {
		rows, err := jobs.List(ctx, q, "purge_deleted_users")
		return err == nil && len(rows) > 0
	})
	for _, kind := range []string{"import_users_chunk", "purge_deleted_users"} {
		rows, err := jobs.List(ctx, q, kind)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 || rows[0].MaxAttempts != 3 {
			t.Errorf("%s jobs %+v, want one with max attempts 3", kind, rows)
		}
		if got := metric(t, reg, "usersd_jobs_inserted_total", map[string]string{"kind": kind}); got < 1 {
			t.Errorf("usersd_jobs_inserted_total{kind=%q} = %v, want at least 1", kind, got)
		}
	}
}
