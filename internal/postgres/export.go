package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Export: users.UserStore's ExportUsers.

const (
	// beginSnapshot starts the export's transaction: one snapshot, taken
	// at its first statement, for the tenant's check and every user read.
	beginSnapshot = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

	// exportTenant reads whether the tenant ($1) is live.
	exportTenant = "SELECT EXISTS (SELECT FROM tenants WHERE id = $1 AND state = 'ACTIVE')"
)

// ExportUsers calls fn for every user of q.Tenant that matches q, by
// create_time then id, read in one REPEATABLE READ READ ONLY transaction
// on one connection; see users.UserStore.
//
// The transaction's first round trip is BEGIN, the tenant's check and the
// users' statement, sent at once; the statement's rows then stream (pgx
// reads them from the socket as they are scanned, a buffer at a time), so
// memory stays flat however many users there are, and the server waits
// on the socket while fn is slow. When fn fails, or ctx ends, before the
// last row, the connection is closed rather than drained of the rows left
// (pgx would read them all), and the pool replaces it.
//
// One statement rather than keyset pages of the same transaction (WHERE
// (create_time, id) > the last one's, LIMIT n): the server reads on while
// the client decodes, where pages take turns with it, and the index is
// descended once. Measured on 300,000 users with create_time in insertion
// order, 270,000 of a tenant read in 0.69 s this way and 0.92 s in pages of
// 5000, 30,000 in 0.115 s and 0.133 s. The planner may sort instead of
// reading the index (in work_mem, then temporary files): the first user
// then comes once the sort is done, and the server's memory stays bounded
// all the same.
//
// A broken connection is tried again, on another, only before fn was first
// called: after, a retry would call fn again for the users it had.
func (s *Store) ExportUsers(ctx context.Context, q users.ListQuery, fn func(*users.User) error) (err error) {
	defer wrap(ctx, &err, "export users of %s", q.Tenant)
	q.Order, q.Search, q.After, q.Limit = users.Order{}, nil, nil, 0
	called := false
	each := func(u *users.User) error {
		called = true
		if err := fn(u); err != nil {
			return usersql.FnError(err)
		}
		return nil
	}
	for try := 1; ; try++ {
		err = s.once(ctx, func(c *pgxpool.Conn) error { return exportOn(ctx, c, q, each) })
		if err == nil || called {
			return err
		}
		if ce := classify(ctx, err); try == maxTries || !retryable(read, try, ce) || !sleep(ctx, backoff(try)) {
			return err
		}
	}
}

// exportOn is ExportUsers' transaction on c.
func exportOn(ctx context.Context, c *pgxpool.Conn, q users.ListQuery, fn func(*users.User) error) error {
	where, args, err := usersql.WhereClause(usersql.Postgres, q)
	if err != nil {
		return err
	}
	// A statement left before its end closes the connection: cancelling
	// qctx makes pgx close it at once.
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer rollback(qctx, c)

	var b pgx.Batch
	b.Queue(beginSnapshot)
	b.Queue(exportTenant, q.Tenant)
	b.Queue("SELECT "+userColumns+" FROM users"+where+" ORDER BY create_time, id", args...)
	b.Queue("COMMIT")
	br := c.SendBatch(qctx, &b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	var live bool
	if err := br.QueryRow().Scan(&live); err != nil {
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	if !live {
		rows.Close()
		return fmt.Errorf("tenant %s: %w", q.Tenant, users.ErrNotFound)
	}
	if err := scanEach(ctx, rows, fn); err != nil {
		cancel() // before Close, which would read every row left
		rows.Close()
		return err
	}
	rows.Close()
	if _, err := br.Exec(); err != nil {
		return err
	}
	return br.Close()
}

// scanEach calls fn with the user of each row, until the last or an
// error; the caller closes rows. It stops when ctx ends: rows that pgx has
// buffered already would not notice.
func scanEach(ctx context.Context, rows pgx.Rows, fn func(*users.User) error) error {
	var r userRow
	dest := r.dest()
	for rows.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		u, err := r.user()
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return rows.Err()
}
