package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/testkit"
)

// newMetrics returns Metrics on a fresh registry.
func newMetrics(t *testing.T) *telemetry.Metrics {
	t.Helper()
	return telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.BuildInfo{Version: "v1.2.3", Commit: "abc123"})
}

// families scrapes m in the text format and parses the result.
func families(t *testing.T, m *telemetry.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(testkit.Scrape(t, m.Handler(), "")))
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return mfs
}

// series returns the metric of family name whose labels include want, or
// nil.
func series(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value is the value of a counter or gauge series, or -1 when it is absent.
func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := series(mfs, name, labels)
	switch {
	case m == nil:
		return -1
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return -1
}

// sampleCount is the number of observations of a histogram series, or -1
// when it is absent.
func sampleCount(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) int {
	m := series(mfs, name, labels)
	if m == nil || m.Histogram == nil {
		return -1
	}
	return int(m.GetHistogram().GetSampleCount())
}

var exemplarRE = regexp.MustCompile(`# \{trace_id="([0-9a-f]{32})"\}`)

// exemplars returns the trace ids of the exemplars on the OpenMetrics lines
// of metric name (a full sample name, e.g. x_bucket) that contain every one
// of the label pairs in match (written as in the exposition: k="v").
func exemplars(body, name string, match ...string) []string {
	var ids []string
lines:
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(line, m) {
				continue lines
			}
		}
		if sm := exemplarRE.FindStringSubmatch(line); sm != nil {
			ids = append(ids, sm[1])
		}
	}
	return ids
}

// tracerProvider returns a provider that samples every span or none, and
// the recorder of its ended spans.
func tracerProvider(t *testing.T, sample bool) (*sdktrace.TracerProvider, *tracetest.SpanRecorder) {
	t.Helper()
	sampler := sdktrace.NeverSample()
	if sample {
		sampler = sdktrace.AlwaysSample()
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, rec
}

// traceIDs returns the trace ids of the spans rec saw end.
func traceIDs(rec *tracetest.SpanRecorder) map[string]bool {
	ids := map[string]bool{}
	for _, s := range rec.Ended() {
		ids[s.SpanContext().TraceID().String()] = true
	}
	return ids
}

// serveHealth runs a grpc.Server with the health service on 127.0.0.1:0
// behind interceptors and returns a client; both stop when the test ends.
func serveHealth(t *testing.T, interceptors ...grpc.UnaryServerInterceptor) healthpb.HealthClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(interceptors...))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return healthpb.NewHealthClient(conn)
}

