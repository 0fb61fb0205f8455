package jobs

import (
	"context"
	"encoding/json"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/usersd/usersd/internal/users"
)

// ImportChunkArgs is the job that imports one chunk of a bulk import. Its
// rows travel in the job itself, so the import needs no other table until
// the chunk is done.
type ImportChunkArgs struct {
	Tenant      string      `json:"tenant,omitempty"`
	OperationID string      `json:"operation_id"`
	Chunk       int         `json:"chunk"`
	First       int         `json:"first"`
	Rows        []importRow `json:"rows"`
}

type importRow struct {
	Email       string            `json:"email,omitempty"`
	DisplayName string            `json:"display_name,omitempty"`
	State       string            `json:"state,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Profile     *importProfile    `json:"profile,omitempty"`
	Reject      string            `json:"reject,omitempty"`
}

// importProfile is a row's profile fields; rows without them leave it out,
// and jobs enqueued before profiles existed have none.
type importProfile struct {
	ExternalID    string          `json:"external_id,omitempty"`
	GivenName     string          `json:"given_name,omitempty"`
	FamilyName    string          `json:"family_name,omitempty"`
	PhoneNumber   string          `json:"phone_number,omitempty"`
	EmailVerified bool            `json:"email_verified,omitempty"`
	PhoneVerified bool            `json:"phone_verified,omitempty"`
	Locale        string          `json:"locale,omitempty"`
	TimeZone      string          `json:"time_zone,omitempty"`
	Attributes    json.RawMessage `json:"attributes,omitempty"`
}

// Kind implements river.JobArgs.
func (ImportChunkArgs) Kind() string { return "import_users_chunk" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ImportChunkArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueImport} }

func importArgs(c users.ImportChunk) ImportChunkArgs {
	a := ImportChunkArgs{Tenant: c.Tenant, OperationID: c.OperationID, Chunk: c.Chunk, First: c.First, Rows: make([]importRow, len(c.Rows))}
	for i, r := range c.Rows {
		a.Rows[i] = importRow{Email: r.Email, DisplayName: r.DisplayName, Labels: r.Labels, Reject: r.Reject}
		if p := r.Profile; !p.IsZero() {
			a.Rows[i].Profile = &importProfile{
				ExternalID: p.ExternalID, GivenName: p.GivenName, FamilyName: p.FamilyName,
				PhoneNumber: p.PhoneNumber, EmailVerified: p.EmailVerified, PhoneVerified: p.PhoneVerified,
				Locale: p.Locale, TimeZone: p.TimeZone, Attributes: p.Attributes,
			}
		}
		if r.State != users.StateUnspecified {
			a.Rows[i].State = r.State.String()
		}
	}
	return a
}

func (a ImportChunkArgs) chunk() users.ImportChunk {
	c := users.ImportChunk{Tenant: a.Tenant, OperationID: a.OperationID, Chunk: a.Chunk, First: a.First, Rows: make([]users.ImportRow, len(a.Rows))}
	for i, r := range a.Rows {
		c.Rows[i] = users.ImportRow{Email: r.Email, DisplayName: r.DisplayName, Labels: r.Labels, Reject: r.Reject}
		if p := r.Profile; p != nil {
			c.Rows[i].Profile = users.Profile{
				ExternalID: p.ExternalID, GivenName: p.GivenName, FamilyName: p.FamilyName,
				PhoneNumber: p.PhoneNumber, EmailVerified: p.EmailVerified, PhoneVerified: p.PhoneVerified,
				Locale: p.Locale, TimeZone: p.TimeZone, Attributes: []byte(p.Attributes),
			}
		}
		if r.State != "" {
			st, ok := users.ParseState(r.State)
			if !ok {
				// Not a state this build knows: let validation reject
				// the row rather than import it as ACTIVE.
				st = users.State(-1)
			}
			c.Rows[i].State = st
		}
	}
	return c
}

type importWorker struct {
	river.WorkerDefaults[ImportChunkArgs]
	w *workers
}

// Work imports the chunk. The store records a finished chunk in the same
// transaction as its rows and skips one it has recorded, so running a job
// again (River runs each at least once) imports nothing twice.
func (w *importWorker) Work(ctx context.Context, job *river.Job[ImportChunkArgs]) error {
	return w.w.svc.ImportChunk(ctx, job.Args.chunk())
}

// CheckSchemaArgs is the job of a schema check (users.SchemaCheck): it
// counts the tenant's users whose attributes break Schema, the schema the
// check was started for, which travels in the job, so a later change of the
// tenant's schema does not change what this check checks.
type CheckSchemaArgs struct {
	Tenant      string    `json:"tenant"`
	OperationID string    `json:"operation_id"`
	Schema      string    `json:"schema"`
	CreateTime  time.Time `json:"create_time"`
}

// Kind implements river.JobArgs.
func (CheckSchemaArgs) Kind() string { return "check_attributes_schema" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (CheckSchemaArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueImport} }

func (a CheckSchemaArgs) check() users.SchemaCheck {
	return users.SchemaCheck{Tenant: a.Tenant, OperationID: a.OperationID, Schema: a.Schema, CreateTime: a.CreateTime}
}

type checkSchemaWorker struct {
	river.WorkerDefaults[CheckSchemaArgs]
	w *workers
}

// Work runs the check. The check records its outcome in one transaction,
// and not again once recorded, so running the job again changes nothing.
func (w *checkSchemaWorker) Work(ctx context.Context, job *river.Job[CheckSchemaArgs]) error {
	return w.w.svc.RunSchemaCheck(ctx, job.Args.check())
}

// PurgeArgs is the periodic job that hard-deletes users deleted longer ago
// than the retention.
type PurgeArgs struct{}

// Kind implements river.JobArgs.
func (PurgeArgs) Kind() string { return "purge_deleted_users" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PurgeArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueMaintenance} }

type purgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	w *workers
}

// Work purges. Deleting what is already gone deletes nothing, so it is safe
// to run again.
func (w *purgeWorker) Work(ctx context.Context, job *river.Job[PurgeArgs]) error {
	n, err := w.w.svc.PurgeDeleted(ctx)
	zerolog.Ctx(ctx).Info().Int("purged", n).Msg("purged deleted users")
	return err
}

// PurgeEventsArgs is the periodic job that removes events older than the
// event retention.
type PurgeEventsArgs struct{}

// Kind implements river.JobArgs.
func (PurgeEventsArgs) Kind() string { return "purge_old_events" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PurgeEventsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance}
}

type purgeEventsWorker struct {
	river.WorkerDefaults[PurgeEventsArgs]
	w *workers
}

// Work purges old events; safe to run again.
func (w *purgeEventsWorker) Work(ctx context.Context, job *river.Job[PurgeEventsArgs]) error {
	n, err := w.w.svc.PurgeEvents(ctx)
	zerolog.Ctx(ctx).Info().Int("purged", n).Msg("purged old events")
	return err
}

// DispatchArgs is the periodic job that turns new events into delivery
// jobs. One runs at a time; the store makes concurrent ones take turns
// anyway.
type DispatchArgs struct{}

// Kind implements river.JobArgs.
func (DispatchArgs) Kind() string { return "dispatch_webhooks" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DispatchArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueRelay, UniqueOpts: river.UniqueOpts{ByState: pendingStates}}
}

type dispatchWorker struct {
	river.WorkerDefaults[DispatchArgs]
	w *workers
}

// relayTimeout bounds one run of a relay job (the webhook dispatcher, the
// NATS publisher), or half the lease if that is shorter. They run one at a
// time, so a run stuck on a database that stopped answering would hold up
// every event until the job timeout (half the lease, minutes by default);
// cut short, it runs again on the next tick.
const relayTimeout = 30 * time.Second

// Timeout implements river.Worker.
func (w *dispatchWorker) Timeout(*river.Job[DispatchArgs]) time.Duration { return w.w.relayTimeout }

// Work dispatches. The position advances in the transaction that enqueues
// the deliveries, so running again dispatches nothing twice.
func (w *dispatchWorker) Work(ctx context.Context, job *river.Job[DispatchArgs]) error {
	n, err := w.w.svc.DispatchEvents(ctx)
	w.w.events.relayed.WithLabelValues(sinkWebhooks).Add(float64(n))
	if n > 0 {
		zerolog.Ctx(ctx).Debug().Int("events", n).Msg("events dispatched to webhooks")
	}
	return err
}

// DeliverArgs is the job that POSTs one event to one subscription. The
// dispatcher enqueues DeliverBatchArgs instead since issue 14; jobs of
// this kind that a release before it left in the queue are still worked.
type DeliverArgs struct {
	WebhookID string `json:"webhook_id"`
	EventID   string `json:"event_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "deliver_webhook" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (DeliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueWebhooks} }

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	w *workers
}

