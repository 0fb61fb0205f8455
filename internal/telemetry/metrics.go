package telemetry

import (
	"context"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// BuildInfo describes the binary for the usersd_build_info gauge.
type BuildInfo struct {
	Version   string // release version, e.g. "v1.2.0" or "dev"
	Commit    string // VCS revision
	GoVersion string // toolchain; empty means runtime.Version()
}

// Metrics is the process's Prometheus instrumentation: the gRPC server
// metrics, the HTTP API metrics, the database pool and the rejection
// counter, all on one registry. Its methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	grpcUnary grpc.UnaryServerInterceptor

	httpDuration *prometheus.HistogramVec // route, method, status
	httpInFlight prometheus.Gauge
	rejected     *prometheus.CounterVec // transport
	storeErrors  *prometheus.CounterVec // kind, cause

	grpcExemplars, httpExemplars exemplarGate
}

// NewMetrics registers on reg the Go runtime and process collectors, the
// usersd_build_info gauge (labels version, commit, goversion; value 1), the
// gRPC server metrics (grpc_server_*, with the handling-time histogram),
// the HTTP metrics and the rejection counter. It panics if reg already
// holds any of them, as prometheus.Registry.MustRegister does: give each
// Metrics its own registry.
func NewMetrics(reg *prometheus.Registry, build BuildInfo) *Metrics {
	if build.GoVersion == "" {
		build.GoVersion = runtime.Version()
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "usersd_build_info",
		Help: "Build information about the running usersd binary; the value is always 1.",
		ConstLabels: prometheus.Labels{
			"version":   build.Version,
			"commit":    build.Commit,
			"goversion": build.GoVersion,
		},
	})
	buildInfo.Set(1)

	m := &Metrics{
		reg:           reg,
		grpcExemplars: exemplarGate{interval: exemplarInterval},
		httpExemplars: exemplarGate{interval: exemplarInterval},
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usersd_http_request_duration_seconds",
			Help:    "Time to serve a request of the public HTTP API, by route template, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "status"}),
		httpInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "usersd_http_requests_in_flight",
			Help: "Requests of the public HTTP API being served.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_requests_rejected_total",
			Help: "Requests refused by the in-flight limiter, by transport (http or grpc).",
		}, []string{"transport"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_store_errors_total",
			Help: "API calls that failed for a reason of the store's infrastructure, by kind (unavailable: answered UNAVAILABLE/503; contention: ABORTED/409) and cause (connection_lost, admin_shutdown, read_only, pool_exhausted, sqlite_busy, …).",
		}, []string{"kind", "cause"}),
	}
	for _, t := range []string{"http", "grpc"} {
		m.rejected.WithLabelValues(t) // export zeros so rate() works from the start
	}

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.httpDuration,
		m.httpInFlight,
		m.rejected,
		m.storeErrors,
	)
	grpcMetrics := newGRPCMetrics(m.grpcExemplars.exemplar)
	reg.MustRegister(grpcMetrics.collectors()...)
	m.grpcUnary = grpcMetrics.unaryServerInterceptor()
	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		Registry:          reg,
	}))
	return m
}

// CountStoreError counts one API call that failed for a reason of the
// store's infrastructure; see grpcserver.ChainConfig.CountStoreError.
func (m *Metrics) CountStoreError(kind, cause string) {
	m.storeErrors.WithLabelValues(kind, cause).Inc()
}

// exemplarInterval is the least time between two trace-id exemplars of
// one family of metrics (the gRPC ones, the HTTP ones). Building an
// exemplar costs a few allocations and Prometheus keeps only the latest
// per series and bucket, so under load most would be thrown away unseen:
// at 10,000 requests a second one in ten gets one, still a thousand a
// second, while below 1,000 a second every request does.
const exemplarInterval = time.Millisecond

// exemplarGate hands out at most one exemplar per interval.
type exemplarGate struct {
	interval time.Duration
	next     atomic.Int64 // Unix nanoseconds before which no exemplar is due
}

// exemplar returns the trace-id exemplar of ctx's span, or nil when ctx has
// no span, it is not sampled (an unsampled trace id leads nowhere), or the
// gate's last exemplar is less than its interval old.
func (g *exemplarGate) exemplar(ctx context.Context) prometheus.Labels {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() || !sc.IsSampled() {
		return nil
	}
	now, next := time.Now().UnixNano(), g.next.Load()
	if now < next || !g.next.CompareAndSwap(next, now+int64(g.interval)) {
		return nil
	}
	return prometheus.Labels{"trace_id": sc.TraceID().String()}
}

// UnaryServerInterceptor counts and times every unary RPC:
// grpc_server_started_total, grpc_server_handled_total{grpc_type,
// grpc_service,grpc_method,grpc_code} and the grpc_server_handling_seconds
// histogram, with a trace_id exemplar (at most one per exemplarInterval)
// when the RPC's context carries a sampled span when the interceptor
// starts (for a call from the in-process gateway, the HTTP request's
// span). Put it first in the chain so that it sees the calls later
// interceptors reject. Calls through the gateway are
// counted here too, under their RPC's name.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return m.grpcUnary
}

