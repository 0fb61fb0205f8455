package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// rowLock holds a user's row locked in another session and watches
// pg_stat_activity for statements of usersd's sessions.
type rowLock struct {
	t                *testing.T
	locker, observer *pgx.Conn
	tx               pgx.Tx
}

func lockUser(t *testing.T, url, id string) *rowLock {
	t.Helper()
	ctx := context.Background()
	l := &rowLock{t: t}
	var err error
	if l.locker, err = pgx.Connect(ctx, url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.locker.Close(ctx) })
	// The observer is a connection of its own: inside a transaction,
	// pg_stat_activity is a snapshot taken at its first read.
	if l.observer, err = pgx.Connect(ctx, url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.observer.Close(ctx) })
	if l.tx, err = l.locker.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.tx.Exec(ctx, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", id); err != nil {
		t.Fatal(err)
	}
	return l
}

// busy counts the backends, other than the locker and the observer, that
// wait on a lock or run a statement in the test database.
func (l *rowLock) busy() int {
	var n int
	err := l.observer.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid NOT IN (pg_backend_pid(), $1)
		  AND (state = 'active' OR wait_event_type = 'Lock')`, l.locker.PgConn().PID()).Scan(&n)
	if err != nil {
		l.t.Fatal(err)
	}
	return n
}

// waitBlocked waits until a usersd statement waits on the lock: without
// that, a test of cancellation proves nothing.
func (l *rowLock) waitBlocked() {
	l.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.busy() == 0 {
		if time.Now().After(deadline) {
			l.t.Fatal("no statement ever waited on the row lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGone fails unless every usersd statement leaves pg_stat_activity
// within a second of start, and returns how long it took.
func (l *rowLock) waitGone(start time.Time) time.Duration {
	l.t.Helper()
	for l.busy() > 0 {
		if time.Since(start) > time.Second {
			l.t.Fatalf("the cancelled statement was still in pg_stat_activity after %v", time.Since(start))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func (l *rowLock) release() {
	if err := l.tx.Rollback(context.Background()); err != nil {
		l.t.Fatal(err)
	}
}

// TestCancelReachesPostgres shows that a client giving up cancels the SQL
// it caused: an HTTP PATCH waits on a row lock held elsewhere; when the
// client cancels, the waiting query leaves pg_stat_activity within a second.
func TestCancelReachesPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := startServer(t, "--database-url", url)
	id := createUser(t, s, "locked@example.com", "Locked").str("id")
	lock := lockUser(t, url, id)

	reqCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(reqCtx, "PATCH", "http://"+s.HTTP+"/v1/users/"+id, strings.NewReader(`{"displayName":"Blocked"}`))
	errc := make(chan error, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	lock.waitBlocked()
	cancel()
	start := time.Now()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled PATCH succeeded")
	}
	t.Logf("query gone from pg_stat_activity %v after the client cancelled", lock.waitGone(start).Round(time.Millisecond))

	lock.release()
	if got := s.do(t, "GET", "/v1/users/"+id, "").str("displayName"); got != "Locked" {
		t.Errorf("displayName = %q after the cancelled update, want Locked", got)
	}
}

// TestDeadlinesReachPostgres: a gRPC client's deadline, and the server's
// default --request-timeout for HTTP calls that bring none, end the SQL
// they caused.
func TestDeadlinesReachPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	s := startServer(t, "--database-url", url, "--request-timeout", "400ms")
	id := createUser(t, s, "slow@example.com", "Slow").str("id")
	lock := lockUser(t, url, id)

	// The client's deadline, shorter than the server's default.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Client.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: id, DisplayName: "Late"}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("UpdateUser past its deadline: %v, want DEADLINE_EXCEEDED", err)
	}
	if d := time.Since(start); d > 400*time.Millisecond {
		t.Errorf("the client deadline of 150ms took %v to end the call: the server default applied instead", d)
	}
	lock.waitGone(time.Now())

	// No deadline from the client: the server's 400ms applies.
	start = time.Now()
	r := s.do(t, "PATCH", "/v1/users/"+id, `{"displayName":"Late"}`)
	if r.Status != http.StatusGatewayTimeout {
		t.Fatalf("PATCH past the default deadline: status %d, want 504; body %s", r.Status, r.Raw)
	}
	took := time.Since(start)
	if took < 350*time.Millisecond || took > 2*time.Second {
		t.Errorf("the default deadline of 400ms ended the call after %v", took)
	}
	t.Logf("default deadline: 504 after %v; statement gone %v later", took.Round(time.Millisecond), lock.waitGone(time.Now()).Round(time.Millisecond))
	lock.release()
}
