package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users/userstest"
)

// commitDelay makes every statement that appends events sleep up to 4 ms
// before its transaction can commit, so that transactions commit in another
// order than the one their events' seqs were taken in: the case the feed's
// design is for. It is installed by tests only.
const commitDelay = `
CREATE FUNCTION test_commit_delay() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_sleep(random() * 0.004);
	RETURN NULL;
END $$;
CREATE TRIGGER test_commit_delay AFTER INSERT ON events
	FOR EACH STATEMENT EXECUTE FUNCTION test_commit_delay();`

// TestEventFeedProof runs userstest.ProveFeed: eight writers for ten
// seconds, whose commits are delayed at random after they append their
// events, one consumer that resumes from its cursor at random moments, and
// the events it read compared with the outbox table.
//
// Alongside runs a reader of the naive feed, "seq > cursor": it must miss
// events, or the workload does not reorder commits and proves nothing.
func TestEventFeedProof(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ten seconds; run without -short")
	}
	ctx := context.Background()
	dsn := pgtest.NewMigratedDatabase(t)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 16 // the writers, the consumers and the outbox reader
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, commitDelay); err != nil {
		t.Fatal(err)
	}
	outbox := func(ctx context.Context) ([]string, error) {
		rows, err := pool.Query(ctx, "SELECT id::text FROM events")
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}

	naiveCtx, stopNaive := context.WithCancel(ctx)
	var (
		naive    = map[string]bool{}
		naiveErr error
		wg       sync.WaitGroup
	)
	wg.Go(func() { naiveErr = readNaively(naiveCtx, pool, naive) })

	res := userstest.ProveFeed(t, postgres.NewStore(pool), userstest.FeedProof{
		Writers:  8,
		Duration: 10 * time.Second,
		Outbox:   outbox,
	})
	stopNaive()
	wg.Wait()
	if naiveErr != nil {
		t.Fatalf("naive reader: %v", naiveErr)
	}
	t.Log(res)
	ids, err := outbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	missed := 0
	for _, id := range ids {
		if !naive[id] {
			missed++
		}
	}
	t.Logf("the naive reader (seq > cursor) missed %d of %d events", missed, len(ids))
	if missed == 0 {
		t.Error("the naive reader missed no event: the workload does not commit out of seq order, so the proof proves nothing")
	}
}

// readNaively follows the outbox the naive way, by seq alone, until ctx
// ends, and then once more to the end of the table.
func readNaively(ctx context.Context, pool *pgxpool.Pool, seen map[string]bool) error {
	var last int64
	for done := false; ; {
		done = done || ctx.Err() != nil
		rows, err := pool.Query(context.Background(), "SELECT seq, id::text FROM events WHERE seq > $1 ORDER BY seq LIMIT 5", last)
		if err != nil {
			return err
		}
		n := 0
		var (
			seq int64
			id  string
		)
		_, err = pgx.ForEachRow(rows, []any{&seq, &id}, func() error {
			seen[id], last = true, seq
			n++
			return nil
		})
		if err != nil {
			return err
		}
		if n == 0 {
			if done {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
	}
}
