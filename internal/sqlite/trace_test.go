package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// newTracer returns a tracer provider that records every span in memory.
func newTracer(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, exp
}

func TestTracedStoreConformance(t *testing.T) {
	userstest.Run(t, func(t *testing.T) (users.Store, *userstest.Jobs) {
		tp, _ := newTracer(t)
		s, jobs := newStoreWithJobs(t)
		return sqlite.NewTracedStore(s, tp), jobs
	})
}

// spanSummary is what TestTracedStoreSpans checks of a span.
type spanSummary struct {
	Name     string
	Kind     trace.SpanKind
	Parent   string // the parent's name
	Attrs    map[string]string
	Status   codes.Code
	Events   []string // name, and error.type when set
	Recorded bool     // has an exception event
}

func summarize(spans tracetest.SpanStubs) []spanSummary {
	names := map[trace.SpanID]string{}
	for _, s := range spans {
		names[s.SpanContext.SpanID()] = s.Name
	}
	var out []spanSummary
	for _, s := range spans {
		sum := spanSummary{Name: s.Name, Kind: s.SpanKind, Parent: names[s.Parent.SpanID()], Attrs: map[string]string{}, Status: s.Status.Code}
		for _, a := range s.Attributes {
			sum.Attrs[string(a.Key)] = a.Value.String()
		}
		for _, e := range s.Events {
			if e.Name == "exception" {
				sum.Recorded = true
				continue
			}
			ev := e.Name
			for _, a := range e.Attributes {
				if a.Key == "error.type" {
					ev += " " + a.Value.AsString()
				}
			}
			sum.Events = append(sum.Events, ev)
		}
		out = append(out, sum)
	}
	return out
}

