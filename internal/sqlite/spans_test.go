package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	msqlite "modernc.org/sqlite"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// newTracer returns a tracer provider with the default sampler that
// records every span in memory.
func newTracer(t testing.TB) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, rec
}

// openTracedDB opens a migrated database in a fresh directory, with opts,
// closed when the test ends.
func openTracedDB(t testing.TB, opts ...sqlite.OpenOption) *sqlite.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sqlite.Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatalf("Open(%s) err = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close err = %v", err)
		}
	})
	if err := sqlite.Migrate(context.Background(), db, nil); err != nil {
		t.Fatalf("Migrate err = %v", err)
	}
	return db
}

// TestTracedConformance runs the conformance suite on a store whose pools
// are traced, within no trace and within a remote one: the instrumented
// driver changes nothing the store does.
func TestTracedConformance(t *testing.T) {
	userstest.Run(t, func(t *testing.T) (users.Store, *userstest.Jobs) {
		tp, _ := newTracer(t)
		q := newQueue()
		return sqlite.NewStore(openTracedDB(t, sqlite.WithTracerProvider(tp)), sqlite.WithJobs(q)), &q.Jobs
	})
}

// spanSummary is what the span tests check of a span.
type spanSummary struct {
	Name     string
	Kind     trace.SpanKind
	Parent   string // the parent's name
	Attrs    map[string]string
	Status   codes.Code
	Recorded bool // has an exception event
}

// summarize summarizes spans, leaving out db.query.text, which
// checkQueryText checks.
func summarize(spans []sdktrace.ReadOnlySpan) []spanSummary {
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var out []spanSummary
	for _, s := range spans {
		sum := spanSummary{Name: s.Name(), Kind: s.SpanKind(), Parent: names[s.Parent().SpanID()], Attrs: map[string]string{}, Status: s.Status().Code}
		for _, a := range s.Attributes() {
			if a.Key != "db.query.text" {
				sum.Attrs[string(a.Key)] = a.Value.String()
			}
		}
		for _, e := range s.Events() {
			sum.Recorded = sum.Recorded || e.Name == "exception"
		}
		out = append(out, sum)
	}
	return out
}

// checkQueryText checks that every statement's span has the statement's
// text, whose first word is the span's name, and that the transaction
// steps' have none; and that no attribute quotes any of secrets.
func checkQueryText(t *testing.T, spans []sdktrace.ReadOnlySpan, secrets ...string) {
	t.Helper()
	for _, s := range spans {
		var text string
		for _, a := range s.Attributes() {
			if a.Key == "db.query.text" {
				text = a.Value.AsString()
			}
			for _, secret := range secrets {
				if strings.Contains(a.Value.String(), secret) {
					t.Errorf("span %s: attribute %s = %q quotes %q", s.Name(), a.Key, a.Value.String(), secret)
				}
			}
		}
		switch s.Name() {
		case "request", "BEGIN", "COMMIT", "ROLLBACK", "connect":
			if text != "" {
				t.Errorf("span %s: db.query.text = %q, want none", s.Name(), text)
			}
		default:
			if first, _, _ := strings.Cut(text, " "); first != s.Name() {
				t.Errorf("span %s: db.query.text = %q, want a %s statement", s.Name(), text, s.Name())
			}
		}
	}
}

// sqlSpan is the summary of a span of the statement or transaction step op
// under the test's "request" span.
func sqlSpan(op string) spanSummary {
	return spanSummary{Name: op, Kind: trace.SpanKindClient, Parent: "request",
		Attrs: map[string]string{"db.system.name": "sqlite", "db.operation.name": op}}
}

// failed is s with an error recorded.
func failed(s spanSummary) spanSummary {
	s.Status, s.Recorded = codes.Error, true
	return s
}

