package userstest

import (
	"context"
	"sync"

	"github.com/usersd/usersd/internal/users"
)

// Queue is the fake job queue of the tests: it implements a store's
// Enqueuer (sqlite.Enqueuer with Tx *sql.Tx, postgres.Enqueuer with Tx pgx.Tx)
// and records in its Jobs what it is given, in order, as River would
// enqueue it: pass &q.Jobs to Run. Nothing runs the jobs; a test that wants
// imports done takes the chunks (TakeChunks) and runs them. The zero value
// is ready to use; a Queue is safe for concurrent use. Set the Check
// functions before the store uses the Queue.
type Queue[Tx any] struct {
	Jobs

	// CheckImport and CheckDeliveries, when set, are called within the
	// store's transaction before anything is recorded, the way River works
	// within it: an error they return fails the enqueue. The stores' tests
	// check there that the operation, event and webhook the jobs refer to
	// are visible in that transaction.
	CheckImport     func(ctx context.Context, tx Tx, chunks []users.ImportChunk) error
	CheckDeliveries func(ctx context.Context, tx Tx, deliveries []users.Delivery) error

	mu    sync.Mutex
	next  *Hold // the hold of the next enqueue
	taken int   // chunks taken by TakeChunks
}

// EnqueueImportTx checks chunks with CheckImport, waits for a Hold, and
// records them, or returns the error of the check, of the Hold or of Fail.
func (q *Queue[Tx]) EnqueueImportTx(ctx context.Context, tx Tx, chunks []users.ImportChunk) error {
	if q.CheckImport != nil {
		if err := q.CheckImport(ctx, tx, chunks); err != nil {
			return err
		}
	}
	if err := q.wait(); err != nil {
		return err
	}
	return q.Enqueue(chunks)
}

// EnqueueDeliveriesTx checks deliveries with CheckDeliveries, waits for a
// Hold, and records them, or returns the error of the check, of the Hold
// or of Fail.
func (q *Queue[Tx]) EnqueueDeliveriesTx(ctx context.Context, tx Tx, deliveries []users.Delivery) error {
	if q.CheckDeliveries != nil {
		if err := q.CheckDeliveries(ctx, tx, deliveries); err != nil {
			return err
		}
	}
	if err := q.wait(); err != nil {
		return err
	}
	return q.EnqueueDeliveries(deliveries)
}

// EnqueueSchemaCheckTx waits for a Hold and records the check, or returns
// the error of the Hold or of Fail.
func (q *Queue[Tx]) EnqueueSchemaCheckTx(ctx context.Context, tx Tx, c users.SchemaCheck) error {
	if err := q.wait(); err != nil {
		return err
	}
	return q.EnqueueSchemaCheck(c)
}

// Hold makes the next enqueue, of chunks or of deliveries, stop within the
// store's transaction, until the Hold is released: then it fails with err,
// recording nothing, or, err being nil, goes on. Later enqueues are not
// held.
func (q *Queue[Tx]) Hold(err error) *Hold {
	h := &Hold{entered: make(chan struct{}), release: make(chan struct{}), err: err}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next = h
	return h
}

// wait waits for the Hold of this enqueue, if any, and returns its error.
func (q *Queue[Tx]) wait() error {
	q.mu.Lock()
	h := q.next
	q.next = nil
	q.mu.Unlock()
	if h == nil {
		return nil
	}
	close(h.entered)
	<-h.release
	return h.err
}

// TakeChunks returns the chunks enqueued since the last TakeChunks, in
// order: the jobs a worker would run next.
func (q *Queue[Tx]) TakeChunks() []users.ImportChunk {
	q.mu.Lock()
	defer q.mu.Unlock()
	chunks := q.Chunks()[q.taken:]
	q.taken += len(chunks)
	return chunks
}

// Queued returns how many chunks were enqueued and not taken.
func (q *Queue[Tx]) Queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.Chunks()) - q.taken
}

// A Hold stops an enqueue within the store's transaction (see Queue.Hold).
type Hold struct {
	entered chan struct{}
	release chan struct{}
	err     error
	once    sync.Once
}

// Entered is closed when the held enqueue has begun to wait.
func (h *Hold) Entered() <-chan struct{} { return h.entered }

// Release lets the held enqueue go on. It may be called more than once.
func (h *Hold) Release() { h.once.Do(func() { close(h.release) }) }
