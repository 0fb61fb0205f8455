package jobs

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// DeliverBatchSize is the most events one delivery job carries.
const DeliverBatchSize = 100

// batchConcurrency bounds the deliveries one job makes at once; the
// Deliverer's slots (--webhook-max-concurrent) bound all jobs together.
const batchConcurrency = 32

// DeliverBatchArgs is the job that POSTs a batch of events to one
// subscription: the dispatcher enqueues one per subscription for up to
// DeliverBatchSize of the events it dispatches, and a job whose events
// failed enqueues one more with those events, due when the first of them
// may be tried again.
type DeliverBatchArgs struct {
	WebhookID string         `json:"webhook_id"`
	Events    []BatchedEvent `json:"events"`
	// NotBefore, when set, is when the subscription's rate limit has room
	// for the first of the events: the job waits for it before it starts.
	NotBefore time.Time `json:"not_before,omitzero"`
	// Since is when the oldest of the events happened, in Unix
	// milliseconds: the age of the subscription's backlog is read from it
	// (a job of events that failed keeps its parent's).
	Since int64 `json:"since,omitempty"`
}

// BatchedEvent is an event of a delivery job and the attempt the job makes
// to deliver it (from 1).
type BatchedEvent struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
}

// Kind implements river.JobArgs.
func (DeliverBatchArgs) Kind() string { return "deliver_webhook_batch" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DeliverBatchArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueWebhooks} }

// deliveryBatches groups deliveries by subscription, in the order the
// subscriptions first appear, in jobs of at most DeliverBatchSize events
// each, the events in their order.
func deliveryBatches(deliveries []users.Delivery) []river.JobArgs {
	var order []string
	byHook := map[string][]users.Delivery{}
	for _, d := range deliveries {
		if _, ok := byHook[d.WebhookID]; !ok {
			order = append(order, d.WebhookID)
		}
		byHook[d.WebhookID] = append(byHook[d.WebhookID], d)
	}
	var args []river.JobArgs
	for _, id := range order {
		ds := byHook[id]
		for len(ds) > 0 {
			n := min(len(ds), DeliverBatchSize)
			a := DeliverBatchArgs{WebhookID: id, Events: make([]BatchedEvent, n)}
			for i, d := range ds[:n] {
				a.Events[i] = BatchedEvent{ID: d.EventID, Attempt: 1}
				if ms := d.Time.UnixMilli(); i == 0 || ms < a.Since {
					a.Since = ms
				}
			}
			args = append(args, a)
			ds = ds[n:]
		}
	}
	return args
}

type deliverBatchWorker struct {
	river.WorkerDefaults[DeliverBatchArgs]
	w *workers
}

// Work delivers the job's events, up to batchConcurrency at once, then
// records the attempts in one transaction. What happens to an event then is what the
// single-event job did: done on a 2xx, given up on other 4xx or after the
// last attempt, tried again after the backoff (timeouts, 5xx) or the
// receiver's Retry-After (429, 503), and, when the subscription's rate
// limit has no room for it yet, put off without counting an attempt. The
// events that failed go into one new job, due at the latest of their
// waits, and those put off into another, which starts when the limit has
// room for the first of them; both are inserted before this job completes: a process that dies in
// between runs this job again, which delivers its events again (receivers
// deduplicate on webhook-id), and so does an error of the store, which
// fails the whole job: River runs it again after its backoff, and its
// earlier runs count as attempts of each event.
func (w *deliverBatchWorker) Work(ctx context.Context, job *river.Job[DeliverBatchArgs]) error {
	return w.w.deliver(ctx, job.Args, job.Attempt-1)
}

