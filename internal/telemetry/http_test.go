package telemetry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/usersd/usersd/internal/telemetry"
)

// observed is what one request left behind, with what differs between
// two runs of it (ids, durations, times) taken out.
type observed struct {
	Status int
	Header http.Header
	Body   string
	Panic  string
	Line   map[string]any
	Series []string
	Spans  []string
}

// observe serves one request with the handler made by stack, traced by
// a provider that samples or not, and returns what it produced.
func observe(t *testing.T, sample bool, method string, handler http.Handler,
	stack func(zerolog.Logger, *telemetry.Metrics, trace.TracerProvider, http.Handler) http.Handler) observed {
	t.Helper()
	var logBuf bytes.Buffer
	m := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.BuildInfo{Version: "test"})
	rec := tracetest.NewSpanRecorder()
	sampler := sdktrace.NeverSample()
	if sample {
		sampler = sdktrace.AlwaysSample()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sampler))
	h := stack(zerolog.New(&logBuf), m, tp, handler)

	var o observed
	w := httptest.NewRecorder()
	func() {
		defer func() {
			if p := recover(); p != nil {
				o.Panic = fmt.Sprint(p)
			}
		}()
		h.ServeHTTP(w, httptest.NewRequest(method, "/v1/users/123", strings.NewReader("{}")))
	}()
	o.Status, o.Header, o.Body = w.Code, w.Header(), w.Body.String()

	if logBuf.Len() > 0 {
		if err := json.Unmarshal(logBuf.Bytes(), &o.Line); err != nil {
			t.Fatalf("access line %q: %v", logBuf.String(), err)
		}
		for _, k := range []string{"duration_ms", "trace_id", "span_id", "stack"} {
			if _, ok := o.Line[k]; ok {
				o.Line[k] = "present"
			}
		}
	}
	var spanIDs []string
	for _, s := range rec.Ended() {
		var attrs []string
		for _, a := range s.Attributes() {
			attrs = append(attrs, string(a.Key)+"="+a.Value.String())
		}
		o.Spans = append(o.Spans, s.Name()+" "+s.Status().Code.String()+" "+strings.Join(attrs, " "))
		spanIDs = append(spanIDs, s.SpanContext().TraceID().String())
	}
	// The exposition, with the exemplars' trace ids and timestamps named
	// rather than spelt.
	om := scrapeOpenMetrics(t, m)
	for _, id := range spanIDs {
		om = strings.ReplaceAll(om, id, "TRACE")
	}
	var lines []string
	for _, l := range strings.Split(om, "\n") {
		if !strings.HasPrefix(l, "usersd_http_") {
			continue
		}
		exemplar := ""
		if i := strings.Index(l, " # {"); i >= 0 {
			l, exemplar = l[:i], " # exemplar "+strings.Fields(l[i+3:])[0]
		}
		f := strings.Fields(l)
		switch {
		case strings.Contains(f[0], "_bucket"):
			// Which bucket a duration falls in depends on the
			// machine: keep the series and its exemplar alone.
			if exemplar == "" {
				continue
			}
			l = leLabel.ReplaceAllString(f[0], "") + " BUCKET"
		case strings.Contains(f[0], "_sum"):
			l = f[0] + " SUM"
		}
		lines = append(lines, l+exemplar)
	}
	sort.Strings(lines)
	o.Series = lines
	return o
}

// leLabel is the le label of a histogram bucket series.
var leLabel = regexp.MustCompile(`,?le="[^"]*"`)

func scrapeOpenMetrics(t *testing.T, m *telemetry.Metrics) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Body)
	return string(b)
}

