package postgres_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users/userstest"
)

// TestNewPoolTracing checks that statements within a trace get spans with
// their text but not their parameters, and that statements outside any
// trace get none.
func TestNewPoolTracing(t *testing.T) {
	dsn := pgtest.NewMigratedDatabase(t)
	ctx := context.Background()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { tp.Shutdown(ctx) })
	pool, err := postgres.NewPool(ctx, dsn, tp)
	if err != nil {
		t.Fatalf("NewPool err = %v", err)
	}
	t.Cleanup(pool.Close)
	s := postgres.NewStore(pool)

	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := exp.GetSpans(); len(got) != 0 {
		t.Fatalf("a statement outside any trace made spans %v", got)
	}

	rctx, root := tp.Tracer("test").Start(ctx, "request")
	if _, err := s.GetUser(rctx, u.ID); err != nil {
		t.Fatal(err)
	}
	root.End()

	var query tracetest.SpanStub
	for _, sp := range exp.GetSpans() {
		if sp.SpanContext.TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %s in trace %s, want the request's", sp.Name, sp.SpanContext.TraceID())
		}
		for _, a := range sp.Attributes {
			if a.Key == "pgx.query.parameters" {
				t.Errorf("span %s records the parameters: %v", sp.Name, a.Value.String())
			}
			for _, secret := range []string{u.ID, u.Email, strings.ToLower(u.Email)} {
				if strings.Contains(a.Value.String(), secret) {
					t.Errorf("span %s: attribute %s = %q quotes %q", sp.Name, a.Key, a.Value.String(), secret)
				}
			}
			if a.Key == "db.query.text" {
				query = sp
			}
		}
	}
	if query.Name != "SELECT" || query.SpanKind != trace.SpanKindClient || query.Parent.SpanID() != root.SpanContext().SpanID() {
		t.Fatalf("no client span SELECT with db.query.text under the request; spans: %v", exp.GetSpans())
	}
	attrs := map[string]string{}
	for _, a := range query.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["db.system.name"] != "postgresql" || attrs["db.operation.name"] != "SELECT" || !strings.Contains(attrs["db.query.text"], "FROM users") {
		t.Errorf("SELECT span attributes %v, want db.system.name postgresql, db.operation.name SELECT and the statement", attrs)
	}
}

func TestNewPoolWithoutTracing(t *testing.T) {
	ctx := context.Background()
	pool, err := postgres.NewPool(ctx, "postgres://nobody@127.0.0.1:1/none", nil)
	if err != nil {
		t.Fatalf("NewPool err = %v", err)
	}
	defer pool.Close()
	if tr := pool.Config().ConnConfig.Tracer; tr != nil {
		t.Errorf("tracer %T with a nil provider, want none", tr)
	}
	if _, err := postgres.NewPool(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=sometimes", nil); err == nil {
		t.Error("NewPool(bad sslmode) err = nil, want one")
	}
}