// observeHTTP records one HTTP request on route (its label: the template,
// or "unmatched") in the duration histogram, with the exemplar of ctx's
// span when one is due.
func (m *Metrics) observeHTTP(ctx context.Context, route, method string, status int, elapsed time.Duration) {
	obs := m.httpDuration.WithLabelValues(route, methodLabel(method), statusLabel(status))
	obs.(prometheus.ExemplarObserver).ObserveWithExemplar(elapsed.Seconds(), m.httpExemplars.exemplar(ctx))
}

// statusLabels are the status labels of the codes from 100 to 599, made
// once: strconv.Itoa allocates for numbers of three digits.
var statusLabels = func() (l [600]string) {
	for code := 100; code < len(l); code++ {
		l[code] = strconv.Itoa(code)
	}
	return l
}()

// statusLabel is the status label: the code in decimal.
func statusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// methodLabel bounds the method label to the standard methods.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// statusRecorder records the status code of the response it passes on.
type statusRecorder struct {
	http.ResponseWriter
	status int   // 0 until the final status is sent
	bytes  int64 // body bytes written
}

func (w *statusRecorder) WriteHeader(code int) {
	// 1xx responses other than 101 are informational; the final one follows.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		// Explicitly, as otelhttp's wrapper did when it was outside this
		// one: net/http sniffs the Content-Type either way, but a writer
		// such as httptest.ResponseRecorder sniffs only on an implicit
		// 200.
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher, which streaming handlers look for.
func (w *statusRecorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// RejectedInc counts one request refused by the in-flight limiter in
// usersd_requests_rejected_total{transport}; transport is "http" or "grpc".
func (m *Metrics) RejectedInc(transport string) {
	m.rejected.WithLabelValues(transport).Inc()
}

// InstrumentPool exports pool's statistics, read from pool.Stat() at each
// scrape, as usersd_db_pool_* metrics. Call it at most once per Metrics; a
// second call panics (duplicate registration).
func (m *Metrics) InstrumentPool(pool *pgxpool.Pool) {
	m.reg.MustRegister(newPoolCollector(pool))
}

// Registerer is the registry, for the metrics of other packages.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Handler serves the registry: OpenMetrics to scrapers that ask for it,
// with exemplars, and the Prometheus text format to the others. Mount it
// on the admin server, not on the public API.
func (m *Metrics) Handler() http.Handler { return m.handler }

// poolCollector reads a pgxpool's statistics at scrape time.
type poolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, constructing, total, max                   *prometheus.Desc
	acquires, acquireSeconds, emptyAcquires, emptyWait         *prometheus.Desc
	canceledAcquires, newConns, lifetimeDestroys, idleDestroys *prometheus.Desc
}

var _ prometheus.Collector = (*poolCollector)(nil)

func newPoolCollector(pool *pgxpool.Pool) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("usersd_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		pool:             pool,
		acquired:         d("acquired_connections", "Connections currently acquired from the database pool."),
		idle:             d("idle_connections", "Idle connections in the database pool."),
		constructing:     d("constructing_connections", "Connections of the database pool being established."),
		total:            d("connections", "Connections in the database pool: acquired, idle and being established."),
		max:              d("max_connections", "Maximum size of the database pool."),
		acquires:         d("acquires_total", "Successful acquires of a connection from the database pool."),
		acquireSeconds:   d("acquire_duration_seconds_total", "Total time spent in successful acquires from the database pool."),
		emptyAcquires:    d("empty_acquires_total", "Successful acquires that waited because the database pool was empty."),
		emptyWait:        d("empty_acquire_wait_seconds_total", "Total time successful acquires waited because the database pool was empty."),
		canceledAcquires: d("canceled_acquires_total", "Acquires from the database pool abandoned because their context ended."),
		newConns:         d("new_connections_total", "Connections opened by the database pool."),
		lifetimeDestroys: d("max_lifetime_closed_connections_total", "Connections closed because they reached the pool's maximum lifetime."),
		idleDestroys:     d("max_idle_closed_connections_total", "Connections closed because they stayed idle for the pool's maximum idle time."),
	}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.acquired, c.idle, c.constructing, c.total, c.max,
		c.acquires, c.acquireSeconds, c.emptyAcquires, c.emptyWait,
		c.canceledAcquires, c.newConns, c.lifetimeDestroys, c.idleDestroys,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v int32) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, s.AcquiredConns())
	gauge(c.idle, s.IdleConns())
	gauge(c.constructing, s.ConstructingConns())
	gauge(c.total, s.TotalConns())
	gauge(c.max, s.MaxConns())
	counter(c.acquires, float64(s.AcquireCount()))
	counter(c.acquireSeconds, s.AcquireDuration().Seconds())
	counter(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	counter(c.emptyWait, s.EmptyAcquireWaitTime().Seconds())
	counter(c.canceledAcquires, float64(s.CanceledAcquireCount()))
	counter(c.newConns, float64(s.NewConnsCount()))
	counter(c.lifetimeDestroys, float64(s.MaxLifetimeDestroyCount()))
	counter(c.idleDestroys, float64(s.MaxIdleDestroyCount()))
}
