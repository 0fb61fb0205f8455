package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
)

// The timing of the liveness locks (docs/jobs.md, "When a process dies").
const (
	// pingEvery is how often a process checks the connection that holds
	// its lock, each check bounded by pingTimeout.
	pingEvery   = time.Second
	pingTimeout = time.Second
	// relockEvery is the wait between attempts to take the lock again
	// once its connection is lost; lockTimeout bounds one attempt.
	relockEvery = 500 * time.Millisecond
	lockTimeout = 5 * time.Second
	// watchEvery is how often a process looks for running jobs whose
	// process holds no lock, ±25%.
	watchEvery = 2 * time.Second
	// deadAfter: a process is dead when its lock was free at two looks at
	// least this far apart, and still is when its jobs are rescued. It is
	// longer than a live process takes to notice it lost its lock and stop
	// its jobs (pingEvery + pingTimeout).
	deadAfter = 3 * time.Second
	// lockSessionIdle is the lock session's idle_session_timeout: the
	// server ends a session that has not pinged for this long, so the lock
	// of a process whose node vanished (no FIN, no RST) lapses too.
	lockSessionIdle = 10 * time.Second
	// lostAfter: a job the database says this process runs, which it has
	// not run, nor started or finished, for this long at looks that found
	// it so, was lost between the process and the database (see reclaim).
	// It is far longer than a fetched job takes to start, or a finished
	// one's outcome to be written while the database answers.
	lostAfter = 10 * time.Second
)

// errLockLost is why a job's context is cancelled when its process can no
// longer show it is alive.
var errLockLost = errors.New("jobs: liveness lock lost; the job goes back to the queue")

// lifeline is Postgres's recovery. Each process holds, for as long as its
// workers run, a session-level advisory lock on a connection of its own
// (not from the pool). The lock's key is in the process's River client ID,
// which River records in the attempted_by of every job the process runs;
// Postgres frees the lock when the session ends, which it does when the
// process dies. Every process looks, every few seconds, for running jobs
// whose last runner's lock is free, and runs them again.
//
// A live process never has its jobs rescued: when the connection holding
// its lock fails a check, it cancels the jobs it is running at once and
// starts new ones only once it holds the lock again on a new connection,
// which the others wait for (deadAfter) before they rescue anything. The
// rescue itself takes the dead process's lock for its transaction, so a
// process taking its lock back and a rescue exclude each other.
//
// It is also River worker middleware: the jobs run in contexts it cancels.
type lifeline struct {
	river.MiddlewareDefaults

	pool   *pgxpool.Pool
	driver *riverpgxv5.Driver
	key    int64
	id     string // River client ID, with key in it
	log    zerolog.Logger
	obs    *observer

	mu   sync.Mutex
	held bool
	wake chan struct{}     // closed when the lock is held again
	runs map[*run]struct{} // the jobs running in this process
	// ended is when the last run here of each job ended, kept for
	// 2×lostAfter (see reclaim).
	ended map[int64]time.Time

	conn   *pgx.Conn // the lock's; only hold touches it between start and stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ rivertype.WorkerMiddleware = (*lifeline)(nil)

// run is one run of a job in this process.
type run struct {
	job    int64
	cancel context.CancelCauseFunc
}

func newLifeline(pool *pgxpool.Pool, driver *riverpgxv5.Driver, log zerolog.Logger) *lifeline {
	key := int64(rand.Uint64())
	host, _ := os.Hostname()
	return &lifeline{
		pool: pool, driver: driver, key: key, id: clientID(key, host),
		log:  log.With().Str("component", "jobs").Logger(),
		wake: make(chan struct{}), runs: map[*run]struct{}{}, ended: map[int64]time.Time{},
	}
}

// clientID is the River client ID of the process whose lock is key:
// "usersd.<key in hex>.<host>". River's own IDs have no dot, so the ID of
// a process without a lock (an older version) never parses as one with.
func clientID(key int64, host string) string {
	host = strings.NewReplacer(".", "_", " ", "_").Replace(host)
	if len(host) > 60 {
		host = host[:60]
	}
	if host == "" {
		host = "unknown_host"
	}
	return fmt.Sprintf("usersd.%016x.%s", uint64(key), host)
}

// lockKey is the key of the lock of the process with River client ID id,
// if it has one.
func lockKey(id string) (int64, bool) {
	rest, ok := strings.CutPrefix(id, "usersd.")
	if !ok || len(rest) < 17 || rest[16] != '.' {
		return 0, false
	}
	k, err := strconv.ParseUint(rest[:16], 16, 64)
	if err != nil {
		return 0, false
	}
	return int64(k), true
}

func (l *lifeline) start(ctx context.Context, o *observer) error {
	l.obs = o
	conn, err := l.lock(ctx)
	if err != nil {
		return fmt.Errorf("jobs: taking the liveness lock: %w", err)
	}
	l.conn = conn
	l.setHeld(true, nil)
	ctx, l.cancel = context.WithCancel(ctx)
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		l.hold(ctx)
	}()
	go func() {
		defer l.wg.Done()
		l.watch(ctx)
	}()
	return nil
}

