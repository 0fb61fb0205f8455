package postgres_test

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
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
	if _, err := s.GetUser(rctx, users.DefaultTenant, u.ID); err != nil {
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
	// The pool's own tracer (readOnlyTracer) is there, otelpgx is not.
	if mt, ok := pool.Config().ConnConfig.Tracer.(*multitracer.Tracer); !ok {
		t.Errorf("tracer %T, want a *multitracer.Tracer", pool.Config().ConnConfig.Tracer)
	} else {
		for _, tr := range mt.QueryTracers {
			if _, ok := tr.(*otelpgx.Tracer); ok {
				t.Errorf("tracer %T with a nil provider, want none", tr)
			}
		}
	}
	if _, err := postgres.NewPool(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=sometimes", nil); err == nil {
		t.Error("NewPool(bad sslmode) err = nil, want one")
	}
}

// blackhole listens on 127.0.0.1 and accepts connections that it never
// answers, as a frozen server or a partitioned host looks to a client. It
// returns its address.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// TestNewPoolConnectTimeout runs a pool on a two-host URL whose first host
// accepts connections and never answers: each connection gives up on it
// after the connect timeout, the URL's or DefaultConnectTimeout, and
// reaches the second host, instead of waiting for pgxpool's default of
// two minutes.
func TestNewPoolConnectTimeout(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	hole := blackhole(t)
	for _, tc := range []struct {
		name  string
		query string
		want  time.Duration
	}{
		{"url", "connect_timeout=1", time.Second},
		{"default", "", postgres.DefaultConnectTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(dsn)
			if err != nil || u.Scheme == "" {
				t.Skipf("a multi-host URL is made from a postgres:// URL; %s is not one (%v)", pgtest.EnvURL, err)
			}
			u.Host = hole + "," + u.Host
			q := u.Query()
			q.Set("target_session_attrs", "read-write")
			if tc.query != "" {
				k, v, _ := strings.Cut(tc.query, "=")
				q.Set(k, v)
			}
			u.RawQuery = q.Encode()
			pool, err := postgres.NewPool(context.Background(), u.String(), nil)
			if err != nil {
				t.Fatalf("NewPool err = %v", err)
			}
			defer pool.Close()
			ctx, cancel := context.WithTimeout(context.Background(), tc.want+10*time.Second)
			defer cancel()
			start := time.Now()
			err = pool.Ping(ctx)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("Ping through a silent first host = %v after %v, want the second host", err, took)
			}
			if took < tc.want || took > tc.want+3*time.Second {
				t.Errorf("Ping took %v, want the connect timeout %v on the silent host, then the second host", took, tc.want)
			}

			// The next new connection goes to the host the last one
			// reached first: no second wait on the silent one.
			// (Hold every idle connection, so that Acquire makes one.)
			for _, c := range pool.AcquireAllIdle(ctx) {
				defer c.Release()
			}
			start = time.Now()
			c, err := pool.Acquire(ctx)
			took = time.Since(start)
			if err != nil {
				t.Fatalf("a second connection: %v after %v", err, took)
			}
			c.Release()
			if took > tc.want/2 {
				t.Errorf("a second new connection took %v, want it to try the host that answered first (under %v)", took, tc.want/2)
			}
		})
	}
}

// TestNewPoolDropsReadOnlyConns checks that a connection on which a
// statement failed with read_only_sql_transaction (25006), as on a demoted
// primary, is closed when it returns to the pool, and that one on which a
// statement failed for another reason is kept.
func TestNewPoolDropsReadOnlyConns(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	// One connection, so each statement below runs on the same one unless
	// the pool closed it. (In keyword/value form the last setting wins.)
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("pool_max_conns", "1")
		u.RawQuery = q.Encode()
		dsn = u.String()
	} else {
		dsn += " pool_max_conns=1"
	}
	pool, err := postgres.NewPool(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("NewPool err = %v", err)
	}
	defer pool.Close()
	pid := func() uint32 {
		t.Helper()
		var p uint32
		if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	first := pid()
	if _, err := pool.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("SELECT 1/0 succeeded")
	}
	if got := pid(); got != first {
		t.Errorf("after a division by zero the pool's connection is backend %d, want %d still", got, first)
	}

	// The session turns read-only, as every connection to a standby is.
	err = pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		_, err := c.Exec(ctx, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, "CREATE TEMP TABLE t (i int)")
	if err == nil || !strings.Contains(err.Error(), "25006") {
		t.Fatalf("CREATE in a read-only session err = %v, want SQLSTATE 25006", err)
	}
	if got := pid(); got == first {
		t.Errorf("after 25006 the pool's connection is still backend %d, want a new one", got)
	}
}