// TestSpans checks the spans of the statements of store calls: one client
// span per statement and per transaction step, children of the request's
// span, named and described as otelpgx's on Postgres, with statement
// errors recorded. Domain outcomes that are no statement's error (a user
// not found, an etag mismatch) leave the spans unset.
func TestSpans(t *testing.T) {
	tp, rec := newTracer(t)
	s := sqlite.NewStore(openTracedDB(t, sqlite.WithTracerProvider(tp)))
	ctx := context.Background()

	// Outside a trace, no spans. This also prepares the statements, so
	// the calls below make no preparation spans.
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, users.DefaultTenant, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(*users.User) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("store calls outside a trace made %d spans, want none", n)
	}

	rctx, root := tp.Tracer("test").Start(ctx, "request")
	if _, err := s.GetUser(rctx, users.DefaultTenant, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(rctx, users.DefaultTenant, "0190a5b4-0000-7000-8000-000000000000"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("GetUser(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := s.CreateUser(rctx, userstest.NewUser(2), nil); err != nil {
		t.Fatal(err)
	}
	// The same email: the INSERT fails on the unique index.
	if _, err := s.CreateUser(rctx, userstest.NewUser(1), nil); !errors.Is(err, users.ErrEmailTaken) {
		t.Fatalf("CreateUser(taken email) err = %v, want ErrEmailTaken", err)
	}
	_, err = s.UpdateUser(rctx, users.DefaultTenant, u.ID, func(*users.User) error { return fmt.Errorf("etag: %w", users.ErrEtagMismatch) })
	if !errors.Is(err, users.ErrEtagMismatch) {
		t.Fatalf("UpdateUser err = %v, want ErrEtagMismatch", err)
	}
	root.End()

	want := []spanSummary{
		// GetUser, found and not found.
		sqlSpan("SELECT"),
		sqlSpan("SELECT"),
		// CreateUser: the user (into a live tenant without a limit, in
		// one statement) and its event.
		sqlSpan("BEGIN"), sqlSpan("INSERT"), sqlSpan("INSERT"), sqlSpan("COMMIT"),
		// CreateUser, email taken.
		sqlSpan("BEGIN"), failed(sqlSpan("INSERT")), sqlSpan("ROLLBACK"),
		// UpdateUser, etag mismatch: read, then roll back.
		sqlSpan("BEGIN"), sqlSpan("SELECT"), sqlSpan("ROLLBACK"),
		{Name: "request", Kind: trace.SpanKindInternal, Attrs: map[string]string{}},
	}
	spans := rec.Ended()
	if diff := cmp.Diff(want, summarize(spans)); diff != "" {
		t.Errorf("spans mismatch (-want +got):\n%s", diff)
	}
	checkQueryText(t, spans, u.ID, u.Email, strings.ToLower(u.Email))
}

// TestSpansImport checks the spans of an import and a purge: the job
// queue's statements, run in the store's transaction, are spans of the
// request too.
func TestSpansImport(t *testing.T) {
	tp, rec := newTracer(t)
	q := newQueue()
	s := sqlite.NewStore(openTracedDB(t, sqlite.WithTracerProvider(tp)), sqlite.WithJobs(q))

	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	op, chunks := userstest.NewImport("req", 2, 1)
	if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: "req", Fingerprint: []byte{1}}, chunks); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: "req", Fingerprint: []byte{2}}, chunks); !errors.Is(err, users.ErrInvalid) {
		t.Fatalf("CreateImport(reused request id) err = %v, want ErrInvalid", err)
	}
	if err := s.ImportChunk(ctx, op.ID, 0, userstest.ImportedUsers(chunks[0])[1:], []users.RowFailure{{Index: 0, Reason: "r"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOperation(ctx, users.DefaultTenant, op.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PurgeDeleted(ctx, time.Now(), 10); err != nil {
		t.Fatal(err)
	}
	root.End()

	spans := rec.Ended()
	checkQueryText(t, spans)
	got := map[string]int{}
	for _, sum := range summarize(spans) {
		if sum.Name == "request" {
			continue
		}
		got[sum.Name]++
		if want := sqlSpan(sum.Name); !cmp.Equal(sum, want) {
			t.Errorf("span %+v, want %+v", sum, want)
		}
	}
	// Each call but GetOperation, a read, is one transaction.
	if got["BEGIN"] != 4 || got["COMMIT"] != 3 || got["ROLLBACK"] != 1 || got["INSERT"] == 0 || got["SELECT"] == 0 || got["DELETE"] == 0 {
		t.Errorf("spans by name = %v, want four transactions, one rolled back, with INSERTs, SELECTs and a DELETE", got)
	}
}

// TestSpansEvents checks that an event carries the span current when the
// store was called (the request's, as on Postgres) and that the statement
// storing it is a span of that request.
func TestSpansEvents(t *testing.T) {
	tp, rec := newTracer(t)
	s := sqlite.NewStore(openTracedDB(t, sqlite.WithTracerProvider(tp)))
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := s.CreateUser(ctx, userstest.NewUser(1), nil); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(ctx, users.DefaultTenant, users.EventPos{}, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("ListEvents = %d events, %v; want 1", len(evs), err)
	}
	if _, err := s.PurgeEvents(ctx, time.Now().Add(time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	root.End()

	sc := root.SpanContext()
	if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"; evs[0].TraceParent != want {
		t.Errorf("event TraceParent = %q, want the request span's %q", evs[0].TraceParent, want)
	}
	spans := rec.Ended()
	checkQueryText(t, spans)
	var stored bool
	for _, sp := range spans {
		for _, a := range sp.Attributes() {
			if a.Key == "db.query.text" && strings.HasPrefix(a.Value.AsString(), "INSERT INTO events") {
				stored = sp.Parent().SpanID() == sc.SpanID()
			}
		}
	}
	if !stored {
		t.Errorf("no INSERT INTO events span under the request; spans: %v", summarize(spans))
	}
}

// TestNoTracerProvider checks that a DB opened without a tracer provider,
// or with a nil one, makes no spans within a trace, and that its pools are
// the driver's own, with nothing in between; and that with one, both pools
// are instrumented.
func TestNoTracerProvider(t *testing.T) {
	tp, _ := newTracer(t)
	traced := openTracedDB(t, sqlite.WithTracerProvider(tp))
	for pool, db := range map[string]*sql.DB{"writer": sqlite.Writer(traced), "reader": sqlite.Reader(traced)} {
		if _, ok := db.Driver().(*msqlite.Driver); ok {
			t.Errorf("with a tracer provider, the %s pool's driver is %T, want an instrumented one", pool, db.Driver())
		}
	}
	for name, opts := range map[string][]sqlite.OpenOption{
		"none": nil,
		"nil":  {sqlite.WithTracerProvider(nil)},
	} {
		t.Run(name, func(t *testing.T) {
			tp, rec := newTracer(t)
			db := openTracedDB(t, opts...)
			for pool, db := range map[string]*sql.DB{"writer": sqlite.Writer(db), "reader": sqlite.Reader(db)} {
				if _, ok := db.Driver().(*msqlite.Driver); !ok {
					t.Errorf("the %s pool's driver is %T, want *sqlite.Driver", pool, db.Driver())
				}
			}
			s := sqlite.NewStore(db)
			ctx, root := tp.Tracer("test").Start(context.Background(), "request")
			if _, err := s.CreateUser(ctx, userstest.NewUser(1), nil); err != nil {
				t.Fatal(err)
			}
			root.End()
			if got := rec.Ended(); len(got) != 1 {
				t.Errorf("got %d spans, want only the test's own: %v", len(got), summarize(got))
			}
		})
	}
}

// meterWatch is a meter provider that counts the meters asked of it.
type meterWatch struct {
	metric.MeterProvider
	meters *[]string
}

func (w meterWatch) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	*w.meters = append(*w.meters, name)
	return w.MeterProvider.Meter(name, opts...)
}

// TestSpansNoGlobalMetrics checks that tracing asks the global meter
// provider for nothing: otelsql would record its call durations there.
func TestSpansNoGlobalMetrics(t *testing.T) {
	var meters []string
	otel.SetMeterProvider(meterWatch{metricnoop.NewMeterProvider(), &meters})
	t.Cleanup(func() { otel.SetMeterProvider(metricnoop.NewMeterProvider()) })
	tp, _ := newTracer(t)
	s := sqlite.NewStore(openTracedDB(t, sqlite.WithTracerProvider(tp)))
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := s.CreateUser(ctx, userstest.NewUser(1), nil); err != nil {
		t.Fatal(err)
	}
	root.End()
	if len(meters) != 0 {
		t.Errorf("the global meter provider was asked for meters %q, want none", meters)
	}
}
