package jobs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/testkit"
	"github.com/usersd/usersd/internal/users"
)

const rescueMsg = "jobs rescued from a dead process"

// TestLockKey shows which client IDs carry a liveness lock: ours do, with
// the key they were made with; River's own (an older usersd's) do not.
func TestLockKey(t *testing.T) {
	for _, key := range []int64{0, 1, -1, 0x7fffffffffffffff, -0x7fffffffffffffff - 1, 0x0123456789abcdef} {
		for _, host := range []string{"pod-1", "db.example.com", "", strings.Repeat("h", 100)} {
			id := jobs.NewClientID(key, host)
			if got, ok := jobs.LockKey(id); !ok || got != key {
				t.Errorf("LockKey(%q) = %d, %v; want %d, true", id, got, ok, key)
			}
			if len(id) > 100 {
				t.Errorf("client ID %q is %d bytes, River allows 100", id, len(id))
			}
		}
	}
	for _, id := range []string{
		"pod-1_2026_12_06T10_00_00_000000", // River's default
		"usersd_2026_12_06T10_00_00_000000",
		"usersd.0123456789abcde.h", // 15 digits
		"usersd.0123456789abcdeg.h",
		"usersd.0123456789abcdef",
		"usersd.0123456789abcdef0.h",
		"",
	} {
		if k, ok := jobs.LockKey(id); ok {
			t.Errorf("LockKey(%q) = %d, true; want no key", id, k)
		}
	}
}

// runningAs marks the chunk job id as running since now, by runner, on its
// attempt'th attempt out of max (5).
func runningAs(t *testing.T, h *harness[pgx.Tx], id int64, runner string, attempt int) {
	t.Helper()
	h.exec(t, fmt.Sprintf(`UPDATE river_job SET state = 'running', attempt = %d, max_attempts = 5, attempted_at = now(),
		attempted_by = ARRAY['someone-before', '%s'] WHERE id = %d`, attempt, runner, id))
}

// chunkJobs enqueues n import chunk jobs through q and returns them by id.
func chunkJobs[TTx any](t *testing.T, h *harness[TTx], q *jobs.Queue[TTx], n int) []*rivertype.JobRow {
	t.Helper()
	ctx := t.Context()
	if err := h.inTx(ctx, true, func(tx TTx) error { return q.EnqueueImportTx(ctx, tx, chunks(n)) }); err != nil {
		t.Fatal(err)
	}
	rows, err := jobs.List(ctx, q, "import_users_chunk")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b *rivertype.JobRow) int { return int(a.ID - b.ID) })
	return rows
}

// job returns the job with the id.
func job[TTx any](t *testing.T, q *jobs.Queue[TTx], id int64) *rivertype.JobRow {
	t.Helper()
	rows, err := jobs.List(t.Context(), q, "import_users_chunk")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no job %d", id)
	return nil
}

func rescueErrors(j *rivertype.JobRow) int {
	n := 0
	for _, e := range j.Errors {
		if strings.HasPrefix(e.Error, "rescued: ") {
			n++
		}
	}
	return n
}

// watcher is a queue with started workers, its metrics and log.
type watcher struct {
	q   *jobs.Queue[pgx.Tx]
	w   *jobs.Workers
	reg *prometheus.Registry
	log *syncBuffer
}

func startWatcher(t *testing.T, h *harness[pgx.Tx], store users.Store) watcher {
	t.Helper()
	w := watcher{reg: prometheus.NewRegistry(), log: &syncBuffer{}}
	cfg := fast(w.reg)
	cfg.Log = zerolog.New(w.log)
	w.q = h.newQueue(t, cfg)
	w.w = start(t, w.q, users.NewService(store, users.Config{}), jobs.Deps{})
	return w
}

func (w watcher) rescued(t *testing.T, state string) float64 {
	return metric(t, w.reg, "usersd_jobs_rescued_total", map[string]string{"kind": "import_users_chunk", "state": state})
}

