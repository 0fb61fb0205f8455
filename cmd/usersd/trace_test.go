package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// exportedSpan is a span as an OTLP receiver got it.
type exportedSpan struct {
	Name     string
	Kind     tracepb.Span_SpanKind
	TraceID  string
	SpanID   string
	ParentID string
	Attrs    map[string]string
	Resource map[string]string
}

func (s exportedSpan) String() string {
	return fmt.Sprintf("%s %s (span %s, parent %s)", s.Kind, s.Name, s.SpanID, s.ParentID)
}

// otlpReceiver is an OTLP/gRPC trace receiver: the real protocol, as a
// collector speaks it.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []exportedSpan
}

func (r *otlpReceiver) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	attrs := func(kvs []*commonpb.KeyValue) map[string]string {
		m := map[string]string{}
		for _, kv := range kvs {
			switch v := kv.GetValue().GetValue().(type) {
			case *commonpb.AnyValue_StringValue:
				m[kv.GetKey()] = v.StringValue
			case *commonpb.AnyValue_IntValue:
				m[kv.GetKey()] = fmt.Sprint(v.IntValue)
			default:
				m[kv.GetKey()] = kv.GetValue().String()
			}
		}
		return m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				es := exportedSpan{
					Name: s.GetName(), Kind: s.GetKind(),
					TraceID:  trace.TraceID(s.GetTraceId()).String(),
					SpanID:   trace.SpanID(s.GetSpanId()).String(),
					Attrs:    attrs(s.GetAttributes()),
					Resource: res,
				}
				if len(s.GetParentSpanId()) > 0 {
					es.ParentID = trace.SpanID(s.GetParentSpanId()).String()
				}
				r.spans = append(r.spans, es)
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// trace returns the spans of the trace with the id.
func (r *otlpReceiver) trace(id string) []exportedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exportedSpan
	for _, s := range r.spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

// startReceiver serves an OTLP/gRPC receiver on 127.0.0.1 until the test
// ends and returns its address.
func startReceiver(t *testing.T) (string, *otlpReceiver) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), r
}

// TestTraceEndToEnd exports the spans of a running usersd to an OTLP/gRPC
// receiver and checks that each request is one trace, continued from the
// caller's traceparent: for a JSON call, the HTTP server span, then the
// in-process gRPC client and server spans, then the store's spans; for a
// gRPC call, the gRPC server span, then the store's spans.
func TestTraceEndToEnd(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testTraceEndToEnd(t, "sqlite:"+filepath.Join(t.TempDir(), "usersd.db"), "sqlite")
	})
	t.Run("postgres", func(t *testing.T) {
		testTraceEndToEnd(t, pgtest.NewDatabase(t), "postgresql")
	})
}

func testTraceEndToEnd(t *testing.T, databaseURL, dbSystem string) {
	addr, receiver := startReceiver(t)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr,
		"OTEL_TRACES_SAMPLER":         "always_on",
	}
	s, stop := startServerEnv(t, env, "--database-url", databaseURL)
	ctx := context.Background()
	u, err := s.Client.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "trace@example.com", DisplayName: "Trace"}})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}

	// The callers' spans, continued by the server.
	const (
		httpTrace  = "0af7651916cd43dd8448eb211c80319c"
		httpCaller = "b7ad6b7169203331"
		grpcTrace  = "1bf7651916cd43dd8448eb211c80319d"
		grpcCaller = "c7ad6b7169203332"
	)
	s.do(t, "GET", "/v1/users/"+u.GetId(), "",
		"traceparent", "00-"+httpTrace+"-"+httpCaller+"-01",
		"baggage", "tenant=acme",
	).wantStatus(t, http.StatusOK)
	mdCtx := metadata.AppendToOutgoingContext(ctx, "traceparent", "00-"+grpcTrace+"-"+grpcCaller+"-01")
	if _, err := s.Client.GetUser(mdCtx, &usersv1.GetUserRequest{Id: u.GetId()}); err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	stop() // flushes the spans

	const rpc = "users.v1.UserService/GetUser"
	server, client := tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT

	t.Run("HTTP", func(t *testing.T) {
		spans := receiver.trace(httpTrace)
		tree := checkTree(t, spans, httpCaller)
		httpSpan := tree.only(t, server, "GET /v1/users/{id}", httpCaller)
		wantAttrs(t, httpSpan, map[string]string{"http.route": "/v1/users/{id}", "http.request.method": "GET", "http.response.status_code": "200"})
		wantAttrs(t, httpSpan, map[string]string{"service.name": "usersd", "service.version": version}, resourceOf)
		// The in-process call to the gRPC server adds no span: the HTTP
		// span stands for it and names the RPC.
		wantAttrs(t, httpSpan, map[string]string{"rpc.system.name": "grpc", "rpc.method": rpc, "rpc.response.status_code": "OK"})
		for _, s := range spans {
			if s.Name == rpc {
				t.Errorf("JSON call has an in-process %v span %v", s.Kind, s)
			}
		}
		tree.wantStore(t, httpSpan, dbSystem, u.GetId(), "trace@example.com")
		t.Logf("trace:\n%s", tree)
	})
	t.Run("gRPC", func(t *testing.T) {
		spans := receiver.trace(grpcTrace)
		tree := checkTree(t, spans, grpcCaller)
		srv := tree.only(t, server, rpc, grpcCaller)
		wantAttrs(t, srv, map[string]string{"rpc.system.name": "grpc", "rpc.method": rpc})
		for _, s := range spans {
			if s.Kind == client && s.Name == rpc {
				t.Errorf("gRPC call has an in-process client span %v", s)
			}
		}
		tree.wantStore(t, srv, dbSystem, u.GetId(), "trace@example.com")
		t.Logf("trace:\n%s", tree)
	})
}