// Work delivers the event as a delivery job of one event does.
func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	args := DeliverBatchArgs{WebhookID: job.Args.WebhookID, Events: []BatchedEvent{{ID: job.Args.EventID, Attempt: 1}}}
	return w.w.deliver(ctx, args, job.Attempt-1, job.Priority)
}

// PublishArgs is the periodic job that publishes new events to NATS.
type PublishArgs struct{}

// Kind implements river.JobArgs.
func (PublishArgs) Kind() string { return "publish_events_nats" }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PublishArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueRelay, UniqueOpts: river.UniqueOpts{ByState: pendingStates}}
}

// natsSink is the name of the NATS relay's saved feed position.
const natsSink = "nats"

// publishBudget bounds one publish job, so a long backlog goes out in
// several jobs rather than one that outlives its timeout.
const publishBudget = 10 * time.Second

type publishWorker struct {
	river.WorkerDefaults[PublishArgs]
	w *workers
}

// Timeout implements river.Worker.
func (w *publishWorker) Timeout(*river.Job[PublishArgs]) time.Duration { return w.w.relayTimeout }

// Work publishes the events after the saved position, page by page,
// saving the position after each page: at least once, since a page whose
// position was not saved is published again (the stream drops those
// copies by Nats-Msg-Id within its duplicate window).
func (w *publishWorker) Work(ctx context.Context, job *river.Job[PublishArgs]) error {
	svc, pub := w.w.svc, w.w.publisher
	pos, err := svc.SinkPosition(ctx, natsSink)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(publishBudget)
	for time.Now().Before(deadline) {
		page, err := svc.ListEvents(ctx, users.AllTenants, pos.Cursor(), users.MaxEventPageSize)
		if err != nil || len(page.Events) == 0 {
			return err
		}
		for _, ev := range page.Events {
			if err := pub.Publish(ctx, ev); err != nil {
				return err
			}
		}
		pos = page.Events[len(page.Events)-1].Pos
		if err := svc.SetSinkPosition(ctx, natsSink, pos); err != nil {
			return err
		}
		w.w.events.relayed.WithLabelValues(sinkNATS).Add(float64(len(page.Events)))
	}
	return nil
}

// pendingStates are the states in which a periodic job's earlier run
// stops the next from being inserted.
var pendingStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}
