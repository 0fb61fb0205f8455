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

// batchConcurrency bounds the deliveries one job makes at once, and
// retryConcurrency those of a job of events tried again or put off; the
// Deliverer's slots (--webhook-max-concurrent) bound all jobs together.
const (
	batchConcurrency = 32
	retryConcurrency = 8
)

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
// records the attempts in one transaction. What happens to an event then
// is what the single-event job did: done on a 2xx, given up on other 4xx
// or after the last attempt, tried again after the backoff (timeouts, 5xx)
// or the receiver's Retry-After (429, 503), and, when the subscription's
// rate limit has no room for it yet, put off without counting an attempt;
// so are events the subscription's circuit holds back (subscriptions).
// The events that failed go into one new job, due at the latest of their
// waits, and those put off into others, due when they may go; all are
// inserted before this job completes: a process that dies in between runs
// this job again, which delivers its events again (receivers deduplicate
// on webhook-id), and so does an error of the store, which fails the whole
// job: River runs it again after its backoff, and its earlier runs count
// as attempts of each event.
func (w *deliverBatchWorker) Work(ctx context.Context, job *river.Job[DeliverBatchArgs]) error {
	return w.w.deliver(ctx, job.Args, job.Attempt-1, job.Priority)
}

// retryPriority is the River priority of the jobs of events that failed or
// that an open circuit put off: the queue takes the jobs of new events
// (priority 1) first, so a subscription catching up after an outage keeps
// receiving its new events while the old ones fill the rest of its rate.
const retryPriority = 2

