package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// TestMain fails the package when a test leaves a goroutine running: every
// pool must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPool returns a pool on dsn that is closed when the test ends.
func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newStore returns a Store on a new migrated database, without a job
// queue, and the database's connection string.
func newStore(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	dsn := pgtest.NewMigratedDatabase(t)
	return postgres.NewStore(newPool(t, dsn)), dsn
}

// newStoreWithJobs returns a Store on a new migrated database whose imports
// and deliveries enqueue on a fake queue (newQueue) that records them in
// the returned Jobs.
func newStoreWithJobs(t testing.TB) (*postgres.Store, *userstest.Jobs) {
	t.Helper()
	q := newQueue()
	pool := newPool(t, pgtest.NewMigratedDatabase(t))
	return postgres.NewStore(pool, postgres.WithJobs(q)), &q.Jobs
}

// newQueue returns a fake job queue that, like River, works within the
// store's transaction: it checks there that what its jobs refer to is
// stored (checkChunks, checkDeliveries) before recording them.
func newQueue() *userstest.Queue[pgx.Tx] {
	return &userstest.Queue[pgx.Tx]{CheckImport: checkChunks, CheckDeliveries: checkDeliveries}
}

// checkChunks checks, within the store's transaction, that the operation
// of each chunk is stored.
func checkChunks(ctx context.Context, tx pgx.Tx, chunks []users.ImportChunk) error {
	for _, c := range chunks {
		var n int
		err := tx.QueryRow(ctx, "SELECT count(*) FROM operations WHERE id = $1", c.OperationID).Scan(&n)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("operation %s of chunk %d is not in the enqueueing transaction", c.OperationID, c.Chunk)
		}
	}
	return nil
}

// checkDeliveries checks, within the store's transaction, that the event
// and the enabled subscription of each delivery exist.
func checkDeliveries(ctx context.Context, tx pgx.Tx, deliveries []users.Delivery) error {
	for _, d := range deliveries {
		var n int
		err := tx.QueryRow(ctx, "SELECT (SELECT count(*) FROM events WHERE id = $1) + "+
			"(SELECT count(*) FROM webhooks WHERE id = $2 AND enabled)", d.EventID, d.WebhookID).Scan(&n)
		if err != nil {
			return err
		}
		if n != 2 {
			return fmt.Errorf("event %s or webhook %s of a delivery is not in the enqueueing transaction", d.EventID, d.WebhookID)
		}
	}
	return nil
}

func TestConformance(t *testing.T) {
	userstest.Run(t, func(t *testing.T) (users.Store, *userstest.Jobs) {
		s, jobs := newStoreWithJobs(t)
		return s, jobs
	})
}