func TestBuildInfo(t *testing.T) {
	mfs := families(t, newMetrics(t))
	labels := map[string]string{"version": "v1.2.3", "commit": "abc123", "goversion": runtime.Version()}
	if got := value(mfs, "usersd_build_info", labels); got != 1 {
		t.Errorf("usersd_build_info%v = %v, want 1", labels, got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if mfs[name] == nil {
			t.Errorf("no %s: the Go and process collectors are not registered", name)
		}
	}
	for _, transport := range []string{"http", "grpc"} {
		if got := value(mfs, "usersd_requests_rejected_total", map[string]string{"transport": transport}); got != 0 {
			t.Errorf("usersd_requests_rejected_total{transport=%q} = %v before any rejection, want 0", transport, got)
		}
	}
}

func TestGRPCServerMetrics(t *testing.T) {
	m := newMetrics(t)
	sampled, rec := tracerProvider(t, true)
	unsampled, _ := tracerProvider(t, false)
	// traced starts the server span that a tracing stats handler would:
	// sampled for Check, not sampled for List.
	traced := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		tp := sampled
		if info.FullMethod == healthpb.Health_List_FullMethodName {
			tp = unsampled
		}
		ctx, span := tp.Tracer("test").Start(ctx, info.FullMethod)
		defer span.End()
		return handler(ctx, req)
	}
	client := serveHealth(t, traced, m.UnaryServerInterceptor())

	ctx := context.Background()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check(nope) err = %v, want NotFound", err)
	}
	if _, err := client.List(ctx, &healthpb.HealthListRequest{}); err != nil {
		t.Fatalf("List: %v", err)
	}

	mfs := families(t, m)
	rpc := func(method string) map[string]string {
		return map[string]string{"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health", "grpc_method": method}
	}
	with := func(l map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for k, v := range l {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		method, code string
		want         float64
	}{
		{"Check", "OK", 1},
		{"Check", "NotFound", 1},
		{"Check", "Internal", -1}, // absent: series are not pre-initialised
		{"List", "OK", 1},
	} {
		labels := with(rpc(tc.method), "grpc_code", tc.code)
		if got := value(mfs, "grpc_server_handled_total", labels); got != tc.want {
			t.Errorf("grpc_server_handled_total%v = %v, want %v", labels, got, tc.want)
		}
	}
	if got := value(mfs, "grpc_server_started_total", rpc("Check")); got != 2 {
		t.Errorf("grpc_server_started_total{Check} = %v, want 2", got)
	}
	if got := sampleCount(mfs, "grpc_server_handling_seconds", rpc("Check")); got != 2 {
		t.Errorf("grpc_server_handling_seconds{Check} count = %d, want 2", got)
	}
	if got := sampleCount(mfs, "grpc_server_handling_seconds", rpc("List")); got != 1 {
		t.Errorf("grpc_server_handling_seconds{List} count = %d, want 1", got)
	}

	// Exemplars: only in OpenMetrics, only for sampled spans, and naming
	// the trace of the server span.
	text := testkit.Scrape(t, m.Handler(), "")
	if strings.Contains(text, "trace_id") {
		t.Errorf("the text format carries exemplars:\n%s", text)
	}
	om := testkit.Scrape(t, m.Handler(), testkit.OpenMetrics)
	spans := traceIDs(rec)
	got := exemplars(om, "grpc_server_handling_seconds_bucket", `grpc_method="Check"`)
	if len(got) == 0 {
		t.Errorf("no trace_id exemplar on grpc_server_handling_seconds_bucket{grpc_method=\"Check\"}; scrape:\n%s", om)
	}
	for _, id := range got {
		if !spans[id] {
			t.Errorf("exemplar trace_id %s is not a trace the server started (%v)", id, spans)
		}
	}
	if got := exemplars(om, "grpc_server_handled_total", `grpc_method="Check"`, `grpc_code="OK"`); len(got) != 1 || !spans[got[0]] {
		t.Errorf("grpc_server_handled_total{Check,OK} exemplars = %v, want one of the server's traces %v", got, spans)
	}
	if got := exemplars(om, "grpc_server_handling_seconds_bucket", `grpc_method="List"`); len(got) != 0 {
		t.Errorf("unsampled List has exemplars %v, want none", got)
	}
}

// TestGRPCExemplarInProcess checks the gateway's path: a call on the
// in-process connection runs in the HTTP request's context, so its exemplar
// is the HTTP request's trace.
func TestGRPCExemplarInProcess(t *testing.T) {
	m := newMetrics(t)
	ch := inproc.New(m.UnaryServerInterceptor())
	healthpb.RegisterHealthServer(ch, health.NewServer())
	tp, rec := tracerProvider(t, true)

	ctx, span := tp.Tracer("test").Start(context.Background(), "GET /healthz")
	_, err := healthpb.NewHealthClient(ch).Check(ctx, &healthpb.HealthCheckRequest{})
	span.End()
	if err != nil {
		t.Fatalf("Check: %v", err)
	}

	om := testkit.Scrape(t, m.Handler(), testkit.OpenMetrics)
	want := span.SpanContext().TraceID().String()
	if !traceIDs(rec)[want] {
		t.Fatalf("span %s not recorded", want)
	}
	got := exemplars(om, "grpc_server_handling_seconds_bucket", `grpc_method="Check"`)
	if len(got) != 1 || got[0] != want {
		t.Errorf("in-process Check exemplars = %v, want [%s]; scrape:\n%s", got, want, om)
	}
}