// TestHTTPTelemetry checks what HTTPTelemetry leaves behind (the access
// line, the metrics and their exemplars, the span's name, status and
// attributes, the response and the panic that goes on) for requests that
// ran an RPC, matched a route only, matched nothing, failed, panicked
// before and after answering, and aborted; sampled and not; with a
// standard method and another. testdata/http_telemetry.json is what the
// three middlewares HTTPTelemetry replaced, HTTPAccessLog(RouteSpan(
// Metrics.HTTPMiddleware(…))), produced for the same requests, recorded
// before they were removed: HTTPTelemetry must keep producing it.
func TestHTTPTelemetry(t *testing.T) {
	b, err := os.ReadFile("testdata/http_telemetry.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]observed
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	got := map[string]observed{}
	for name, handler := range httpCases() {
		for _, sample := range []bool{true, false} {
			for _, method := range []string{http.MethodGet, "BREW"} {
				got[fmt.Sprintf("%s, %s, sampled %v", name, method, sample)] = observe(t, sample, method, handler, telemetry.HTTPTelemetry)
			}
		}
	}
	// Through JSON, as the recording, so that empty and absent compare
	// alike.
	b, err = json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("HTTPTelemetry's outputs differ from the recording (-want +got):\n%s", diff)
	}
}

// httpCases are the handlers TestHTTPTelemetry serves, by name.
func httpCases() map[string]http.Handler {
	return map[string]http.Handler{
		"rpc": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			call := telemetry.CallFrom(r.Context())
			call.SetRoute("/v1/users/{id}")
			call.SetRPC("/users.v1.UserService/GetUser", codes.OK)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"id":"123"}`))
		}),
		"rpc failed": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			call := telemetry.CallFrom(r.Context())
			call.SetRoute("/v1/users/{id}")
			call.SetRPC("/users.v1.UserService/GetUser", codes.Unavailable)
			call.SetCause(errors.New("connection lost"))
			w.WriteHeader(http.StatusServiceUnavailable)
		}),
		"route only": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			telemetry.CallFrom(r.Context()).SetRoute("/openapi/v1.json")
			w.WriteHeader(http.StatusTeapot)
		}),
		"unmatched":       http.NotFoundHandler(),
		"nothing written": http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}),
		"panic before answering": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			telemetry.CallFrom(r.Context()).SetRoute("/v1/users/{id}")
			panic("handler bug")
		}),
		"panic after answering": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			telemetry.CallFrom(r.Context()).SetRoute("/v1/users/{id}")
			w.Write([]byte("partial"))
			panic("handler bug")
		}),
		"abort": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			telemetry.CallFrom(r.Context()).SetRoute("/v1/users/{id}")
			panic(http.ErrAbortHandler)
		}),
	}
}

// BenchmarkHTTPTelemetry measures the HTTP edge's telemetry around a
// handler that does nothing but record its route and RPC, with the default
// sampler.
func BenchmarkHTTPTelemetry(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := telemetry.CallFrom(r.Context())
		call.SetRoute("/v1/users/{id}")
		call.SetRPC("/users.v1.UserService/GetUser", codes.OK)
		w.Write([]byte(`{}`))
	})
	m := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.BuildInfo{})
	tp := sdktrace.NewTracerProvider()
	h := telemetry.HTTPTelemetry(zerolog.New(io.Discard), m, tp, handler)
	req := httptest.NewRequest(http.MethodGet, "/v1/users/123", nil)
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
		clear(w.header)
	}
}

type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// TestAccessLineTraceIDs checks the ids in an access line against the
// span's own spelling of them.
func TestAccessLineTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	m := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.BuildInfo{})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h := telemetry.HTTPTelemetry(zerolog.New(&buf), m, tp, http.NotFoundHandler())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	var line struct{ TraceID, SpanID string }
	if err := json.Unmarshal(buf.Bytes(), &struct {
		TraceID *string `json:"trace_id"`
		SpanID  *string `json:"span_id"`
	}{&line.TraceID, &line.SpanID}); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	sc := spans[0].SpanContext()
	if line.TraceID != sc.TraceID().String() || line.SpanID != sc.SpanID().String() {
		t.Errorf("access line ids %s/%s, want the span's %s/%s", line.TraceID, line.SpanID, sc.TraceID(), sc.SpanID())
	}
}
