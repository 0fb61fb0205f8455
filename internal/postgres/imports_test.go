package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

func TestCreateImportWithoutJobs(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	op, chunks := userstest.NewImport("req", 2)
	_, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: "req", Fingerprint: []byte("fp")}, chunks)
	if err == nil || !strings.Contains(err.Error(), "no job queue configured") {
		t.Errorf("CreateImport without jobs err = %v, want no job queue configured", err)
	}
	if _, err := s.GetOperation(ctx, users.DefaultTenant, op.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetOperation after CreateImport without jobs err = %v, want ErrNotFound", err)
	}
}

// TestCreateImportWaitsForConcurrent starts an import and, while its
// transaction is open, the same import again: the second waits for the
// first, then returns the first's operation if it committed, or stores its
// own if it rolled back. Never two operations.
func TestCreateImportWaitsForConcurrent(t *testing.T) {
	boom := errors.New("queue unavailable")
	for _, tt := range []struct {
		name     string
		firstErr error
	}{
		{"first commits", nil},
		{"first rolls back", boom},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			pool := newPool(t, pgtest.NewMigratedDatabase(t))
			jobs := newQueue()
			hold := jobs.Hold(tt.firstErr) // the first import's enqueue
			s := postgres.NewStore(pool, postgres.WithJobs(jobs))
			key := users.IdempotencyKey{RequestID: "req", Fingerprint: []byte("fp")}

			type result struct {
				op  *users.Operation
				err error
			}
			first, firstChunks := userstest.NewImport("req", 2)
			second, secondChunks := userstest.NewImport("req", 2)
			firstDone, secondDone := make(chan result, 1), make(chan result, 1)
			go func() {
				op, err := s.CreateImport(ctx, first, key, firstChunks)
				firstDone <- result{op, err}
			}()
			<-hold.Entered()
			go func() {
				op, err := s.CreateImport(ctx, second, key, secondChunks)
				secondDone <- result{op, err}
			}()
			select {
			case r := <-secondDone:
				hold.Release()
				<-firstDone
				t.Fatalf("the second CreateImport returned %+v, %v while the first was open; want it to wait", r.op, r.err)
			case <-time.After(300 * time.Millisecond):
			}
			hold.Release()

			r1, r2 := <-firstDone, <-secondDone
			want := first.ID
			if tt.firstErr != nil {
				want = second.ID
				if !errors.Is(r1.err, boom) {
					t.Errorf("first CreateImport err = %v, want %v", r1.err, boom)
				}
			} else if r1.err != nil || r1.op.ID != first.ID {
				t.Errorf("first CreateImport = %+v, %v; want operation %s", r1.op, r1.err, first.ID)
			}
			if r2.err != nil || r2.op.ID != want {
				t.Errorf("second CreateImport = %+v, %v; want operation %s", r2.op, r2.err, want)
			}
			var n int
			if err := pool.QueryRow(ctx, "SELECT count(*) FROM operations").Scan(&n); err != nil || n != 1 {
				t.Errorf("operations stored = %d, %v; want 1", n, err)
			}
		})
	}
}

// BenchmarkImport creates an import of one full chunk and imports it.
func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	s, _ := newStoreWithJobs(b)
	for i := 0; b.Loop(); i++ {
		op, chunks := userstest.NewImport(fmt.Sprint("bench-", i), users.DefaultImportChunkSize)
		if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: op.RequestID}, chunks); err != nil {
			b.Fatal(err)
		}
		if err := s.ImportChunk(ctx, op.ID, 0, userstest.ImportedUsers(chunks[0]), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPurgeSkipsUserBeingUndeleted purges while another transaction
// undeletes one of the users to purge: the purge neither waits for it nor
// removes the user once the undelete commits.
func TestPurgeSkipsUserBeingUndeleted(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	var ids []string
	for i := range 3 {
		u := userstest.NewUser(i)
		u.State, u.DeleteTime = users.StateDeleted, u.CreateTime
		if _, err := s.CreateUser(ctx, u, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "UPDATE users SET state = 'ACTIVE', delete_time = NULL WHERE id = $1", ids[0]); err != nil {
		t.Fatal(err)
	}

	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	n, err := s.PurgeDeleted(pctx, time.Now(), 10)
	if err != nil || n != 2 {
		t.Errorf("PurgeDeleted = %d, %v; want the 2 users not being undeleted", n, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("PurgeDeleted took %v: it waited for the undelete", d)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, ids[0]); got.State != users.StateActive {
		t.Errorf("undeleted user = %+v, want ACTIVE", got)
	}
}