func (l *lifeline) stop() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.wg.Wait()
	if l.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l.conn.Close(ctx) // ends the session: the lock goes with it
		l.conn = nil
	}
}

// lock connects and takes the lock.
func (l *lifeline) lock(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	cfg := l.pool.Config().ConnConfig
	cfg.Tracer = nil // a span per ping says nothing
	cfg.RuntimeParams["application_name"] = "usersd liveness " + l.id
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Postgres 14 and later; without it a vanished node's lock lapses
	// only when the server's TCP keepalives give up.
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET idle_session_timeout = %d", lockSessionIdle.Milliseconds())); err != nil {
		l.log.Debug().Err(err).Msg("liveness lock: idle_session_timeout not set")
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&ok); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	if !ok {
		// Held by a session of ours the server has not seen end yet (or,
		// at start, a key already taken: 1 in 2^64).
		conn.Close(ctx)
		return nil, errors.New("the lock is held by another session")
	}
	return conn, nil
}

// hold checks the lock's connection until ctx ends; when the check fails,
// the running jobs are cancelled and the lock is taken again.
func (l *lifeline) hold(ctx context.Context) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		err := l.conn.Ping(pctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			continue
		}
		lostAt := time.Now()
		l.setHeld(false, err)
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		l.conn.Close(cctx)
		cancel()
		l.conn = nil
		for tries := 1; l.conn == nil; tries++ {
			conn, err := l.lock(ctx)
			if ctx.Err() != nil {
				if conn != nil {
					conn.Close(context.Background())
				}
				return
			}
			if err == nil {
				l.conn = conn
				l.setHeld(true, nil)
				l.log.Info().Dur("lost_for", time.Since(lostAt)).Int("tries", tries).Msg("liveness lock held again; jobs run again")
				break
			}
			if tries%20 == 1 {
				l.log.Warn().Err(err).Int("tries", tries).Msg("liveness lock: cannot take it again yet")
			}
			if !sleep(ctx, relockEvery) {
				return
			}
		}
	}
}

// setHeld records whether the lock is held; losing it cancels the running
// jobs with errLockLost, and new ones wait until it is held again.
func (l *lifeline) setHeld(held bool, cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if held == l.held {
		return
	}
	l.held = held
	if held {
		close(l.wake)
		return
	}
	l.wake = make(chan struct{})
	l.log.Warn().Err(cause).Int("cancelled", len(l.runs)).Msg("liveness lock lost: running jobs cancelled, no new ones until it is held again")
	for r := range l.runs {
		r.cancel(errLockLost)
	}
}

// Work implements rivertype.WorkerMiddleware: the job runs only while the
// lock is held, in a context cancelled if it is lost.
func (l *lifeline) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	l.mu.Lock()
	for !l.held {
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		l.mu.Lock()
	}
	r := &run{job: job.ID, cancel: cancel}
	l.runs[r] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.runs, r)
		l.ended[job.ID] = time.Now()
		l.mu.Unlock()
	}()
	return doInner(ctx)
}