func TestHTTPTelemetryMetrics(t *testing.T) {
	tp, _ := tracerProvider(t, true)
	routed := func(route string, code int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			telemetry.CallFrom(r.Context()).SetRoute(route)
			w.WriteHeader(code)
		})
	}
	// outerCall stands in for a middleware outside ours that creates the
	// Call.
	outerCall := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, _ := telemetry.WithCall(r.Context())
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	for _, tc := range []struct {
		name    string
		method  string
		handler http.Handler
		outer   func(http.Handler) http.Handler
		want    map[string]string
	}{
		{
			name:    "route template, not the path",
			method:  http.MethodGet,
			handler: routed("/v1/users/{id}", http.StatusNotFound),
			want:    map[string]string{"route": "/v1/users/{id}", "method": "GET", "status": "404"},
		},
		{
			name:    "no route is unmatched, no status is 200",
			method:  http.MethodGet,
			handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
			want:    map[string]string{"route": "unmatched", "method": "GET", "status": "200"},
		},
		{
			name:   "status from the first write",
			method: http.MethodPost,
			handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				telemetry.CallFrom(r.Context()).SetRoute("/v1/users")
				w.Write([]byte("{}"))
				w.WriteHeader(http.StatusTeapot) // superfluous: ignored by net/http and by us
			}),
			want: map[string]string{"route": "/v1/users", "method": "POST", "status": "200"},
		},
		{
			name:    "unknown method is other",
			method:  "BREW",
			handler: routed("/v1/users", http.StatusMethodNotAllowed),
			want:    map[string]string{"route": "/v1/users", "method": "other", "status": "405"},
		},
		{
			name:    "existing Call from an outer middleware",
			method:  http.MethodDelete,
			handler: routed("/v1/users/{id}", http.StatusOK),
			outer:   outerCall,
			want:    map[string]string{"route": "/v1/users/{id}", "method": "DELETE", "status": "200"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMetrics(t)
			h := telemetry.HTTPTelemetry(zerolog.Nop(), m, nil, tc.handler)
			if tc.outer != nil {
				h = tc.outer(h)
			}
			ctx, span := tp.Tracer("test").Start(context.Background(), "request")
			defer span.End()
			req := httptest.NewRequestWithContext(ctx, tc.method, "/v1/users/123", nil)
			h.ServeHTTP(httptest.NewRecorder(), req)

			mfs := families(t, m)
			if got := sampleCount(mfs, "usersd_http_request_duration_seconds", tc.want); got != 1 {
				t.Errorf("usersd_http_request_duration_seconds%v count = %d, want 1; series: %v",
					tc.want, got, mfs["usersd_http_request_duration_seconds"].GetMetric())
			}
			if n := len(mfs["usersd_http_request_duration_seconds"].GetMetric()); n != 1 {
				t.Errorf("%d duration series, want 1", n)
			}
			if got := value(mfs, "usersd_http_requests_in_flight", nil); got != 0 {
				t.Errorf("usersd_http_requests_in_flight = %v after the request, want 0", got)
			}
			om := testkit.Scrape(t, m.Handler(), testkit.OpenMetrics)
			want := span.SpanContext().TraceID().String()
			got := exemplars(om, "usersd_http_request_duration_seconds_bucket", `route="`+tc.want["route"]+`"`)
			if len(got) != 1 || got[0] != want {
				t.Errorf("exemplars = %v, want [%s]", got, want)
			}
		})
	}
}

func TestHTTPTelemetryReusesCall(t *testing.T) {
	m := newMetrics(t)
	var seen *telemetry.Call
	h := telemetry.HTTPTelemetry(zerolog.Nop(), m, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = telemetry.CallFrom(r.Context())
		// A route named after next returns, as by a middleware outside
		// this handler, is still read: the label is taken at the end.
	}))
	ctx, call := telemetry.WithCall(context.Background())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	if seen != call {
		t.Errorf("handler saw Call %p, want the request's %p: the middleware replaced it", seen, call)
	}

	h = telemetry.HTTPTelemetry(zerolog.Nop(), m, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = telemetry.CallFrom(r.Context())
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if seen == nil {
		t.Error("handler saw no Call: the middleware must add one when the request has none")
	}
}

func TestHTTPTelemetryInFlight(t *testing.T) {
	m := newMetrics(t)
	inside := make(chan float64, 1)
	h := telemetry.HTTPTelemetry(zerolog.Nop(), m, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside <- value(families(t, m), "usersd_http_requests_in_flight", nil)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	if got := <-inside; got != 1 {
		t.Errorf("usersd_http_requests_in_flight = %v during the request, want 1", got)
	}

	// A panicking handler is counted as a 500 and leaves the gauge at 0,
	// whether HTTPTelemetry answers the panic or, for an abort, lets it go
	// on to net/http.
	for _, p := range []any{"boom", http.ErrAbortHandler} {
		h = telemetry.HTTPTelemetry(zerolog.Nop(), m, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			telemetry.CallFrom(r.Context()).SetRoute("/v1/users")
			panic(p)
		}))
		func() {
			defer func() {
				if got := recover(); p == http.ErrAbortHandler && got != p {
					t.Errorf("recovered %v, want the handler's abort", got)
				} else if p != http.ErrAbortHandler && got != nil {
					t.Errorf("recovered %v, want the panic answered", got)
				}
			}()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/users", nil))
			if w.Code != http.StatusInternalServerError {
				t.Errorf("panic %v answered %d, want 500", p, w.Code)
			}
		}()
	}
	mfs := families(t, m)
	if got := value(mfs, "usersd_http_requests_in_flight", nil); got != 0 {
		t.Errorf("usersd_http_requests_in_flight = %v after the requests, want 0", got)
	}
	want := map[string]string{"route": "/v1/users", "method": "POST", "status": "500"}
	if got := sampleCount(mfs, "usersd_http_request_duration_seconds", want); got != 2 {
		t.Errorf("usersd_http_request_duration_seconds%v count = %d, want 2", want, got)
	}
}

