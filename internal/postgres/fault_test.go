package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// wantStoreError fails the test unless err is a *users.StoreError of kind
// and cause.
func wantStoreError(t *testing.T, what string, err, kind error, cause string) {
	t.Helper()
	var se *users.StoreError
	if !errors.As(err, &se) || !errors.Is(err, kind) || se.Cause != cause {
		t.Errorf("%s err = %v, want a %v StoreError with cause %q", what, err, kind, cause)
	}
}

// safeErr is an error pgx would report for a statement it never sent.
type safeErr struct{}

func (safeErr) Error() string     { return "conn busy" }
func (safeErr) SafeToRetry() bool { return true }

// TestDoRetries runs Store.do with units of work that fail as a database
// fails, and counts how often each runs: a retry happens only where it
// cannot write twice.
func TestDoRetries(t *testing.T) {
	s, _ := newStore(t)
	lost := fmt.Errorf("read: %w", io.ErrUnexpectedEOF)
	tests := []struct {
		name      string
		access    postgres.Access
		fails     []error
		wantRuns  int
		wantKind  error // nil: success
		wantCause string
	}{
		{"read retried once after its connection broke", postgres.Read, []error{lost}, 2, nil, ""},
		{"read not retried twice", postgres.Read, []error{lost, lost}, 2, users.ErrUnavailable, "connection_lost"},
		{"write with unknown outcome not retried", postgres.Write, []error{lost}, 1, users.ErrUnavailable, "connection_lost"},
		{"write never sent is retried", postgres.Write, []error{safeErr{}, safeErr{}}, 3, nil, ""},
		{"connect errors are retried", postgres.Write, []error{&pgconn.ConnectError{}, &pgconn.ConnectError{}}, 3, nil, ""},
		{"retries are bounded", postgres.Read, []error{safeErr{}, safeErr{}, safeErr{}, safeErr{}, safeErr{}, safeErr{}}, 5, users.ErrUnavailable, "not_sent"},
		{"serialization failure retried as a whole transaction", postgres.Txn, []error{&pgconn.PgError{Code: "40001"}, &pgconn.PgError{Code: "40P01"}}, 3, nil, ""},
		{"contention past the retries is ABORTED", postgres.Txn, []error{
			&pgconn.PgError{Code: "40001"}, &pgconn.PgError{Code: "40001"}, &pgconn.PgError{Code: "40001"},
			&pgconn.PgError{Code: "40001"}, &pgconn.PgError{Code: "40001"},
		}, 5, users.ErrContention, "serialization_failure"},
		{"a single statement's conflict is not retried", postgres.Write, []error{&pgconn.PgError{Code: "40001"}}, 1, users.ErrContention, "serialization_failure"},
		{"demoted primary", postgres.Txn, []error{&pgconn.PgError{Code: "25006"}}, 1, users.ErrUnavailable, "read_only"},
		{"a read's statement timeout is not retried", postgres.Read, []error{&pgconn.PgError{Code: "57014"}}, 1, users.ErrUnavailable, "statement_timeout"},
		{"request errors pass", postgres.Read, []error{pgx.ErrNoRows}, 1, pgx.ErrNoRows, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := 0
			fn := func(c *pgxpool.Conn) error {
				runs++
				if runs <= len(tt.fails) {
					return tt.fails[runs-1]
				}
				return c.QueryRow(context.Background(), "SELECT 1").Scan(new(int))
			}
			err := s.Do(t.Context(), tt.access, fn)
			if runs != tt.wantRuns {
				t.Errorf("ran %d times, want %d", runs, tt.wantRuns)
			}
			switch {
			case tt.wantKind == nil && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.wantCause != "":
				wantStoreError(t, "Do", err, tt.wantKind, tt.wantCause)
			case tt.wantKind != nil && !errors.Is(err, tt.wantKind):
				t.Errorf("err = %v, want %v", err, tt.wantKind)
			}
		})
	}
}