// spanTree is the spans of one trace.
type spanTree struct {
	spans []exportedSpan
	byID  map[string]exportedSpan
}

// checkTree checks that spans form one tree under the caller's span.
func checkTree(t *testing.T, spans []exportedSpan, caller string) spanTree {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no spans in the trace")
	}
	tree := spanTree{spans: spans, byID: map[string]exportedSpan{}}
	for _, s := range spans {
		tree.byID[s.SpanID] = s
	}
	for _, s := range spans {
		if _, ok := tree.byID[s.ParentID]; !ok && s.ParentID != caller {
			t.Errorf("span %v is not in the caller's tree; trace:\n%s", s, tree)
		}
	}
	return tree
}

func (tr spanTree) String() string {
	var b strings.Builder
	for _, s := range tr.spans {
		fmt.Fprintf(&b, "  %v %v\n", s, s.Attrs)
	}
	return b.String()
}

// only returns the one span of the kind and name, which must be a child of
// parent.
func (tr spanTree) only(t *testing.T, kind tracepb.Span_SpanKind, name, parent string) exportedSpan {
	t.Helper()
	var found []exportedSpan
	for _, s := range tr.spans {
		if s.Kind == kind && s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %v spans named %q, want 1; trace:\n%s", len(found), kind, name, tr)
	}
	if found[0].ParentID != parent {
		t.Fatalf("span %v: parent %s, want %s; trace:\n%s", found[0], found[0].ParentID, parent, tr)
	}
	return found[0]
}

// descends reports whether s is under the span with id ancestor.
func (tr spanTree) descends(s exportedSpan, ancestor string) bool {
	for range len(tr.spans) {
		if s.ParentID == ancestor {
			return true
		}
		p, ok := tr.byID[s.ParentID]
		if !ok {
			return false
		}
		s = p
	}
	return false
}

// wantStore checks the store's spans under the RPC's server span: on
// either store, a SELECT with its text but no parameters (otelsql's on
// SQLite, otelpgx's on Postgres). No store span quotes the user's id or
// email.
func (tr spanTree) wantStore(t *testing.T, rpc exportedSpan, dbSystem string, secrets ...string) {
	t.Helper()
	var store []exportedSpan
	for _, s := range tr.spans {
		if s.Attrs["db.system.name"] != "" {
			store = append(store, s)
			if !tr.descends(s, rpc.SpanID) {
				t.Errorf("store span %v is not under the RPC's span %v", s, rpc)
			}
			for k, v := range s.Attrs {
				for _, secret := range secrets {
					if strings.Contains(v, secret) {
						t.Errorf("store span %v: %s = %q quotes %q", s, k, v, secret)
					}
				}
			}
			if _, ok := s.Attrs["pgx.query.parameters"]; ok {
				t.Errorf("store span %v records the query parameters", s)
			}
		}
	}
	const name = "SELECT"
	want := map[string]string{"db.system.name": dbSystem, "db.operation.name": name}
	for _, s := range store {
		if s.Name == name && s.Kind == tracepb.Span_SPAN_KIND_CLIENT {
			wantAttrs(t, s, want)
			// The user's read, and the tenant's settings when their cache
			// (5 s, internal/tenantrate) ran out, as it does in a slow run.
			if q := s.Attrs["db.query.text"]; !strings.Contains(q, "FROM users") && !strings.Contains(q, "FROM tenants") {
				t.Errorf("span %v: db.query.text = %q, want the statement", s, s.Attrs["db.query.text"])
			}
			if dbSystem != "sqlite" {
				// The connection's attributes, which the pool gives once.
				for _, k := range []string{"server.address", "server.port", "user.name", "db.namespace"} {
					if s.Attrs[k] == "" {
						t.Errorf("span %v: no %s", s, k)
					}
				}
			}
			return
		}
	}
	t.Errorf("no client span %q with db.system.name %s under the RPC; trace:\n%s", name, dbSystem, tr)
}

func resourceOf(s exportedSpan) map[string]string { return s.Resource }

// wantAttrs checks some of a span's attributes, or of its resource.
func wantAttrs(t *testing.T, s exportedSpan, want map[string]string, of ...func(exportedSpan) map[string]string) {
	t.Helper()
	got := s.Attrs
	if len(of) > 0 {
		got = of[0](s)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %v: %s = %q, want %q (all: %v)", s, k, got[k], v, got)
		}
	}
}
