package sqlite_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// wantUnavailable fails the test unless err is an ErrUnavailable
// *users.StoreError with the cause.
func wantUnavailable(t *testing.T, what string, err error, cause string) {
	t.Helper()
	var se *users.StoreError
	if !errors.As(err, &se) || !errors.Is(err, users.ErrUnavailable) || se.Cause != cause {
		t.Errorf("%s err = %v, want an ErrUnavailable StoreError with cause %q", what, err, cause)
	}
}

// TestBusyPastTimeout: another process holds the file's write lock longer
// than busy_timeout; the store's write is UNAVAILABLE ("sqlite_busy"), and
// succeeds once the lock is free.
func TestBusyPastTimeout(t *testing.T) {
	db, path := openDB(t)
	s := sqlite.NewStore(db)
	ctx := t.Context()
	// A shorter wait than the default 5s keeps the test quick; the writer
	// pool is one connection, so the pragma holds for every write.
	if _, err := sqlite.Writer(db).ExecContext(ctx, "PRAGMA busy_timeout = 200"); err != nil {
		t.Fatal(err)
	}
	conn := otherConn(t, path)
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	wantUnavailable(t, "CreateUser while another process writes", err, "sqlite_busy")
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("CreateUser gave up after %v, before busy_timeout", took)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, userstest.NewUser(1), nil); err != nil {
		t.Errorf("CreateUser once the lock is free: %v", err)
	}
}

// TestDiskFull: the database cannot grow (SQLITE_FULL, as on a full disk;
// here through max_page_count); writes are UNAVAILABLE ("disk_full"), and
// nothing half-written is left.
func TestDiskFull(t *testing.T) {
	db, _ := openDB(t)
	s := sqlite.NewStore(db)
	ctx := context.Background()
	w := sqlite.Writer(db)
	var pages int
	if err := w.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := w.ExecContext(ctx, "PRAGMA max_page_count = "+strconv.Itoa(pages+2)); err != nil {
		t.Fatal(err)
	}
	var full error
	created := 0
	for i := range 5000 {
		u := userstest.NewUser(i)
		u.DisplayName = "user " + strconv.Itoa(i) + strings.Repeat(".", 150) // fills pages faster
		if _, err := s.CreateUser(ctx, u, nil); err != nil {
			full = err
			break
		}
		created++
	}
	if full == nil {
		t.Fatal("5000 users fit in two more pages")
	}
	wantUnavailable(t, "CreateUser on a full database", full, "disk_full")
	got, err := s.ListUsers(ctx, users.ListQuery{Tenant: users.DefaultTenant, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != created {
		t.Errorf("%d users listed after %d were created and one failed", len(got), created)
	}
}
