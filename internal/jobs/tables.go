package jobs

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
)

// rows are the rows of a query of either database (pgx or database/sql),
// as the readers below scan them.
type rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}

// tables reads River's tables on the queue's database: the queue's depth
// and the subscriptions' backlogs.
type tables struct {
	// query runs q, hands its rows to read and closes them.
	query func(ctx context.Context, q string, read func(rows) error) error
	// backlogQuery is the backlog query in the database's JSON dialect.
	backlogQuery string
}

func pgTables(pool *pgxpool.Pool) tables {
	return tables{
		query: func(ctx context.Context, q string, read func(rows) error) error {
			rs, err := pool.Query(ctx, q)
			if err != nil {
				return err
			}
			defer rs.Close()
			return read(rs)
		},
		backlogQuery: pgBacklogQuery,
	}
}

func sqlTables(db *sql.DB) tables {
	return tables{
		query: func(ctx context.Context, q string, read func(rows) error) error {
			rs, err := db.QueryContext(ctx, q)
			if err != nil {
				return err
			}
			defer rs.Close()
			return read(rs)
		},
		backlogQuery: sqliteBacklogQuery,
	}
}

// depth counts the jobs that are waiting or running, by kind and state.
func (t tables) depth(ctx context.Context) (out map[[2]string]int, err error) {
	err = t.query(ctx, depthQuery, func(rs rows) error {
		out, err = scanDepth(rs)
		return err
	})
	return out, err
}

// backlogs reads the subscriptions' backlogs from the delivery jobs that
// are waiting or running (see the backlog queries).
func (t tables) backlogs(ctx context.Context) (out map[string]users.WebhookBacklog, err error) {
	err = t.query(ctx, t.backlogQuery, func(rs rows) error {
		out, err = scanBacklog(rs)
		return err
	})
	return out, err
}