// TestRescueDeadProcessPostgres shows how two live processes treat the
// running jobs of others: those of a process that died (its lock is free)
// run again within seconds, rescued once between them, or are discarded
// when out of attempts; those of a live process (its lock is held) and of
// a process without a lock (River's own ID) are left alone; once the live
// one's lock goes, its job is rescued too.
func TestRescueDeadProcessPostgres(t *testing.T) {
	t.Parallel() // mostly waiting: for the looks every 2 s
	h := pgHarness(t)
	ctx := t.Context()
	rows := chunkJobs(t, h, h.newQueue(t, fast(nil)), 4)
	dead := jobs.NewClientID(0x0123456789abcdef, "dead-host")
	spent := jobs.NewClientID(-42, "spent-host")
	live := jobs.NewClientID(0x7edcba9876543210, "live-host")
	foreign := "old-host_2026_12_06T10_00_00_000000"
	runningAs(t, h, rows[0].ID, dead, 1)
	runningAs(t, h, rows[1].ID, spent, 5)
	runningAs(t, h, rows[2].ID, live, 1)
	runningAs(t, h, rows[3].ID, foreign, 1)
	// A dead process that ran no job but led, for an hour more by the row.
	leader := jobs.NewClientID(0x1122334455667788, "leader-host")
	h.exec(t, fmt.Sprintf(`INSERT INTO river_leader (elected_at, expires_at, leader_id) VALUES (now(), now() + interval '1 hour', '%s')`, leader))

	// The live process's lock, on a connection of the test's.
	lockConn, err := pgx.Connect(ctx, h.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lockConn.Close(context.Background())
	liveKey, _ := jobs.LockKey(live)
	if _, err := lockConn.Exec(ctx, "SELECT pg_advisory_lock($1)", liveKey); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	store := &failingStore{}
	b, c := startWatcher(t, h, store), startWatcher(t, h, store)
	testkit.Eventually(t, 20*time.Second, "the dead process's job never completed", func() bool {
		return job(t, b.q, rows[0].ID).State == rivertype.JobStateCompleted
	})
	t.Logf("dead process's job rescued and completed %v after the watchers started", time.Since(start).Round(10*time.Millisecond))
	if j := job(t, b.q, rows[0].ID); rescueErrors(j) != 1 || !strings.Contains(j.Errors[0].Error, dead) {
		t.Errorf("rescued job's errors %+v, want one rescue naming %s", j.Errors, dead)
	}
	testkit.Eventually(t, 10*time.Second, "the dead leader's leadership never ended", func() bool {
		return h.count(t, fmt.Sprintf(`SELECT count(*) FROM river_leader WHERE leader_id = '%s'`, leader)) == 0
	})
	testkit.Eventually(t, 10*time.Second, "the spent job was not discarded", func() bool {
		return job(t, b.q, rows[1].ID).State == rivertype.JobStateDiscarded
	})
	if j := job(t, b.q, rows[1].ID); j.FinalizedAt == nil || rescueErrors(j) != 1 {
		t.Errorf("discarded job finalized at %v with errors %+v, want finalized with one rescue error", j.FinalizedAt, j.Errors)
	}

	// Several looks later, the live process's job and the lockless one
	// are untouched.
	time.Sleep(2 * jobs.DeadAfter)
	for _, id := range []int64{rows[2].ID, rows[3].ID} {
		if j := job(t, b.q, id); j.State != rivertype.JobStateRunning || rescueErrors(j) != 0 {
			t.Errorf("job %d of %v is %s with errors %+v, want running, untouched", id, j.AttemptedBy, j.State, j.Errors)
		}
	}

	// The live process dies.
	diedAt := time.Now()
	if err := lockConn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "the job of the process that died last never completed", func() bool {
		return job(t, b.q, rows[2].ID).State == rivertype.JobStateCompleted
	})
	t.Logf("job of a process whose lock was released rescued and completed %v later", time.Since(diedAt).Round(10*time.Millisecond))
	if j := job(t, b.q, rows[3].ID); j.State != rivertype.JobStateRunning {
		t.Errorf("the lockless process's job is %s, want running (left to the lease)", j.State)
	}

	// Each job was rescued once, by one of the two.
	for state, want := range map[string]float64{"available": 2, "discarded": 1, "cancelled": 0} {
		if got := b.rescued(t, state) + c.rescued(t, state); got != want {
			t.Errorf("usersd_jobs_rescued_total{state=%q} = %v over both processes, want %v", state, got, want)
		}
	}
	for _, id := range []int64{rows[0].ID, rows[2].ID} {
		if j := job(t, b.q, id); rescueErrors(j) != 1 {
			t.Errorf("job %d has %d rescue errors, want 1: %+v", id, rescueErrors(j), j.Errors)
		}
	}
	lines := b.log.lines(rescueMsg) + "\n" + c.log.lines(rescueMsg)
	for _, runner := range []string{dead, spent, live} {
		if !strings.Contains(lines, `"dead_clients":["`+runner+`"]`) {
			t.Errorf("no rescue log line for %s in %s", runner, lines)
		}
	}
	if strings.Count(lines, `"client_id":"usersd.`) != 3 {
		t.Errorf("rescue log lines %s, want 3, each naming its rescuer", lines)
	}
}

