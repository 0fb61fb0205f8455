package sqlite

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/usersd/usersd/internal/users"
)

// tracerName is the instrumentation scope of the store's spans.
const tracerName = "github.com/usersd/usersd/internal/sqlite"

// TracedStore is a users.Store that wraps every call of a Store in a span.
// SQLite runs in-process, so there is no driver hook worth tracing; one span
// per store call (one transaction) stands where otelpgx puts one span per
// statement on Postgres.
//
// The spans are client spans named "sqlite.GetUser" and so on, with
// db.system.name "sqlite", db.operation.name the method ("GetUser") and,
// for reads, db.response.returned_rows. They carry no ids, emails or other
// arguments.
//
// Like otelpgx, TracedStore makes spans only within a trace: a call whose
// context has no recording span gets none, so calls outside any request
// make no root spans.
//
// An error of a domain kind (users.ErrNotFound, users.ErrInvalid,
// users.ErrEmailTaken, users.ErrIDTaken, users.ErrWrongState,
// users.ErrEtagMismatch) is an outcome the API reports to its client, not a
// failure of the store: the span keeps status Unset and gets a
// "users.outcome" event with the kind in error.type. Any other error, cancellations included, is recorded
// on the span (an "exception" event) and sets status Error.
type TracedStore struct {
	s      *Store
	tracer trace.Tracer
}

var _ users.Store = (*TracedStore)(nil)

// NewTracedStore returns s with spans from tp. A nil tp makes no spans.
func NewTracedStore(s *Store, tp trace.TracerProvider) *TracedStore {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &TracedStore{s: s, tracer: tp.Tracer(tracerName)}
}

// start starts the span of operation op, or returns a nil span when ctx is
// not within a recording span.
func (t *TracedStore) start(ctx context.Context, op string) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, nil
	}
	return t.tracer.Start(ctx, "sqlite."+op,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.DBSystemNameSQLite, semconv.DBOperationName(op)))
}

