package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/usersd/usersd/internal/telemetry"
)

// verifyNoLeaks fails the test if it leaves goroutines running once its
// cleanups are done. Call it first: cleanups run last-registered first.
func verifyNoLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
}

// newProvider returns NewTracerProvider(cfg) with an in-memory exporter
// attached, shut down when the test ends.
func newProvider(t *testing.T, cfg telemetry.TraceConfig) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	tp, err := telemetry.NewTracerProvider(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewTracerProvider(%+v) err = %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown err = %v", err)
		}
	})
	exp := tracetest.NewInMemoryExporter()
	tp.RegisterSpanProcessor(sdktrace.NewSimpleSpanProcessor(exp))
	return tp, exp
}

func TestNewTracerProviderErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  telemetry.TraceConfig
		want string // in the error
	}{
		{"exporter", telemetry.TraceConfig{Exporter: "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{"sampler", telemetry.TraceConfig{Sampler: "jaeger_remote"}, "OTEL_TRACES_SAMPLER"},
		{"sampler arg", telemetry.TraceConfig{Sampler: "traceidratio", SamplerArg: "half"}, "OTEL_TRACES_SAMPLER_ARG"},
		{"sampler arg range", telemetry.TraceConfig{Sampler: "parentbased_traceidratio", SamplerArg: "1.5"}, "OTEL_TRACES_SAMPLER_ARG"},
		{"protocol", telemetry.TraceConfig{Protocol: "http/json", Endpoint: "http://localhost:4318"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"protocol without exporter", telemetry.TraceConfig{Protocol: "thrift", Exporter: "none"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"endpoint without scheme", telemetry.TraceConfig{Endpoint: "localhost:4317"}, "OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"endpoint scheme", telemetry.TraceConfig{Endpoint: "grpc://localhost:4317"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"},
		{"resource attributes", telemetry.TraceConfig{ResourceAttributes: "a=1,b"}, "OTEL_RESOURCE_ATTRIBUTES"},
		{"resource attribute encoding", telemetry.TraceConfig{ResourceAttributes: "a=%zz"}, "OTEL_RESOURCE_ATTRIBUTES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := telemetry.NewTracerProvider(context.Background(), tt.cfg)
			if err == nil {
				tp.Shutdown(context.Background())
				t.Fatalf("NewTracerProvider(%+v) err = nil, want one naming %s", tt.cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewTracerProvider(%+v) err = %v, want it to name %s", tt.cfg, err, tt.want)
			}
		})
	}
}

func resourceAttrs(tp *sdktrace.TracerProvider, exp *tracetest.InMemoryExporter) map[string]string {
	_, span := tp.Tracer("test").Start(context.Background(), "probe")
	span.End()
	spans := exp.GetSpans()
	exp.Reset()
	m := map[string]string{}
	for _, a := range spans[len(spans)-1].Resource.Attributes() {
		m[string(a.Key)] = a.Value.String()
	}
	return m
}

// TestResource checks the service's name and version and the resource
// attributes, and that the SDK's own reading of OTEL_* variables does not
// override the config. (The SDK does add the environment's resource
// attributes under the config's, hence env.only below; cmd/usersd passes
// the same variable, so in the binary that adds nothing.)
func TestResource(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-env,service.version=from-env,env.only=yes")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")

	tests := []struct {
		name string
		cfg  telemetry.TraceConfig
		want map[string]string
	}{
		{
			name: "defaults",
			cfg:  telemetry.TraceConfig{},
			want: map[string]string{"service.name": "usersd", "service.version": "from-env", "env.only": "yes"},
		},
		{
			name: "name and version",
			cfg:  telemetry.TraceConfig{ServiceName: "users-eu", ServiceVersion: "v1.2.3"},
			want: map[string]string{"service.name": "users-eu", "service.version": "v1.2.3", "env.only": "yes"},
		},
		{
			name: "resource attributes",
			cfg: telemetry.TraceConfig{
				ServiceVersion:     "v1.2.3",
				ResourceAttributes: " service.name=named-here , deployment.environment.name = prod%2Ceu ,service.version=v9",
			},
			want: map[string]string{"service.name": "named-here", "service.version": "v9", "deployment.environment.name": "prod,eu", "env.only": "yes"},
		},
		{
			name: "service name wins over resource attributes",
			cfg:  telemetry.TraceConfig{ServiceName: "users-eu", ResourceAttributes: "service.name=named-here"},
			want: map[string]string{"service.name": "users-eu", "service.version": "from-env", "env.only": "yes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, exp := newProvider(t, tt.cfg)
			got := resourceAttrs(tp, exp)
			if got["telemetry.sdk.language"] != "go" {
				t.Errorf("resource %v lacks telemetry.sdk.language=go", got)
			}
			for k := range got {
				if strings.HasPrefix(k, "telemetry.sdk.") {
					delete(got, k)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("resource mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSampler checks each sampler, and that the trace id is there for the
// logs even when a span is not sampled.
func TestSampler(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off") // the config wins

	remote := func(sampled bool) context.Context {
		var flags trace.TraceFlags
		if sampled {
			flags = trace.FlagsSampled
		}
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: flags, Remote: true,
		}))
	}
	tests := []struct {
		sampler, arg string
		parent       context.Context
		want         bool
	}{
		{"", "", context.Background(), true},
		{"", "", remote(false), false},
		{"parentbased_always_on", "", remote(true), true},
		{"PARENTBASED_ALWAYS_ON", "", context.Background(), true},
		{"parentbased_always_off", "", context.Background(), false},
		{"parentbased_always_off", "", remote(true), true},
		{"always_on", "", remote(false), true},
		{"always_off", "", remote(true), false},
		{"traceidratio", "0", context.Background(), false},
		{"traceidratio", "", context.Background(), true},
		{"traceidratio", "1", remote(false), true},
		{"parentbased_traceidratio", "0", context.Background(), false},
		{"parentbased_traceidratio", "0", remote(true), true},
	}
	for _, tt := range tests {
		tp, _ := newProvider(t, telemetry.TraceConfig{Sampler: tt.sampler, SamplerArg: tt.arg})
		_, span := tp.Tracer("test").Start(tt.parent, "probe")
		span.End()
		sc := span.SpanContext()
		if sc.IsSampled() != tt.want {
			t.Errorf("sampler %q %q, parent %v: sampled = %v, want %v", tt.sampler, tt.arg, trace.SpanContextFromContext(tt.parent).TraceFlags(), sc.IsSampled(), tt.want)
		}
		if !sc.IsValid() {
			t.Errorf("sampler %q %q: span context %v not valid; logs need its trace id", tt.sampler, tt.arg, sc)
		}
	}
}

func TestPropagator(t *testing.T) {
	tp, _ := newProvider(t, telemetry.TraceConfig{})
	ctx, span := tp.Tracer("test").Start(context.Background(), "client")
	defer span.End()
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	ctx = baggage.ContextWithBaggage(ctx, bag)

	h := http.Header{}
	telemetry.Propagator().Inject(ctx, propagation.HeaderCarrier(h))
	if got := h.Get("Traceparent"); !strings.Contains(got, span.SpanContext().TraceID().String()) {
		t.Errorf("traceparent = %q, want trace id %s", got, span.SpanContext().TraceID())
	}
	if got := h.Get("Baggage"); got != "tenant=acme" {
		t.Errorf("baggage = %q, want tenant=acme", got)
	}
	got := telemetry.Propagator().Extract(context.Background(), propagation.HeaderCarrier(h))
	if sc := trace.SpanContextFromContext(got); sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsRemote() {
		t.Errorf("extracted span context %v, want the remote %v", sc, span.SpanContext())
	}
	if v := baggage.FromContext(got).Member("tenant").Value(); v != "acme" {
		t.Errorf("extracted baggage tenant = %q, want acme", v)
	}
}

// otlpSpan is what the receivers keep of an exported span.
type otlpSpan struct {
	Name, Service string
	TraceID       string
	SpanID        string
	ParentID      string
	Attrs         map[string]string
}

// flatten returns the spans of an OTLP export request.
func flatten(req *collectortrace.ExportTraceServiceRequest) []otlpSpan {
	str := func(attrs []*commonpb.KeyValue) map[string]string {
		m := map[string]string{}
		for _, a := range attrs {
			switch v := a.GetValue().GetValue().(type) {
			case *commonpb.AnyValue_StringValue:
				m[a.GetKey()] = v.StringValue
			default:
				m[a.GetKey()] = a.GetValue().String()
			}
		}
		return m
	}
	var out []otlpSpan
	for _, rs := range req.GetResourceSpans() {
		service := str(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				out = append(out, otlpSpan{
					Name: s.GetName(), Service: service,
					TraceID:  trace.TraceID(s.GetTraceId()).String(),
					SpanID:   trace.SpanID(s.GetSpanId()).String(),
					ParentID: parentID(s.GetParentSpanId()),
					Attrs:    str(s.GetAttributes()),
				})
			}
		}
	}
	return out
}

func parentID(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return trace.SpanID(b).String()
}

// spanSink collects exported spans.
type spanSink struct {
	mu    sync.Mutex
	spans []otlpSpan
	meta  []string // per request: transport details worth checking
}

func (s *spanSink) add(req *collectortrace.ExportTraceServiceRequest, meta string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, flatten(req)...)
	s.meta = append(s.meta, meta)
}

func (s *spanSink) get() ([]otlpSpan, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.spans), slices.Clone(s.meta)
}

// grpcReceiver is an OTLP/gRPC trace receiver.
type grpcReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	sink *spanSink
}

func (r *grpcReceiver) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.sink.add(req, "grpc")
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// startGRPCReceiver serves an OTLP/gRPC receiver on 127.0.0.1 until the
// test ends and returns its address.
func startGRPCReceiver(t *testing.T) (string, *spanSink) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := &spanSink{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, &grpcReceiver{sink: sink})
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String(), sink
}

// startHTTPReceiver serves an OTLP/HTTP (protobuf) trace receiver until the
// test ends and returns its URL.
func startHTTPReceiver(t *testing.T) (string, *spanSink) {
	t.Helper()
	sink := &spanSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := &collectortrace.ExportTraceServiceRequest{}
		if err := proto.Unmarshal(body, req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sink.add(req, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, sink
}

// exportTwoSpans makes a parent and a child span on a provider made from
// cfg and shuts it down, which flushes them, and returns them as made.
func exportTwoSpans(t *testing.T, cfg telemetry.TraceConfig) []otlpSpan {
	t.Helper()
	ctx := context.Background()
	tp, err := telemetry.NewTracerProvider(ctx, cfg)
	if err != nil {
		t.Fatalf("NewTracerProvider(%+v) err = %v", cfg, err)
	}
	tr := tp.Tracer("test")
	ctx, parent := tr.Start(ctx, "parent", trace.WithAttributes(attribute.String("http.route", "/v1/users/{id}")))
	_, child := tr.Start(ctx, "child", trace.WithAttributes(attribute.Int("db.response.returned_rows", 1)))
	child.End()
	parent.End()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tp.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown err = %v", err)
	}
	pc, cc := parent.SpanContext(), child.SpanContext()
	return []otlpSpan{
		{Name: "child", Service: "usersd-test", TraceID: cc.TraceID().String(), SpanID: cc.SpanID().String(), ParentID: pc.SpanID().String(),
			Attrs: map[string]string{"db.response.returned_rows": "int_value:1"}},
		{Name: "parent", Service: "usersd-test", TraceID: pc.TraceID().String(), SpanID: pc.SpanID().String(),
			Attrs: map[string]string{"http.route": "/v1/users/{id}"}},
	}
}

// TestExportOTLPGRPC exports over OTLP/gRPC to a receiver speaking the real
// protocol. The environment points elsewhere; the config wins.
func TestExportOTLPGRPC(t *testing.T) {
	verifyNoLeaks(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	addr, sink := startGRPCReceiver(t)
	want := exportTwoSpans(t, telemetry.TraceConfig{ServiceName: "usersd-test", Endpoint: "http://" + addr})
	got, meta := sink.get()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received spans mismatch (-want +got):\n%s", diff)
	}
	if len(meta) != 1 {
		t.Errorf("%d export requests, want 1 (one batch)", len(meta))
	}
}

// TestExportOTLPHTTP exports over OTLP/HTTP with protobuf bodies.
func TestExportOTLPHTTP(t *testing.T) {
	verifyNoLeaks(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1/elsewhere")
	url, sink := startHTTPReceiver(t)
	want := exportTwoSpans(t, telemetry.TraceConfig{
		ServiceName: "usersd-test", Exporter: "otlp", Protocol: "http/protobuf", Endpoint: url + "/v1/traces",
	})
	got, meta := sink.get()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received spans mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"POST /v1/traces application/x-protobuf"}, meta); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

// TestNoExporter checks that nothing is exported, and nothing dialled, when
// no exporter is configured, even with the local collector's variables set.
func TestNoExporter(t *testing.T) {
	verifyNoLeaks(t)
	addr, sink := startGRPCReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	for _, cfg := range []telemetry.TraceConfig{{}, {Exporter: "none", Endpoint: "http://" + addr}} {
		tp, err := telemetry.NewTracerProvider(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, span := tp.Tracer("test").Start(context.Background(), "dropped")
		span.End()
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := sink.get(); len(got) != 0 {
		t.Errorf("received %v, want nothing", got)
	}
}

// TestRouteSpan checks the HTTP server span's name and http.route, which
// HTTPTelemetry sets from the route the gateway records on the Call.
func TestRouteSpan(t *testing.T) {
	tp, exp := newProvider(t, telemetry.TraceConfig{})
	gateway := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/users/123":
			telemetry.CallFrom(r.Context()).SetRoute("/v1/users/{id}")
			telemetry.CallFrom(r.Context()).SetRPC("/users.v1.UserService/GetUser", codes.NotFound)
		case "/openapi/v1.json":
			telemetry.CallFrom(r.Context()).SetRoute("/openapi/v1.json")
		}
	})
	m := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.BuildInfo{})
	h := telemetry.HTTPTelemetry(zerolog.Nop(), m, tp, gateway)
	for _, path := range []string{"/v1/users/123", "/openapi/v1.json", "/nowhere"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", path, nil))
	}
	// A route that ran an RPC names it on the span too.
	type nameRoute struct{ Name, Route, RPC, Code string }
	var got []nameRoute
	for _, s := range exp.GetSpans() {
		nr := nameRoute{Name: s.Name}
		for _, a := range s.Attributes {
			switch a.Key {
			case "http.route":
				nr.Route = a.Value.AsString()
			case "rpc.method":
				nr.RPC = a.Value.AsString()
			case "rpc.response.status_code":
				nr.Code = a.Value.AsString()
			}
		}
		got = append(got, nr)
	}
	want := []nameRoute{
		{"GET /v1/users/{id}", "/v1/users/{id}", "users.v1.UserService/GetUser", "NotFound"},
		{"GET /openapi/v1.json", "/openapi/v1.json", "", ""},
		{"GET", "", "", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HTTP spans mismatch (-want +got):\n%s", diff)
	}
}