// deliver is the work of a delivery job with args, which has run reruns
// times before and failed as a whole each time.
func (w *workers) deliver(ctx context.Context, args DeliverBatchArgs, reruns int) error {
	log := zerolog.Ctx(ctx)
	svc, d := w.svc, w.deliverer
	if !sleep(ctx, time.Until(args.NotBefore)) {
		return ctx.Err()
	}
	hook, err := svc.GetWebhook(ctx, args.WebhookID)
	switch {
	case errors.Is(err, users.ErrNotFound):
		log.Info().Str("webhook_id", args.WebhookID).Int("events", len(args.Events)).Msg("webhook deleted; deliveries dropped")
		return nil
	case err != nil:
		return err
	case !hook.Enabled:
		log.Info().Str("webhook_id", hook.ID).Int("events", len(args.Events)).Msg("webhook disabled; deliveries dropped")
		return nil
	}
	target := webhooks.Target{ID: hook.ID, URL: hook.URL, Secrets: []string{hook.Secret}}

	var (
		mu       sync.Mutex
		attempts []users.DeliveryAttempt
		// The events that failed wait for the latest of their waits; those
		// the rate limit put off, for the first token.
		failed, limited retryBatch
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batchConcurrency)
	for _, be := range args.Events {
		g.Go(func() error {
			attempt := be.Attempt + reruns
			ev, err := svc.GetEvent(gctx, be.ID)
			switch {
			case errors.Is(err, users.ErrNotFound):
				log.Warn().Str("webhook_id", hook.ID).Str("event_id", be.ID).Msg("event gone (past the retention); delivery dropped")
				return nil
			case err != nil:
				return err
			}
			res := d.Deliver(gctx, target, *ev)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(res.Err, webhooks.ErrRateLimited) {
				limited.add(BatchedEvent{ID: be.ID, Attempt: attempt}, res.RetryAfter, false)
				return nil
			}
			a := users.DeliveryAttempt{
				WebhookID: hook.ID, EventID: ev.ID, EventType: ev.Type, Attempt: attempt,
				Status: res.Status, Latency: res.Latency, Success: res.Err == nil,
			}
			if res.Err != nil {
				a.Error = res.Err.Error()
			}
			attempts = append(attempts, a)
			switch {
			case res.Err == nil:
			case !res.Retry:
				log.Info().Str("webhook_id", hook.ID).Str("event_id", ev.ID).Int("attempt", attempt).Err(res.Err).Msg("webhook delivery given up")
			case attempt >= w.maxAttempts:
				log.Warn().Str("webhook_id", hook.ID).Str("event_id", ev.ID).Int("attempt", attempt).Err(res.Err).Msg("webhook delivery given up after its last attempt")
			case res.RetryAfter > 0:
				failed.add(BatchedEvent{ID: ev.ID, Attempt: attempt + 1}, res.RetryAfter, true)
			default:
				failed.add(BatchedEvent{ID: ev.ID, Attempt: attempt + 1}, w.retry.after(attempt-1), true)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// The attempts, in the order their answers came, in one transaction.
	after, err := svc.RecordDeliveryAttempts(ctx, hook.ID, attempts)
	switch {
	case errors.Is(err, users.ErrNotFound):
		log.Info().Str("webhook_id", hook.ID).Msg("webhook deleted while delivering")
		return nil
	case err != nil:
		return err
	case len(failed.events)+len(limited.events) == 0:
		return nil
	case !after.Enabled:
		log.Info().Str("webhook_id", hook.ID).Int("events", len(failed.events)+len(limited.events)).Msg("webhook disabled; deliveries dropped")
		return nil
	}
	if len(failed.events) > 0 {
		next := DeliverBatchArgs{WebhookID: hook.ID, Events: failed.events, Since: args.Since}
		if err := w.insert(ctx, next, &river.InsertOpts{ScheduledAt: time.Now().Add(failed.wait)}); err != nil {
			return err
		}
	}
	if len(limited.events) > 0 {
		// River makes a job scheduled for later available only at its
		// scheduler's next run, every 5 s, which held a subscription behind
		// its limit to about half of it: the events put off for a short
		// while go into a job available at once that waits for its first
		// token itself.
		next, opts := DeliverBatchArgs{WebhookID: hook.ID, Events: limited.events, Since: args.Since}, &river.InsertOpts{}
		if limited.wait <= limitedWait {
			next.NotBefore = time.Now().Add(limited.wait)
		} else {
			opts.ScheduledAt = time.Now().Add(limited.wait)
		}
		if err := w.insert(ctx, next, opts); err != nil {
			return err
		}
	}
	return nil
}

// limitedWait is the longest a delivery job waits, at its start, for its
// subscription's rate limit (DeliverBatchArgs.NotBefore).
const limitedWait = 5 * time.Second

// retryBatch gathers the events of a delivery job to try again, and when.
type retryBatch struct {
	events []BatchedEvent
	wait   time.Duration
}

// add adds ev, which may be tried again after wait: the batch waits for
// the latest of its events' waits, or, unless latest, the earliest.
func (b *retryBatch) add(ev BatchedEvent, wait time.Duration, latest bool) {
	switch {
	case len(b.events) == 0:
		b.wait = wait
	case latest:
		b.wait = max(b.wait, wait)
	default:
		b.wait = min(b.wait, wait)
	}
	b.events = append(b.events, ev)
}
