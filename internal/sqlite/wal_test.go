package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

const maxWAL = 64 << 20 // docs/storage.md

// walWatcher records the size of a database's -wal file.
type walWatcher struct {
	path string
	max  atomic.Int64
}

func (w *walWatcher) size() int64 {
	fi, err := os.Stat(w.path + "-wal")
	if err != nil {
		return 0
	}
	n := fi.Size()
	if n > w.max.Load() {
		w.max.Store(n)
	}
	return n
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

// createUsers creates users first, first+1, … first+n-1 on writers
// goroutines, with idempotency keys on every keyEvery-th (none if keyEvery
// is 0), checking the -wal size as it goes.
func createUsers(t *testing.T, s *sqlite.Store, w *walWatcher, first, n, writers, keyEvery int) {
	t.Helper()
	var (
		next = int64(first)
		end  = int64(first + n)
		wg   sync.WaitGroup
		errs = make(chan error, writers)
	)
	for range writers {
		wg.Go(func() {
			for {
				i := atomic.AddInt64(&next, 1) - 1
				if i >= end {
					return
				}
				var key *users.IdempotencyKey
				if keyEvery > 0 && i%int64(keyEvery) == 0 {
					key = &users.IdempotencyKey{RequestID: fmt.Sprint("req-", i), Fingerprint: []byte{byte(i)}}
				}
				if _, err := s.CreateUser(context.Background(), userstest.NewUser(int(i)), key); err != nil {
					errs <- fmt.Errorf("CreateUser #%d: %w", i, err)
					return
				}
				if i%16 == 0 {
					w.size()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestWALStaysSmall is the regression test for the WAL that never
// checkpoints: writes that end short of SQLITE_DONE (an autocommit
// INSERT … RETURNING read with QueryRow, say) skip WAL checkpoints, and the
// -wal file grows without bound, by gigabytes over a few hundred thousand
// inserts. It creates 50,000 users (20,000 under the race detector) while
// readers run and checks that the -wal file stays under 64 MB. TestAutoCheckpointsRun checks the mechanism
// more closely.
func TestWALStaysSmall(t *testing.T) {
	const writers, readers = 4, 3
	total := 50_000
	if userstest.RaceEnabled {
		// The race detector makes each insert 5.5 ms (BenchmarkCreateUser
		// -race): 50,000 take the package past go test's timeout. 20,000
		// still show a WAL that never checkpoints, which grows by some
		// 40 KB an insert, far beyond the 64 MB bound.
		total = 20_000
	}
	db, path := openDB(t)
	s := sqlite.NewStore(db)
	w := &walWatcher{path: path}
	start := time.Now()

	// The readers read every 10 ms: under -race on two CPUs, readers that
	// never pause take so much of the CPU that the test runs for minutes.
	// TestWALCheckpointsDespiteReaders covers readers that are always busy.
	ctx, stop := context.WithCancel(context.Background())
	var (
		wg    sync.WaitGroup
		reads atomic.Int64
		errs  = make(chan error, readers)
	)
	for r := range readers {
		wg.Go(func() {
			ticker := time.NewTicker(10 * time.Millisecond)
			defer ticker.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-ticker.C:
				}
				var err error
				if i%2 == 0 {
					q := users.ListQuery{Tenant: users.DefaultTenant, Order: users.Order{Field: users.OrderCreateTime, Desc: true}, Limit: 20}
					var us []*users.User
					if us, err = s.ListUsers(ctx, q); err == nil && len(us) > 0 {
						_, err = s.GetUser(ctx, users.DefaultTenant, us[0].ID)
					}
				} else {
					_, err = s.BatchGetUsers(ctx, users.DefaultTenant, []string{userstest.NewUser(0).ID})
				}
				if err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				reads.Add(1)
			}
		})
	}
	createUsers(t, s, w, 0, total, writers, 5)
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	end := w.size()
	t.Logf("created %d users in %v alongside %d reads; -wal at most %s, %s at the end",
		total, time.Since(start).Round(time.Millisecond), reads.Load(), mb(w.max.Load()), mb(end))
	if w.max.Load() >= maxWAL {
		t.Errorf("-wal file reached %s, want under %s: WAL checkpoints are not running", mb(w.max.Load()), mb(maxWAL))
	}
	var n int
	if err := sqlite.Reader(db).QueryRow("SELECT count(*) FROM users").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != total {
		t.Errorf("users stored = %d, want %d", n, total)
	}
}

// TestAutoCheckpointsRun checks the mechanism behind TestWALStaysSmall
// without readers, and so without the store's own checkpoints, which would
// hide its failure: SQLite checkpoints the WAL after any commit that leaves
// 1000 pages (4 MB) or more in it, but only when the commit steps to
// SQLITE_DONE. An autocommit INSERT … RETURNING read with QueryRow is reset
// before that, and never checkpoints. (Any other commit that does reach
// SQLITE_DONE checkpoints for it, so this test creates users without
// idempotency keys only.)
func TestAutoCheckpointsRun(t *testing.T) {
	const total = 3000 // some 60 MB of WAL frames
	db, path := openDB(t)
	s := sqlite.NewStore(db)
	w := &walWatcher{path: path}
	createUsers(t, s, w, 0, total, 1, 0)
	t.Logf("created %d users; -wal at most %s", total, mb(w.max.Load()))
	if limit := int64(8 << 20); w.max.Load() >= limit {
		t.Errorf("-wal file reached %s, want under %s: automatic checkpoints are not running", mb(w.max.Load()), mb(limit))
	}
}

// TestWALCheckpointsDespiteReaders checks that readers that are never all
// idle do not stop the WAL from being checkpointed and restarted. SQLite's
// automatic checkpoints never wait for a reader: two read transactions that
// overlap, so one of them always holds a snapshot older than the latest
// write, keep every one of them from reaching the end of the WAL, and
// without the store's own checkpoints the -wal file would grow by tens of
// kilobytes a user (169 MB for these 6,000 when last measured).
func TestWALCheckpointsDespiteReaders(t *testing.T) {
	const total = 6000
	db, path := openDB(t)
	s := sqlite.NewStore(db)
	w := &walWatcher{path: path}
	start := time.Now()

	ctx, stop := context.WithCancel(context.Background())
	var (
		wg     sync.WaitGroup
		rounds atomic.Int64
		errs   = make(chan error, 2)
	)
	// Two readers take turns: each holds a read transaction for 4 ms and
	// starts the next 2 ms after the other.
	for r := range 2 {
		wg.Go(func() {
			conn, err := sqlite.Reader(db).Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			time.Sleep(time.Duration(r) * 2 * time.Millisecond)
			for ctx.Err() == nil {
				if err := holdSnapshot(ctx, conn, 4*time.Millisecond); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
				rounds.Add(1)
			}
		})
	}
	createUsers(t, s, w, 0, total, 2, 5)
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	t.Logf("created %d users in %v alongside %d read transactions; -wal at most %s",
		total, time.Since(start).Round(time.Millisecond), rounds.Load(), mb(w.max.Load()))
	// The store checkpoints past 16 MB.
	if limit := int64(32 << 20); w.max.Load() >= limit {
		t.Errorf("-wal file reached %s, want under %s: readers starve WAL checkpoints", mb(w.max.Load()), mb(limit))
	}
}

// holdSnapshot reads in a transaction on conn and keeps it open for d.
func holdSnapshot(ctx context.Context, conn *sql.Conn, d time.Duration) error {
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM idempotency_keys").Scan(&n); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return nil
}
