package telemetry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGRPCMetricsAreTheProvider checks that grpcMetrics exports what
// go-grpc-middleware's provider, configured as NewMetrics configured it
// before, exports for the same calls: families, help, labels, counts and
// exemplars (durations aside), for successes, status errors, context
// errors, plain errors, codes beyond the known ones and odd method names,
// with and without a sampled span.
func TestGRPCMetricsAreTheProvider(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	sampled, span := tp.Tracer("test").Start(context.Background(), "call")
	defer span.End()

	// Each gets its own gate, open for the first call only.
	providerGate := &exemplarGate{interval: time.Hour}
	provider := grpcprom.NewServerMetrics(
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(prometheus.DefBuckets)),
	)
	providerReg := prometheus.NewRegistry()
	providerReg.MustRegister(provider)
	providerIC := provider.UnaryServerInterceptor(grpcprom.WithExemplarFromContext(providerGate.exemplar))

	oursGate := &exemplarGate{interval: time.Hour}
	ours := newGRPCMetrics(oursGate.exemplar)
	oursReg := prometheus.NewRegistry()
	oursReg.MustRegister(ours.collectors()...)
	oursIC := ours.unaryServerInterceptor()

	calls := []struct {
		ctx    context.Context
		method string
		err    error
	}{
		{sampled, "/users.v1.UserService/GetUser", nil},
		{sampled, "/users.v1.UserService/GetUser", status.Error(codes.NotFound, "no")},
		{context.Background(), "/users.v1.UserService/GetUser", nil},
		{context.Background(), "/users.v1.UserService/CreateUser", context.Canceled},
		{context.Background(), "/users.v1.UserService/CreateUser", context.DeadlineExceeded},
		{context.Background(), "/users.v1.UserService/CreateUser", errors.New("plain")},
		{context.Background(), "/users.v2.UserService/GetUser", status.Error(codes.Code(42), "odd")},
		{context.Background(), "/users.v2.UserService/GetUser", status.Error(codes.Code(42), "odd")},
		{context.Background(), "nomethod", nil},
		{sampled, "/grpc.health.v1.Health/Check", status.Error(codes.Unauthenticated, "who")},
	}
	for _, c := range calls {
		info := &grpc.UnaryServerInfo{FullMethod: c.method}
		handler := func(context.Context, any) (any, error) { return "resp", c.err }
		for _, ic := range []grpc.UnaryServerInterceptor{providerIC, oursIC} {
			if _, err := ic(c.ctx, "req", info, handler); err != c.err {
				t.Fatalf("%s: err %v, want %v", c.method, err, c.err)
			}
		}
	}
	want, got := exposition(t, providerReg), exposition(t, oursReg)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("grpc_server_* (-provider +ours):\n%s", diff)
	}
	if !strings.Contains(got, span.SpanContext().TraceID().String()) {
		t.Errorf("no exemplar of the sampled call:\n%s", got)
	}
}

var (
	// An exemplar's timestamp, after its value.
	exemplarTime = regexp.MustCompile(`(# \{[^}]*\} \S+) \S+$`)
	// A duration: the sum, and the buckets (with their exemplar), which a
	// slow call could move.
	duration = regexp.MustCompile(`^(grpc_server_handling_seconds_(sum|bucket)\{[^}]*\}) .*$`)
)

// exposition is reg's OpenMetrics exposition, durations left out.
func exposition(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	w := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}).ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Body)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		l = duration.ReplaceAllString(l, "$1 DURATION")
		l = exemplarTime.ReplaceAllString(l, "$1 TIME")
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// BenchmarkGRPCMetrics measures the metrics interceptor around a call that
// does nothing, with a sampled span: go-grpc-middleware's provider and
// grpcMetrics.
func BenchmarkGRPCMetrics(b *testing.B) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tp.Tracer("test").Start(context.Background(), "call")
	defer span.End()
	gate := &exemplarGate{interval: exemplarInterval}
	provider := grpcprom.NewServerMetrics(
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(prometheus.DefBuckets)),
	)
	info := &grpc.UnaryServerInfo{FullMethod: "/users.v1.UserService/GetUser"}
	handler := func(context.Context, any) (any, error) { return "resp", nil }
	for _, bc := range []struct {
		name string
		ic   grpc.UnaryServerInterceptor
	}{
		{"provider", provider.UnaryServerInterceptor(grpcprom.WithExemplarFromContext(gate.exemplar))},
		{"grpcMetrics", newGRPCMetrics(gate.exemplar).unaryServerInterceptor()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.ic(ctx, "req", info, handler)
			}
		})
	}
}
