package jobs

import (
	"context"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// List returns the jobs of a kind in the database, for tests to inspect.
func List[TTx any](ctx context.Context, q *Queue[TTx], kind string) ([]*rivertype.JobRow, error) {
	res, err := q.client.JobList(ctx, river.NewJobListParams().Kinds(kind).First(1000))
	if err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

// ClientID is the River client ID of w, which its jobs' attempted_by
// records.
func ClientID(w *Workers) string { return w.client.ID() }

// LockKey and NewClientID expose how a client ID carries its liveness
// lock's key.
var (
	LockKey     = lockKey
	NewClientID = clientID
)

// DeadAfter is how long a process's lock must stay free before its jobs
// are rescued.
const DeadAfter = deadAfter

// RelayTimeout is how long one run of a relay job may take on q's workers.
func RelayTimeout[TTx any](q *Queue[TTx]) time.Duration {
	return (&dispatchWorker{w: &workers{relayTimeout: q.cfg.relayTimeout()}}).Timeout(nil)
}

// LostAfter is how long a job running under a live process's ID, which the
// process does not run, waits before it is put back in the queue.
const LostAfter = lostAfter

// InsertLegacyDeliveryTx inserts a delivery job of the single-event kind
// that releases before batches enqueued, inside tx.
func InsertLegacyDeliveryTx[TTx any](ctx context.Context, q *Queue[TTx], tx TTx, webhookID, eventID string) error {
	_, err := q.client.InsertTx(ctx, tx, DeliverArgs{WebhookID: webhookID, EventID: eventID}, nil)
	return err
}