// end ends span, recording err and, if rows >= 0, the rows returned.
func end(span trace.Span, rows int, err error) {
	if span == nil {
		return
	}
	defer span.End()
	if err != nil {
		if kind := domainKind(err); kind != "" {
			span.AddEvent("users.outcome", trace.WithAttributes(semconv.ErrorTypeKey.String(kind)))
			return
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return
	}
	if rows >= 0 {
		span.SetAttributes(semconv.DBResponseReturnedRows(rows))
	}
}

// domainKinds are the users error kinds, by the name spans give them. The
// names predate the kinds' names and are kept as they were, since traces
// are searched by them: both taken kinds are "already_exists", and
// ErrWrongState is "failed_precondition".
var domainKinds = []struct {
	name string
	err  error
}{
	{"not_found", users.ErrNotFound},
	{"invalid_argument", users.ErrInvalid},
	{"already_exists", users.ErrEmailTaken},
	{"already_exists", users.ErrIDTaken},
	{"failed_precondition", users.ErrWrongState},
	{"etag_mismatch", users.ErrEtagMismatch},
}

// domainKind returns the name of err's users error kind, or "".
func domainKind(err error) string {
	for _, k := range domainKinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// CreateUser calls Store.CreateUser in a span.
func (t *TracedStore) CreateUser(ctx context.Context, u *users.User, key *users.IdempotencyKey) (*users.User, error) {
	ctx, span := t.start(ctx, "CreateUser")
	if span != nil {
		span.SetAttributes(attribute.Bool("users.idempotent", key != nil))
	}
	got, err := t.s.CreateUser(ctx, u, key)
	end(span, -1, err)
	return got, err
}

// GetUser calls Store.GetUser in a span.
func (t *TracedStore) GetUser(ctx context.Context, id string) (*users.User, error) {
	ctx, span := t.start(ctx, "GetUser")
	u, err := t.s.GetUser(ctx, id)
	end(span, 1, err)
	return u, err
}

// BatchGetUsers calls Store.BatchGetUsers in a span.
func (t *TracedStore) BatchGetUsers(ctx context.Context, ids []string) ([]*users.User, error) {
	ctx, span := t.start(ctx, "BatchGetUsers")
	us, err := t.s.BatchGetUsers(ctx, ids)
	end(span, len(us), err)
	return us, err
}

// ListUsers calls Store.ListUsers in a span.
func (t *TracedStore) ListUsers(ctx context.Context, q users.ListQuery) ([]*users.User, error) {
	ctx, span := t.start(ctx, "ListUsers")
	us, err := t.s.ListUsers(ctx, q)
	end(span, len(us), err)
	return us, err
}

// UpdateUser calls Store.UpdateUser in a span; fn runs within it.
func (t *TracedStore) UpdateUser(ctx context.Context, id string, fn func(*users.User) error) (*users.User, error) {
	ctx, span := t.start(ctx, "UpdateUser")
	u, err := t.s.UpdateUser(ctx, id, fn)
	end(span, -1, err)
	return u, err
}

// CreateImport calls Store.CreateImport in a span; the jobs are enqueued
// within it.
func (t *TracedStore) CreateImport(ctx context.Context, op *users.Operation, key users.IdempotencyKey, chunks []users.ImportChunk) (*users.Operation, error) {
	ctx, span := t.start(ctx, "CreateImport")
	if span != nil {
		span.SetAttributes(attribute.Int("users.import.chunks", len(chunks)))
	}
	got, err := t.s.CreateImport(ctx, op, key, chunks)
	end(span, -1, err)
	return got, err
}

// GetOperation calls Store.GetOperation in a span.
func (t *TracedStore) GetOperation(ctx context.Context, id string) (*users.Operation, error) {
	ctx, span := t.start(ctx, "GetOperation")
	op, err := t.s.GetOperation(ctx, id)
	end(span, 1, err)
	return op, err
}

// ImportChunk calls Store.ImportChunk in a span.
func (t *TracedStore) ImportChunk(ctx context.Context, opID string, chunk int, valid []users.ImportedUser, failed []users.RowFailure) error {
	ctx, span := t.start(ctx, "ImportChunk")
	if span != nil {
		span.SetAttributes(attribute.Int("users.import.rows", len(valid)+len(failed)))
	}
	err := t.s.ImportChunk(ctx, opID, chunk, valid, failed)
	end(span, -1, err)
	return err
}

// PurgeDeleted calls Store.PurgeDeleted in a span, which records how many
// users it removed.
func (t *TracedStore) PurgeDeleted(ctx context.Context, before time.Time, limit int) (int, error) {
	ctx, span := t.start(ctx, "PurgeDeleted")
	n, err := t.s.PurgeDeleted(ctx, before, limit)
	if span != nil && err == nil {
		span.SetAttributes(attribute.Int("users.purged", n))
	}
	end(span, -1, err)
	return n, err
}

// ListEvents calls Store.ListEvents in a span.
func (t *TracedStore) ListEvents(ctx context.Context, after users.EventPos, limit int) ([]users.Event, error) {
	ctx, span := t.start(ctx, "ListEvents")
	evs, err := t.s.ListEvents(ctx, after, limit)
	end(span, len(evs), err)
	return evs, err
}

// PurgeEvents calls Store.PurgeEvents in a span, which records how many
// events it removed.
func (t *TracedStore) PurgeEvents(ctx context.Context, before time.Time, limit int) (int, error) {
	ctx, span := t.start(ctx, "PurgeEvents")
	n, err := t.s.PurgeEvents(ctx, before, limit)
	if span != nil && err == nil {
		span.SetAttributes(attribute.Int("users.events_purged", n))
	}
	end(span, -1, err)
	return n, err
}

// GetEvent calls Store.GetEvent in a span.
func (t *TracedStore) GetEvent(ctx context.Context, id string) (*users.Event, error) {
	ctx, span := t.start(ctx, "GetEvent")
	ev, err := t.s.GetEvent(ctx, id)
	end(span, 1, err)
	return ev, err
}

// CreateWebhook calls Store.CreateWebhook in a span.
func (t *TracedStore) CreateWebhook(ctx context.Context, w *users.Webhook) (*users.Webhook, error) {
	ctx, span := t.start(ctx, "CreateWebhook")
	got, err := t.s.CreateWebhook(ctx, w)
	end(span, -1, err)
	return got, err
}

// GetWebhook calls Store.GetWebhook in a span.
func (t *TracedStore) GetWebhook(ctx context.Context, id string) (*users.Webhook, error) {
	ctx, span := t.start(ctx, "GetWebhook")
	w, err := t.s.GetWebhook(ctx, id)
	end(span, 1, err)
	return w, err
}

// ListWebhooks calls Store.ListWebhooks in a span.
func (t *TracedStore) ListWebhooks(ctx context.Context) ([]*users.Webhook, error) {
	ctx, span := t.start(ctx, "ListWebhooks")
	ws, err := t.s.ListWebhooks(ctx)
	end(span, len(ws), err)
	return ws, err
}

// UpdateWebhook calls Store.UpdateWebhook in a span; fn runs within it.
func (t *TracedStore) UpdateWebhook(ctx context.Context, id string, fn func(*users.Webhook) error) (*users.Webhook, error) {
	ctx, span := t.start(ctx, "UpdateWebhook")
	w, err := t.s.UpdateWebhook(ctx, id, fn)
	end(span, -1, err)
	return w, err
}

// DeleteWebhook calls Store.DeleteWebhook in a span.
func (t *TracedStore) DeleteWebhook(ctx context.Context, id string) error {
	ctx, span := t.start(ctx, "DeleteWebhook")
	err := t.s.DeleteWebhook(ctx, id)
	end(span, -1, err)
	return err
}

// RecordDeliveryAttempt calls Store.RecordDeliveryAttempt in a span, which
// records the attempt's outcome.
func (t *TracedStore) RecordDeliveryAttempt(ctx context.Context, a users.DeliveryAttempt, disableAfter int) (*users.Webhook, error) {
	ctx, span := t.start(ctx, "RecordDeliveryAttempt")
	if span != nil {
		span.SetAttributes(attribute.Bool("users.webhook.success", a.Success))
	}
	w, err := t.s.RecordDeliveryAttempt(ctx, a, disableAfter)
	end(span, -1, err)
	return w, err
}

// ListDeliveryAttempts calls Store.ListDeliveryAttempts in a span.
func (t *TracedStore) ListDeliveryAttempts(ctx context.Context, webhookID string, limit int) ([]users.DeliveryAttempt, error) {
	ctx, span := t.start(ctx, "ListDeliveryAttempts")
	as, err := t.s.ListDeliveryAttempts(ctx, webhookID, limit)
	end(span, len(as), err)
	return as, err
}

// DispatchEvents calls Store.DispatchEvents in a span, which records how
// many events it read; the jobs are enqueued within it.
func (t *TracedStore) DispatchEvents(ctx context.Context, limit int) (int, error) {
	ctx, span := t.start(ctx, "DispatchEvents")
	n, err := t.s.DispatchEvents(ctx, limit)
	if span != nil && err == nil {
		span.SetAttributes(attribute.Int("users.events_dispatched", n))
	}
	end(span, -1, err)
	return n, err
}

// SinkPosition calls Store.SinkPosition in a span.
func (t *TracedStore) SinkPosition(ctx context.Context, name string) (users.EventPos, error) {
	ctx, span := t.start(ctx, "SinkPosition")
	pos, err := t.s.SinkPosition(ctx, name)
	end(span, 1, err)
	return pos, err
}

// SetSinkPosition calls Store.SetSinkPosition in a span.
func (t *TracedStore) SetSinkPosition(ctx context.Context, name string, pos users.EventPos) error {
	ctx, span := t.start(ctx, "SetSinkPosition")
	err := t.s.SetSinkPosition(ctx, name, pos)
	end(span, -1, err)
	return err
}

// PurgeDeliveryAttempts calls Store.PurgeDeliveryAttempts in a span.
func (t *TracedStore) PurgeDeliveryAttempts(ctx context.Context, before time.Time) (int, error) {
	ctx, span := t.start(ctx, "PurgeDeliveryAttempts")
	n, err := t.s.PurgeDeliveryAttempts(ctx, before)
	end(span, n, err)
	return n, err
}
