package postgres

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
)

// Faults. A database that is away is not a bug: every error of a Store
// method passes classify, which turns the failures of infrastructure into a
// *users.StoreError of kind users.ErrUnavailable (the API answers
// UNAVAILABLE / 503) or, for transactions that kept losing to concurrent
// ones, users.ErrContention (ABORTED). Errors of the request itself (a
// unique violation, no rows) and unknown ones pass unchanged.
//
// The request paths run their statements through Store.do, which tries
// again where that cannot do harm: a statement pgx never sent, a read
// whose connection broke (once, on a fresh connection), a transaction
// that lost a serialization conflict or a deadlock (as a whole). A write
// whose outcome is unknown is never sent again by the server: the client's
// request id makes its own retry safe.

// classify is users.Classify with Postgres's table of failures. Text the
// server cannot store (a NUL, invalid UTF-8: SQLSTATE 22021, 22P05) is the
// request's fault, not the server's: the domain refuses it first, and this
// is the backstop that keeps it a 400 if a path ever misses that.
func classify(ctx context.Context, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05") && ctx.Err() == nil {
		return users.Invalid("request", "contains text the database cannot store (NUL or invalid UTF-8)")
	}
	return users.Classify(ctx, err, faultOf)
}

// faultOf names the infrastructure failure err is and its kind, or returns
// a nil kind.
func faultOf(err error) (cause string, kind error) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgFault(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	switch {
	case errors.As(err, &connectErr):
		return "connect", users.ErrUnavailable
	case pgconn.Timeout(err):
		return "timeout", users.ErrUnavailable
	case brokenConn(err):
		return "connection_lost", users.ErrUnavailable
	case pgconn.SafeToRetry(err):
		// pgx sent nothing, for a reason other than the network's.
		return "not_sent", users.ErrUnavailable
	case strings.Contains(err.Error(), "closed pool"):
		return "pool_closed", users.ErrUnavailable
	}
	return "", nil
}

// pgFault classifies a server's error by its SQLSTATE. The classes and
// codes are PostgreSQL's (Appendix A of its manual).
func pgFault(code string) (cause string, kind error) {
	switch code {
	case "40001":
		return "serialization_failure", users.ErrContention
	case "40P01":
		return "deadlock", users.ErrContention
	case "25006":
		// What a primary that was demoted answers to a write.
		return "read_only", users.ErrUnavailable
	case "57P01":
		return "admin_shutdown", users.ErrUnavailable
	case "57P02":
		return "crash_shutdown", users.ErrUnavailable
	case "57P03":
		return "cannot_connect_now", users.ErrUnavailable
	case "57014":
		// The server's statement_timeout; a cancellation by the caller is
		// marked as such by classify before it gets here.
		return "statement_timeout", users.ErrUnavailable
	case "53300":
		return "too_many_connections", users.ErrUnavailable
	}
	switch code[:2] {
	case "08":
		return "connection_exception", users.ErrUnavailable
	case "53":
		return "insufficient_resources", users.ErrUnavailable
	case "58":
		return "system_error", users.ErrUnavailable
	}
	return "", nil
}

// brokenConn reports whether err says the connection to the server broke
// or could not be made: a network error, or the end of the stream.
func brokenConn(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "conn closed")
}

// access says what a unit of work passed to Store.do does, which decides
// when it may run again.
type access int

const (
	// read changes nothing: it runs again once when its connection broke.
	read access = iota
	// write changes the database: it runs again only when pgx sent none
	// of it.
	write
	// txn is a write in one transaction that also runs again, as a whole,
	// after a serialization failure or a deadlock, which roll it back.
	txn
)

// Retries of Store.do: at most maxTries runs, waiting retryBase, then twice
// as long each time (±25%), and never past the context's deadline. Five
// runs span about 0.4 s: enough to ride out a dropped connection or a
// conflict, short enough that a database that is away for longer is
// reported, as UNAVAILABLE, while the client still has time to retry
// elsewhere.
const (
	maxTries  = 5
	retryBase = 25 * time.Millisecond
)

// DefaultAcquireTimeout bounds the wait for a connection of the pool. A
// request that waits longer is answered UNAVAILABLE ("pool_exhausted")
// rather than holding its client until its own deadline.
const DefaultAcquireTimeout = 3 * time.Second

// acquire returns a connection of the pool, waiting at most the Store's
// acquire timeout (and ctx) for one.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	actx, cancel := context.WithTimeout(ctx, s.acquireTimeout)
	defer cancel()
	c, err := s.pool.Acquire(actx)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		return nil, users.Unavailable("pool_exhausted", err)
	}
	return c, err
}

// do runs fn on a connection of the pool and classifies its error. It runs
// fn again, on a fresh connection, when that is safe for a unit of work
// with access a (see access), at most maxTries times in all and within
// ctx's deadline.
func (s *Store) do(ctx context.Context, a access, fn func(c *pgxpool.Conn) error) error {
	for try := 1; ; try++ {
		err := s.once(ctx, fn)
		if err == nil {
			return nil
		}
		err = classify(ctx, err)
		if try == maxTries || !retryable(a, try, err) || !sleep(ctx, backoff(try)) {
			return err
		}
	}
}

// once runs fn on a connection of the pool.
func (s *Store) once(ctx context.Context, fn func(c *pgxpool.Conn) error) error {
	c, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	return fn(c)
}

// retryable reports whether a unit of work with access a that failed with
// err (classified) on its try-th run may run again.
func retryable(a access, try int, err error) bool {
	var se *users.StoreError
	if !errors.As(err, &se) {
		return false
	}
	var connectErr *pgconn.ConnectError
	switch {
	case pgconn.SafeToRetry(se.Err) || errors.As(se.Err, &connectErr):
		// Nothing reached the server: no connection, or nothing sent on it.
		return true
	case a == txn && se.Kind == users.ErrContention:
		return true
	case a == read && try == 1:
		return connectionEnded(se.Cause)
	}
	return false
}

// connectionEnded reports whether a failure of that cause ended the
// connection it happened on, which a read may then try once more on
// another: not a slow statement, a full pool or a read-only server, which
// a second try would only meet again.
func connectionEnded(cause string) bool {
	switch cause {
	case "connection_lost", "connection_exception", "admin_shutdown", "crash_shutdown", "timeout":
		return true
	}
	return false
}

// backoff is the wait before run try+1.
func backoff(try int) time.Duration {
	d := retryBase << (try - 1)
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// sleep waits d, or returns false at once if ctx ends first or its deadline
// is closer than d.
func sleep(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