// watch looks for the jobs of dead processes, and for the jobs this
// process lost, until ctx ends.
func (l *lifeline) watch(ctx context.Context) {
	suspects := map[string]time.Time{}
	lost := map[int64]time.Time{}
	failing := false
	for {
		due, err := l.look(ctx, suspects)
		err = errors.Join(err, l.reclaim(ctx, lost))
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			l.log.Warn().Err(err).Msg("looking for the jobs of dead processes")
		case err == nil && failing:
			l.log.Info().Msg("looking for the jobs of dead processes again")
		}
		failing = err != nil
		wait := watchEvery + time.Duration((rand.Float64()-0.5)*float64(watchEvery)/2)
		if d := time.Until(due); d > 0 {
			// Look again as soon as a suspect may be taken for dead (one
			// whose rescue failed waits for the next regular look).
			wait = min(wait, d)
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// look finds the processes that run jobs, or lead, without holding their
// lock: one seen so for deadAfter is dead, and its jobs are rescued and
// its leadership ended. suspects holds when each was first seen so. It
// returns when the next suspect will have been seen so for deadAfter (zero
// if none).
func (l *lifeline) look(ctx context.Context, suspects map[string]time.Time) (time.Time, error) {
	rows, err := l.pool.Query(ctx, `SELECT attempted_by[cardinality(attempted_by)] FROM river_job
		WHERE state = 'running' AND cardinality(attempted_by) > 0
		UNION SELECT leader_id FROM river_leader`)
	if err != nil {
		return time.Time{}, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return time.Time{}, err
	}
	runners := map[string]int64{}
	for _, id := range ids {
		if key, ok := lockKey(id); ok && id != l.id {
			runners[id] = key
		}
	}
	if len(runners) == 0 {
		clear(suspects)
		return time.Time{}, nil
	}
	held, err := heldLocks(ctx, l.pool)
	if err != nil {
		return time.Time{}, err
	}
	now := time.Now()
	for id := range suspects {
		if key, ok := runners[id]; !ok || held[key] {
			delete(suspects, id)
		}
	}
	var errs []error
	for id, key := range runners {
		if held[key] {
			continue
		}
		since, ok := suspects[id]
		if !ok {
			suspects[id] = now
			continue
		}
		if now.Sub(since) < deadAfter {
			continue
		}
		if err := l.rescue(ctx, id, key, now.Sub(since)); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(suspects, id)
	}
	var due time.Time
	for _, since := range suspects {
		if d := since.Add(deadAfter); due.IsZero() || d.Before(due) {
			due = d
		}
	}
	return due, errors.Join(errs...)
}

// reclaim puts back in the queue the jobs this process lost: running in
// the database under its client ID, but not running here. A fetch marks
// jobs running and attempted by this process in one statement; when its
// answer never arrives (the connection broke after the commit, as in a
// failover) no worker runs them, and an outcome whose write failed for
// good leaves its job running too. The process is alive, so no other one
// rescues them; without this they would wait for the lease. lost holds
// when each such job was first seen so; one still so after lostAfter, not
// started or ended here meanwhile, is rescued as a dead process's job is
// (available at once, or discarded, or cancelled). Only while the lock is
// held: without it this process runs nothing, and the jobs whose runs it
// cancelled have their outcome still to be written.
func (l *lifeline) reclaim(ctx context.Context, lost map[int64]time.Time) error {
	l.mu.Lock()
	held := l.held
	l.mu.Unlock()
	if !held {
		clear(lost)
		return nil
	}
	rows, err := l.pool.Query(ctx, `SELECT id FROM river_job
		WHERE state = 'running' AND attempted_by[cardinality(attempted_by)] = $1`, l.id)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	now := time.Now()
	seen := map[int64]bool{}
	l.mu.Lock()
	running := make(map[int64]bool, len(l.runs))
	for r := range l.runs {
		running[r.job] = true
	}
	for _, id := range ids {
		if t, ok := l.ended[id]; !running[id] && (!ok || now.Sub(t) >= lostAfter) {
			seen[id] = true
		}
	}
	for id, t := range l.ended {
		if now.Sub(t) > 2*lostAfter {
			delete(l.ended, id)
		}
	}
	l.mu.Unlock()
	for id := range lost {
		if !seen[id] {
			delete(lost, id)
		}
	}
	var due []int64
	var lostFor time.Duration
	for id := range seen {
		since, ok := lost[id]
		if !ok {
			lost[id] = now
			continue
		}
		if d := now.Sub(since); d >= lostAfter {
			due = append(due, id)
			lostFor = max(lostFor, d)
		}
	}
	if len(due) == 0 {
		return nil
	}
	if err := l.putBack(ctx, due, lostFor); err != nil {
		return err
	}
	for _, id := range due {
		delete(lost, id)
	}
	return nil
}

// putBack rescues the jobs with the ids that are still running under this
// process's client ID, in one transaction.
func (l *lifeline) putBack(ctx context.Context, ids []int64, lostFor time.Duration) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	jobs, states, err := l.rescueRunning(ctx, tx, l.id, ids)
	if err != nil || len(jobs) == 0 {
		return err
	}
	l.obs.logReclaimed(l.id, jobs, states, lostFor)
	return nil
}

// heldLocks returns the keys of the session advisory locks held in the
// database (a bigint key is classid, objid with objsubid 1).
func heldLocks(ctx context.Context, pool *pgxpool.Pool) (map[int64]bool, error) {
	rows, err := pool.Query(ctx, `SELECT classid, objid FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 1 AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	if err != nil {
		return nil, err
	}
	held := map[int64]bool{}
	var hi, lo uint32
	_, err = pgx.ForEachRow(rows, []any{&hi, &lo}, func() error {
		held[int64(uint64(hi)<<32|uint64(lo))] = true
		return nil
	})
	return held, err
}

// rescue runs again the jobs that the dead process id was running, and
// ends its leadership, in one transaction that holds the process's lock:
// if the process holds it (it took it back), nothing happens. Other processes may rescue at once: the
// lock and the running state and last runner of the jobs, checked under
// row locks, make each job rescued once.
func (l *lifeline) rescue(ctx context.Context, id string, key int64, deadFor time.Duration) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var free bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", key).Scan(&free); err != nil {
		return err
	}
	if !free {
		return nil
	}
	// Its leadership too, or River waits out its TTL (15 s) before another
	// process runs the periodic jobs. (rescueRunning commits tx.)
	if err := resignDead(ctx, l.obs, l.driver.UnwrapExecutor(tx), id); err != nil {
		return err
	}
	jobs, states, err := l.rescueRunning(ctx, tx, id, nil)
	switch {
	case err != nil:
		return err
	case len(jobs) == 0: // rescueRunning did not commit
		return tx.Commit(ctx)
	}
	l.obs.logRescued(l.id, jobs, states, deadFor)
	return nil
}

// rescueRunning rescues, in tx, which it commits, the jobs still running
// whose last runner is runner (of ids only, unless nil), as River's rescuer
// would but without the retry backoff (rescueParams), at most rescueBatch
// of them, under row locks. It returns them and their new states.
func (l *lifeline) rescueRunning(ctx context.Context, tx pgx.Tx, runner string, ids []int64) ([]stuckJob, []rivertype.JobState, error) {
	rows, err := tx.Query(ctx, `SELECT id, kind, attempt, max_attempts, scheduled_at, metadata ? 'cancel_attempted_at'
		FROM river_job WHERE state = 'running' AND attempted_by[cardinality(attempted_by)] = $1
		AND ($2::bigint[] IS NULL OR id = ANY($2))
		ORDER BY id LIMIT $3 FOR UPDATE`, runner, ids, rescueBatch)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stuckJob, error) {
		j := stuckJob{runner: runner, lost: runner == l.id}
		err := r.Scan(&j.id, &j.kind, &j.attempt, &j.maxAttempts, &j.scheduledAt, &j.cancelled)
		return j, err
	})
	if err != nil || len(jobs) == 0 {
		return nil, nil, err
	}
	params, states, err := rescueParams(jobs, time.Now())
	if err != nil {
		return nil, nil, err
	}
	if _, err := l.driver.UnwrapExecutor(tx).JobRescueMany(ctx, params); err != nil {
		return nil, nil, fmt.Errorf("rescuing %d jobs of %s: %w", len(jobs), runner, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, nil, err
	}
	return jobs, states, nil
}

// sleep waits for d or until ctx ends, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
