package telemetry

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// grpcMetrics are the unary grpc_server_* metrics that go-grpc-middleware's
// Prometheus provider (grpcprom.NewServerMetrics with the handling-time
// histogram on DefBuckets) exports: the same families, help, labels, values
// and exemplars. The provider looks each call's five series up by their
// label values (hashing them) and builds the label slices on every call;
// grpcMetrics looks a method's series up once and keeps them, which took
// the metrics interceptor from 3.7% of an HTTP GetUser's CPU to 1.7% (1%
// of a gRPC GetUser's) in docs/performance.md's profiles.
// Series are made when the provider would make them, not before: started
// and received as a call starts, sent after a call that succeeded,
// handled and handling_seconds after each call.
type grpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec
	exemplar                         func(context.Context) prometheus.Labels

	methods sync.Map // full method name → *grpcMethod
}

func newGRPCMetrics(exemplar func(context.Context) prometheus.Labels) *grpcMetrics {
	rpc := []string{"grpc_type", "grpc_service", "grpc_method"}
	return &grpcMetrics{
		exemplar: exemplar,
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total",
			Help: "Total number of RPCs started on the server.",
		}, rpc),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "Total number of RPCs completed on the server, regardless of success or failure.",
		}, append(rpc[:3:3], "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_received_total",
			Help: "Total number of RPC stream messages received on the server.",
		}, rpc),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_msg_sent_total",
			Help: "Total number of gRPC stream messages sent by the server.",
		}, rpc),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: prometheus.DefBuckets,
		}, rpc),
	}
}

// collectors are the metric vectors, to register.
func (g *grpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.started, g.handled, g.received, g.sent, g.handling}
}

// grpcMethod holds one method's series once made.
type grpcMethod struct {
	service, method   string
	started, received prometheus.ExemplarAdder
	sent              made[prometheus.ExemplarAdder]
	handling          made[prometheus.ExemplarObserver]
	handled           [17]made[prometheus.ExemplarAdder] // by code, OK to Unauthenticated
}

// made is a series made on first use.
type made[T any] struct{ p atomic.Pointer[T] }

// get returns the series, making it with mk the first time. Two calls
// racing to make it get the same child of the vector.
func (s *made[T]) get(mk func() T) T {
	if p := s.p.Load(); p != nil {
		return *p
	}
	v := mk()
	s.p.Store(&v)
	return v
}

// method returns the series of fullMethod, making the started and received
// ones, as a call of it starts.
func (g *grpcMetrics) method(fullMethod string) *grpcMethod {
	if m, ok := g.methods.Load(fullMethod); ok {
		return m.(*grpcMethod)
	}
	m := &grpcMethod{}
	m.service, m.method = splitMethod(fullMethod)
	m.started = g.started.WithLabelValues("unary", m.service, m.method).(prometheus.ExemplarAdder)
	m.received = g.received.WithLabelValues("unary", m.service, m.method).(prometheus.ExemplarAdder)
	actual, _ := g.methods.LoadOrStore(fullMethod, m)
	return actual.(*grpcMethod)
}

// splitMethod splits "/pkg.Service/Method" as the provider does.
func splitMethod(fullMethod string) (service, method string) {
	fullMethod = strings.TrimPrefix(fullMethod, "/")
	if i := strings.Index(fullMethod, "/"); i >= 0 {
		return fullMethod[:i], fullMethod[i+1:]
	}
	return "unknown", "unknown"
}

// unaryServerInterceptor counts and times unary calls as the provider's
// UnaryServerInterceptor with grpcprom.WithExemplarFromContext(g.exemplar)
// does: one exemplar, taken as the call starts, on each of its series.
func (g *grpcMetrics) unaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		m := g.method(info.FullMethod)
		ex := g.exemplar(ctx)
		m.started.AddWithExemplar(1, ex)
		m.received.AddWithExemplar(1, ex)

		resp, err := handler(ctx, req)

		if err == nil {
			m.sent.get(func() prometheus.ExemplarAdder {
				return g.sent.WithLabelValues("unary", m.service, m.method).(prometheus.ExemplarAdder)
			}).AddWithExemplar(1, ex)
		}
		code := grpcprom.FromError(err).Code()
		handled := func() prometheus.ExemplarAdder {
			return g.handled.WithLabelValues("unary", m.service, m.method, code.String()).(prometheus.ExemplarAdder)
		}
		if int(code) < len(m.handled) {
			m.handled[code].get(handled).AddWithExemplar(1, ex)
		} else {
			handled().AddWithExemplar(1, ex)
		}
		m.handling.get(func() prometheus.ExemplarObserver {
			return g.handling.WithLabelValues("unary", m.service, m.method).(prometheus.ExemplarObserver)
		}).ObserveWithExemplar(time.Since(start).Seconds(), ex)
		return resp, err
	}
}