// TestUnavailableWhenNoServer: a pool whose server is not there answers
// UNAVAILABLE (cause "connect") after its short retries, never an unknown
// error.
func TestUnavailableWhenNoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	pool := newPool(t, "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=2")
	s := postgres.NewStore(pool)
	start := time.Now()
	_, err = s.GetUser(t.Context(), users.DefaultTenant, "5f0c4b1e-3b7a-4c1e-9a51-1d2b3c4d5e6f")
	wantStoreError(t, "GetUser", err, users.ErrUnavailable, "connect")
	_, err = s.CreateUser(t.Context(), userstest.NewUser(1), nil)
	wantStoreError(t, "CreateUser", err, users.ErrUnavailable, "connect")
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("two calls took %v against a closed port, want well under 5s", took)
	}
}

// TestPoolExhausted: a call that waits past the acquire timeout for a
// connection is UNAVAILABLE ("pool_exhausted"), well before its own
// deadline.
func TestPoolExhausted(t *testing.T) {
	dsn := pgtest.NewMigratedDatabase(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s := postgres.NewStore(pool, postgres.WithAcquireTimeout(100*time.Millisecond))
	held, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = s.GetUser(ctx, users.DefaultTenant, "5f0c4b1e-3b7a-4c1e-9a51-1d2b3c4d5e6f")
	wantStoreError(t, "GetUser", err, users.ErrUnavailable, "pool_exhausted")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("GetUser waited %v, want about the 100ms acquire timeout", took)
	}
	held.Release()
	if _, err := s.GetUser(ctx, users.DefaultTenant, "5f0c4b1e-3b7a-4c1e-9a51-1d2b3c4d5e6f"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetUser with a free connection err = %v, want ErrNotFound", err)
	}
}

// TestConnectionsTerminated: the server ends every connection of the pool
// (as a restart or a failover does). Reads are retried on fresh
// connections and succeed; a write either succeeds (it was never sent on
// a dead connection) or is UNAVAILABLE, never an unknown error.
func TestConnectionsTerminated(t *testing.T) {
	s, dsn := newStore(t)
	ctx := t.Context()
	created, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	for i := range 5 {
		// Warm up several connections, then end them all.
		if _, err := s.BatchGetUsers(ctx, users.DefaultTenant, []string{created.ID}); err != nil {
			t.Fatal(err)
		}
		var ended int
		err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&ended)
		if err != nil {
			t.Fatal(err)
		}
		if ended == 0 {
			t.Fatalf("round %d: no connection to end", i)
		}
		if _, err := s.GetUser(ctx, users.DefaultTenant, created.ID); err != nil {
			t.Errorf("round %d: GetUser after the server ended %d connections: %v", i, ended, err)
		}
		_, err = s.CreateUser(ctx, userstest.NewUser(10+i), nil)
		if err != nil && !errors.Is(err, users.ErrUnavailable) {
			t.Errorf("round %d: CreateUser err = %v, want nil or ErrUnavailable", i, err)
		}
	}
}

// TestReadOnlyDatabase: writes to a database that has turned read-only (a
// demoted primary) are UNAVAILABLE ("read_only"); reads go on.
func TestReadOnlyDatabase(t *testing.T) {
	dsn := pgtest.NewMigratedDatabase(t)
	ctx := t.Context()
	s := postgres.NewStore(newPool(t, dsn))
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	db := dsn[strings.LastIndex(dsn, "/")+1:]
	db, _, _ = strings.Cut(db, "?")
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	ro := postgres.NewStore(newPool(t, dsn)) // new connections take the setting
	_, err = ro.CreateUser(ctx, userstest.NewUser(2), nil)
	wantStoreError(t, "CreateUser", err, users.ErrUnavailable, "read_only")
	_, err = ro.UpdateUser(ctx, users.DefaultTenant, u.ID, func(u *users.User) error { u.DisplayName = "X"; return nil })
	wantStoreError(t, "UpdateUser", err, users.ErrUnavailable, "read_only")
	if _, err := ro.GetUser(ctx, users.DefaultTenant, u.ID); err != nil {
		t.Errorf("GetUser on a read-only database: %v", err)
	}
}