// TestTracedStoreSpans checks the span of each store call: names,
// attributes, parents, and how errors are recorded.
func TestTracedStoreSpans(t *testing.T) {
	tp, exp := newTracer(t)
	s := sqlite.NewTracedStore(newStore(t), tp)

	// Outside a trace, no spans.
	u, err := s.CreateUser(context.Background(), userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("CreateUser outside a trace made %d spans, want none", n)
	}

	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	key := &users.IdempotencyKey{RequestID: "r1", Fingerprint: []byte{1}}
	if _, err := s.CreateUser(ctx, userstest.NewUser(2), key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, "0190a5b4-0000-7000-8000-000000000000"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("GetUser(unknown) err = %v, want ErrNotFound", err)
	}
	if got, err := s.BatchGetUsers(ctx, []string{u.ID, "x"}); err != nil || len(got) != 1 {
		t.Fatalf("BatchGetUsers = %v, %v", got, err)
	}
	if got, err := s.ListUsers(ctx, users.ListQuery{Limit: 10}); err != nil || len(got) != 2 {
		t.Fatalf("ListUsers = %v, %v", got, err)
	}
	_, err = s.UpdateUser(ctx, u.ID, func(*users.User) error { return fmt.Errorf("etag: %w", users.ErrEtagMismatch) })
	if !errors.Is(err, users.ErrEtagMismatch) {
		t.Fatalf("UpdateUser err = %v, want ErrEtagMismatch", err)
	}
	_, err = s.UpdateUser(ctx, u.ID, func(*users.User) error { return errors.New("disk on fire") })
	if err == nil {
		t.Fatal("UpdateUser with a failing fn err = nil")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.GetUser(cctx, u.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("GetUser(cancelled) err = %v, want context.Canceled", err)
	}
	root.End()

	db := func(op string, more ...string) map[string]string {
		m := map[string]string{"db.system.name": "sqlite", "db.operation.name": op}
		for i := 0; i < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	client := trace.SpanKindClient
	want := []spanSummary{
		{Name: "sqlite.CreateUser", Kind: client, Parent: "request", Attrs: db("CreateUser", "users.idempotent", "true")},
		{Name: "sqlite.GetUser", Kind: client, Parent: "request", Attrs: db("GetUser", "db.response.returned_rows", "1")},
		{Name: "sqlite.GetUser", Kind: client, Parent: "request", Attrs: db("GetUser"), Events: []string{"users.outcome not_found"}},
		{Name: "sqlite.BatchGetUsers", Kind: client, Parent: "request", Attrs: db("BatchGetUsers", "db.response.returned_rows", "1")},
		{Name: "sqlite.ListUsers", Kind: client, Parent: "request", Attrs: db("ListUsers", "db.response.returned_rows", "2")},
		{Name: "sqlite.UpdateUser", Kind: client, Parent: "request", Attrs: db("UpdateUser"), Events: []string{"users.outcome etag_mismatch"}},
		{Name: "sqlite.UpdateUser", Kind: client, Parent: "request", Attrs: db("UpdateUser"), Status: codes.Error, Recorded: true},
		{Name: "sqlite.GetUser", Kind: client, Parent: "request", Attrs: db("GetUser"), Status: codes.Error, Recorded: true},
		{Name: "request", Kind: trace.SpanKindInternal, Attrs: map[string]string{}},
	}
	spans := exp.GetSpans()
	if diff := cmp.Diff(want, summarize(spans)); diff != "" {
		t.Errorf("spans mismatch (-want +got):\n%s", diff)
	}
	// No argument leaks into a span: not an id, not an email.
	for _, s := range spans {
		for _, a := range s.Attributes {
			v := a.Value.String()
			for _, secret := range []string{u.ID, u.Email, strings.ToLower(u.Email)} {
				if strings.Contains(v, secret) {
					t.Errorf("span %s: attribute %s = %q quotes %q", s.Name, a.Key, v, secret)
				}
			}
		}
	}
}

// TestTracedStoreNilProvider checks that a nil provider makes no spans and
// still stores.
func TestTracedStoreNilProvider(t *testing.T) {
	tp, exp := newTracer(t)
	s := sqlite.NewTracedStore(newStore(t), nil)
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := s.CreateUser(ctx, userstest.NewUser(1), nil); err != nil {
		t.Fatal(err)
	}
	root.End()
	if got := exp.GetSpans(); len(got) != 1 {
		t.Errorf("got %d spans, want only the test's own", len(got))
	}
}

// TestTracedStoreImportSpans checks the spans of the import and purge
// calls.
func TestTracedStoreImportSpans(t *testing.T) {
	tp, exp := newTracer(t)
	store, _ := newStoreWithJobs(t)
	s := sqlite.NewTracedStore(store, tp)

	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	op, chunks := userstest.NewImport("req", 2, 1)
	key := users.IdempotencyKey{RequestID: "req", Fingerprint: []byte{1}}
	if _, err := s.CreateImport(ctx, op, key, chunks); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: "req", Fingerprint: []byte{2}}, chunks); !errors.Is(err, users.ErrInvalid) {
		t.Fatalf("CreateImport(reused request id) err = %v, want ErrInvalid", err)
	}
	if err := s.ImportChunk(ctx, op.ID, 0, userstest.ImportedUsers(chunks[0])[1:], []users.RowFailure{{Index: 0, Reason: "r"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOperation(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetOperation(ctx, "0190a5b4-0000-7000-8000-000000000000"); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("GetOperation(unknown) err = %v, want ErrNotFound", err)
	}
	if _, err := s.PurgeDeleted(ctx, time.Now(), 10); err != nil {
		t.Fatal(err)
	}
	root.End()

	db := func(op string, more ...string) map[string]string {
		m := map[string]string{"db.system.name": "sqlite", "db.operation.name": op}
		for i := 0; i < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	client := trace.SpanKindClient
	want := []spanSummary{
		{Name: "sqlite.CreateImport", Kind: client, Parent: "request", Attrs: db("CreateImport", "users.import.chunks", "2")},
		{Name: "sqlite.CreateImport", Kind: client, Parent: "request", Attrs: db("CreateImport", "users.import.chunks", "2"), Events: []string{"users.outcome invalid_argument"}},
		{Name: "sqlite.ImportChunk", Kind: client, Parent: "request", Attrs: db("ImportChunk", "users.import.rows", "2")},
		{Name: "sqlite.GetOperation", Kind: client, Parent: "request", Attrs: db("GetOperation", "db.response.returned_rows", "1")},
		{Name: "sqlite.GetOperation", Kind: client, Parent: "request", Attrs: db("GetOperation"), Events: []string{"users.outcome not_found"}},
		{Name: "sqlite.PurgeDeleted", Kind: client, Parent: "request", Attrs: db("PurgeDeleted", "users.purged", "0")},
		{Name: "request", Kind: trace.SpanKindInternal, Attrs: map[string]string{}},
	}
	if diff := cmp.Diff(want, summarize(exp.GetSpans())); diff != "" {
		t.Errorf("spans mismatch (-want +got):\n%s", diff)
	}
}