// deliver is the work of a delivery job with args and River priority
// priority, which has run reruns times before and failed as a whole each
// time.
func (w *workers) deliver(ctx context.Context, args DeliverBatchArgs, reruns, priority int) error {
	log := zerolog.Ctx(ctx)
	svc, d, subs := w.svc, w.deliverer, w.subs
	key := args.WebhookID // the subscription's state in subs
	ok, only := subs.start(key)
	if !ok {
		// The subscription is slow and runs its share of the workers
		// already.
		return river.JobSnooze(busyWait)
	}
	// left is whether the job was one too many of a slow subscription,
	// counted out, and gives its remaining events back.
	var (
		leftMu sync.Mutex
		left   bool
	)
	leaving := func() bool {
		leftMu.Lock()
		defer leftMu.Unlock()
		if !left {
			left = subs.leave(key)
		}
		return left
	}
	defer func() {
		leftMu.Lock()
		defer leftMu.Unlock()
		if !left {
			subs.done(key)
		}
	}()
	if wait := time.Until(args.NotBefore); wait > 0 {
		// One job of a subscription waits for its rate limit in a
		// worker; the others wait in the queue.
		if !only {
			return river.JobSnooze(wait)
		}
		if !sleep(ctx, wait) {
			return ctx.Err()
		}
	}
	hook, err := svc.GetWebhook(ctx, users.AllTenants, args.WebhookID)
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
	// later enqueues events of this job for a later delivery.
	later := func(events []BatchedEvent, notBefore time.Time, opts *river.InsertOpts) error {
		return w.insert(ctx, DeliverBatchArgs{WebhookID: hook.ID, Events: events, NotBefore: notBefore, Since: args.Since}, opts)
	}
	events := args.Events
	adm, until := subs.admit(key, time.Now())
	switch adm {
	case putOff:
		return later(rerun(events, reruns), time.Time{}, &river.InsertOpts{ScheduledAt: until, Priority: retryPriority})
	case probeWaits:
		return river.JobSnooze(time.Until(until))
	}

	var (
		mu       sync.Mutex
		attempts []users.DeliveryAttempt
		// The events that failed wait for the latest of their waits; those
		// the rate limit put off, for the first token; those the open
		// circuit put off, for it to close.
		failed, limited, paused retryBatch
	)
	// pause puts be off without an attempt, for wait.
	pause := func(be BatchedEvent, wait time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		paused.add(be, max(wait, 0), false)
	}
	// one delivers be, as the circuit's probe or not.
	one := func(ctx context.Context, be BatchedEvent, isProbe bool) (err error) {
		attempt := be.Attempt + reruns
		this := BatchedEvent{ID: be.ID, Attempt: attempt}
		t := target
		made := false
		if isProbe {
			defer func() {
				if !made {
					subs.abandon(key)
				}
			}()
		} else {
			if until := subs.open(key, time.Now()); !until.IsZero() {
				pause(this, time.Until(until))
				return nil
			}
			if leaving() {
				// A slow subscription over its share: the rest of the
				// job goes back to the queue.
				pause(this, busyWait)
				return nil
			}
			// A probe goes whatever the circuit says; the other
			// attempts ask it again just before they are sent, since it
			// may open while they wait for a slot or a token.
			t.Admit = func() bool { return subs.open(key, time.Now()).IsZero() }
		}
		ev, err := svc.GetEvent(ctx, be.ID)
		switch {
		case errors.Is(err, users.ErrNotFound):
			log.Warn().Str("webhook_id", hook.ID).Str("event_id", be.ID).Msg("event gone (past the retention); delivery dropped")
			return nil
		case err != nil:
			return err
		}
		res := d.Deliver(ctx, t, *ev)
		if errors.Is(res.Err, webhooks.ErrHeld) {
			pause(this, time.Until(subs.open(key, time.Now())))
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(res.Err, webhooks.ErrRateLimited) {
			limited.add(this, res.RetryAfter, false)
			return nil
		}
		if ctx.Err() == nil {
			// An attempt cut short by the job's end says nothing of
			// the receiver.
			subs.record(key, time.Now(), res.Latency, res.Err != nil && res.Retry, res.RetryAfter, isProbe)
			made = true
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
	}
	if adm == probe {
		// The receiver failed until a moment ago: one event tells
		// whether it is back before the rest go.
		if err := one(ctx, events[0], true); err != nil {
			return err
		}
		events = events[1:]
	}
	g, gctx := errgroup.WithContext(ctx)
	if priority >= retryPriority {
		// A backlog's job waits for fewer slots and tokens at once than
		// a job of new events, which so gets them sooner.
		g.SetLimit(retryConcurrency)
	} else {
		g.SetLimit(batchConcurrency)
	}
	for _, be := range events {
		g.Go(func() error { return one(gctx, be, false) })
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
	case len(failed.events)+len(limited.events)+len(paused.events) == 0:
		return nil
	case !after.Enabled:
		log.Info().Str("webhook_id", hook.ID).Int("events", len(failed.events)+len(limited.events)+len(paused.events)).Msg("webhook disabled; deliveries dropped")
		return nil
	}
	if len(failed.events) > 0 {
		if err := later(failed.events, time.Time{}, &river.InsertOpts{ScheduledAt: time.Now().Add(failed.wait), Priority: retryPriority}); err != nil {
			return err
		}
	}
	if len(paused.events) > 0 {
		if err := later(paused.events, time.Time{}, &river.InsertOpts{ScheduledAt: time.Now().Add(paused.wait), Priority: retryPriority}); err != nil {
			return err
		}
	}
	if len(limited.events) > 0 {
		// River makes a job scheduled for later available only at its
		// scheduler's next run, every 5 s, which held a subscription behind
		// its limit to about half of it: the events put off for a short
		// while go into a job available at once that waits for its first
		// token itself.
		if limited.wait <= limitedWait {
			return later(limited.events, time.Now().Add(limited.wait), &river.InsertOpts{Priority: priority})
		}
		return later(limited.events, time.Time{}, &river.InsertOpts{ScheduledAt: time.Now().Add(limited.wait), Priority: priority})
	}
	return nil
}

// rerun is events as a job that has run reruns times before tries them:
// each at its next attempt.
func rerun(events []BatchedEvent, reruns int) []BatchedEvent {
	if reruns == 0 {
		return events
	}
	out := make([]BatchedEvent, len(events))
	for i, be := range events {
		out[i] = BatchedEvent{ID: be.ID, Attempt: be.Attempt + reruns}
	}
	return out
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