// TestLockLostPostgres shows a live process whose lock connection breaks:
// it cancels its running job at once, takes its lock again, and the job
// runs again there; the other process rescues nothing.
func TestLockLostPostgres(t *testing.T) {
	t.Parallel() // mostly waiting: for the looks every 2 s
	h := pgHarness(t)
	ctx := t.Context()
	reg, logs := prometheus.NewRegistry(), &syncBuffer{}
	cfg := fast(reg)
	cfg.Log = zerolog.New(logs)
	a := h.newQueue(t, cfg)
	rows := chunkJobs(t, h, a, 1)
	aw := startBlocked(t, a)
	b := startWatcher(t, h, &failingStore{})

	key, ok := jobs.LockKey(jobs.ClientID(aw))
	if !ok {
		t.Fatalf("client ID %q carries no lock key", jobs.ClientID(aw))
	}
	var terminated bool
	err := mustConnect(t, h.dsn).QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND classid::bigint = $1 AND objid::bigint = $2`,
		int64(uint64(key)>>32), int64(uint64(key)&0xffffffff)).Scan(&terminated)
	if err != nil || !terminated {
		t.Fatalf("terminating the lock's session: %v, %v", terminated, err)
	}
	testkit.Eventually(t, 30*time.Second, "the cancelled job never completed", func() bool {
		return job(t, a, rows[0].ID).State == rivertype.JobStateCompleted
	})
	j := job(t, a, rows[0].ID)
	if rescueErrors(j) != 0 || len(j.Errors) != 1 || j.Attempt != 2 {
		t.Errorf("job ran %d times with errors %+v, want twice: cancelled, then completed, never rescued", j.Attempt, j.Errors)
	}
	for _, msg := range []string{"liveness lock lost: running jobs cancelled, no new ones until it is held again", "liveness lock held again; jobs run again"} {
		if logs.line(msg) == "" {
			t.Errorf("no %q log line", msg)
		}
	}
	// Give the other a chance to get it wrong.
	time.Sleep(jobs.DeadAfter)
	if got := b.rescued(t, "available"); got != 0 {
		t.Errorf("the other process rescued %v jobs of a live one", got)
	}
}

// TestLostJobPostgres shows a job the database says a live process runs,
// which the process does not run (a fetch whose answer never came back, as
// in a failover): the process puts it back in the queue after LostAfter and
// runs it; the job it does run, for longer than that, is left alone.
func TestLostJobPostgres(t *testing.T) {
	t.Parallel() // mostly waiting: LostAfter and the looks every 2 s
	h := pgHarness(t)
	reg, logs := prometheus.NewRegistry(), &syncBuffer{}
	cfg := fast(reg)
	cfg.Log = zerolog.New(logs)
	a := h.newQueue(t, cfg)
	rows := chunkJobs(t, h, a, 2)
	// rows[1] is not fetched: running, for someone, before the workers start.
	runningAs(t, h, rows[1].ID, "someone", 1)
	aw := startBlocked(t, a)
	// Now the database says the process runs it too.
	lostAt := time.Now()
	runningAs(t, h, rows[1].ID, jobs.ClientID(aw), 1)

	testkit.Eventually(t, jobs.LostAfter+20*time.Second, "the lost job never completed", func() bool {
		return job(t, a, rows[1].ID).State == rivertype.JobStateCompleted
	})
	took := time.Since(lostAt)
	t.Logf("lost job put back and completed %v after it was lost", took.Round(10*time.Millisecond))
	if took < jobs.LostAfter {
		t.Errorf("the lost job was put back after %v, before LostAfter (%v)", took, jobs.LostAfter)
	}
	if j := job(t, a, rows[1].ID); rescueErrors(j) != 1 || !strings.Contains(j.Errors[0].Error, jobs.ClientID(aw)) || j.Attempt != 2 {
		t.Errorf("lost job's attempt %d, errors %+v; want attempt 2 after one rescue naming %s", j.Attempt, j.Errors, jobs.ClientID(aw))
	}
	if j := job(t, a, rows[0].ID); j.State != rivertype.JobStateRunning || rescueErrors(j) != 0 {
		t.Errorf("the job the process runs is %s with errors %+v, want running, untouched", j.State, j.Errors)
	}
	if got := metric(t, reg, "usersd_jobs_rescued_total", map[string]string{"kind": "import_users_chunk", "state": "available"}); got != 1 {
		t.Errorf("usersd_jobs_rescued_total{state=available} = %v, want 1", got)
	}
	if l := logs.line("jobs this process lost put back in the queue"); !strings.Contains(l, fmt.Sprintf(`"job_ids":[%d]`, rows[1].ID)) {
		t.Errorf("log line %q, want job %d", l, rows[1].ID)
	}
}

// startBlocked starts q's workers on a store whose first import chunk runs
// until the workers stop, and returns once that chunk runs.
func startBlocked(t *testing.T, q *jobs.Queue[pgx.Tx]) *jobs.Workers {
	t.Helper()
	store := &failingStore{block: true, started: make(chan struct{})}
	w := start(t, q, users.NewService(store, users.Config{}), jobs.Deps{})
	select {
	case <-store.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job never started")
	}
	return w
}

func mustConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestRescueAtStartSQLite shows that on SQLite, where one process serves a
// file, the jobs left running are put back in the queue before the workers
// start, and then run.
func TestRescueAtStartSQLite(t *testing.T) {
	h := sqliteHarness(t)
	rows := chunkJobs(t, h, h.newQueue(t, fast(nil)), 3)
	for i, r := range rows {
		attempt := 1
		if i == 2 {
			attempt = 5
		}
		h.exec(t, fmt.Sprintf(`UPDATE river_job SET state = 'running', attempt = %d, max_attempts = 5,
			attempted_at = strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now'), attempted_by = jsonb('["dead-process"]') WHERE id = %d`, attempt, r.ID))
	}
	// The dead process led, for an hour more by the row.
	h.exec(t, `INSERT INTO river_leader (elected_at, expires_at, leader_id, name) VALUES
		(strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 hour'), 'dead-process', 'default')`)
	reg, logs := prometheus.NewRegistry(), &syncBuffer{}
	cfg := fast(reg)
	cfg.Log = zerolog.New(logs)
	q := h.newQueue(t, cfg)
	start(t, q, users.NewService(&failingStore{}, users.Config{}), jobs.Deps{})
	// Done when Start returns.
	if n := h.count(t, `SELECT count(*) FROM river_leader WHERE leader_id = 'dead-process'`); n != 0 {
		t.Error("the dead process still leads when Start returned")
	}
	for state, want := range map[string]float64{"available": 2, "discarded": 1} {
		if got := metric(t, reg, "usersd_jobs_rescued_total", map[string]string{"kind": "import_users_chunk", "state": state}); got != want {
			t.Errorf("usersd_jobs_rescued_total{state=%q} = %v when Start returned, want %v", state, got, want)
		}
	}
	if l := logs.line(rescueMsg); !strings.Contains(l, "dead-process") || !strings.Contains(l, `"jobs":3`) {
		t.Errorf("rescue log line %q, want the 3 jobs of dead-process", l)
	}
	testkit.Eventually(t, 20*time.Second, "rescued jobs never completed", func() bool {
		return job(t, q, rows[0].ID).State == rivertype.JobStateCompleted && job(t, q, rows[1].ID).State == rivertype.JobStateCompleted
	})
	for _, r := range rows {
		j := job(t, q, r.ID)
		if rescueErrors(j) != 1 {
			t.Errorf("job %d errors %+v, want one rescue", j.ID, j.Errors)
		}
	}
	if j := job(t, q, rows[2].ID); j.State != rivertype.JobStateDiscarded {
		t.Errorf("job out of attempts is %s, want discarded", j.State)
	}
}