func TestRejectedInc(t *testing.T) {
	m := newMetrics(t)
	m.RejectedInc("http")
	m.RejectedInc("http")
	m.RejectedInc("grpc")
	mfs := families(t, m)
	for transport, want := range map[string]float64{"http": 2, "grpc": 1} {
		if got := value(mfs, "usersd_requests_rejected_total", map[string]string{"transport": transport}); got != want {
			t.Errorf("usersd_requests_rejected_total{transport=%q} = %v, want %v", transport, got, want)
		}
	}
}

// lazyPool returns a pool that never connects: pgxpool dials on first use.
func lazyPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 7
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestInstrumentPoolUnconnected(t *testing.T) {
	m := newMetrics(t)
	m.InstrumentPool(lazyPool(t))
	mfs := families(t, m)
	for name, want := range map[string]float64{
		"usersd_db_pool_max_connections":      7,
		"usersd_db_pool_connections":          0,
		"usersd_db_pool_acquired_connections": 0,
		"usersd_db_pool_idle_connections":     0,
		"usersd_db_pool_acquires_total":       0,
	} {
		if got := value(mfs, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestInstrumentPool(t *testing.T) {
	dsn := pgtest.NewDatabase(t) // skips without USERSD_TEST_POSTGRES_URL, fails under CI=true
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m := newMetrics(t)
	m.InstrumentPool(pool)

	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	// The only connection is taken: a second acquire waits until its
	// context ends and is counted as canceled.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = pool.Acquire(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second Acquire err = %v, want DeadlineExceeded", err)
	}
	held := families(t, m)
	conn.Release()
	released := families(t, m)

	for _, tc := range []struct {
		name string
		mfs  map[string]*dto.MetricFamily
		want float64
	}{
		{"usersd_db_pool_max_connections", held, 1},
		{"usersd_db_pool_connections", held, 1},
		{"usersd_db_pool_acquired_connections", held, 1},
		{"usersd_db_pool_idle_connections", held, 0},
		{"usersd_db_pool_acquires_total", held, 1},
		{"usersd_db_pool_canceled_acquires_total", held, 1},
		{"usersd_db_pool_new_connections_total", held, 1},
		{"usersd_db_pool_acquired_connections", released, 0},
		{"usersd_db_pool_idle_connections", released, 1},
	} {
		if got := value(tc.mfs, tc.name, nil); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := value(held, "usersd_db_pool_acquire_duration_seconds_total", nil); got <= 0 {
		t.Errorf("usersd_db_pool_acquire_duration_seconds_total = %v, want > 0 after a connecting acquire", got)
	}
}

// populated returns Metrics with a sample of every metric it can export,
// scraped in the text format.
func populated(t *testing.T) string {
	t.Helper()
	m := newMetrics(t)
	m.InstrumentPool(lazyPool(t))
	m.RejectedInc("grpc")
	telemetry.HTTPTelemetry(zerolog.Nop(), m, nil, http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
	ch := inproc.New(m.UnaryServerInterceptor())
	healthpb.RegisterHealthServer(ch, health.NewServer())
	if _, err := healthpb.NewHealthClient(ch).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	testkit.Scrape(t, m.Handler(), "") // so that promhttp's own counters have samples
	return testkit.Scrape(t, m.Handler(), "")
}

// TestLint runs client_golang's copy of promtool's metric lint; it needs no
// external tool.
func TestLint(t *testing.T) {
	problems, err := promlint.New(strings.NewReader(populated(t))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		msg := "promtool is not on PATH; install it (Debian: apt-get install --no-install-recommends prometheus) to lint the exposition"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true requires it)")
		}
		t.Skip(msg)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(populated(t))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}
