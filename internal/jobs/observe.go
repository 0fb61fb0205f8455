package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/telemetry"
)

// inserts is River middleware on both of a Queue's clients: on insert it
// stores the caller's trace context in the job's metadata and counts the
// job.
type inserts struct {
	river.MiddlewareDefaults

	propagator propagation.TextMapPropagator
	enqueued   *prometheus.CounterVec
}

var _ rivertype.JobInsertMiddleware = (*inserts)(nil)

func newInserts() *inserts {
	return &inserts{
		propagator: telemetry.Propagator(),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_jobs_inserted_total",
			Help: "Jobs enqueued, by kind, counted at insert: a job whose transaction then rolls back is counted too.",
		}, []string{"kind"}),
	}
}

// observer is River middleware on the workers' client that makes the runs
// of jobs observable: around each run it starts a span linked to the trace
// that enqueued the job, puts a logger with the job's id and kind in the
// context, logs the outcome and records the metrics.
type observer struct {
	river.MiddlewareDefaults

	log        zerolog.Logger
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator

	outcomes *prometheus.CounterVec
	wait     *prometheus.HistogramVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	rescued  *prometheus.CounterVec
	running  atomic.Int64 // jobs running now, of every kind
}

var _ rivertype.WorkerMiddleware = (*observer)(nil)

// The outcomes of one run of a job.
const (
	outcomeCompleted = "completed" // done
	outcomeRetried   = "retried"   // failed; it will run again after a backoff
	outcomeFailed    = "failed"    // failed for good: out of attempts, or cancelled
	outcomeSnoozed   = "snoozed"   // asked to run again later
)

func newObserver(cfg Config, tp trace.TracerProvider) (*observer, error) {
	o := &observer{
		log:        cfg.Log,
		tracer:     tp.Tracer("github.com/usersd/usersd/internal/jobs"),
		propagator: telemetry.Propagator(),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_jobs_runs_total",
			Help: "Runs of jobs by kind and outcome: completed, retried (failed, will run again), failed (for good), snoozed.",
		}, []string{"kind", "outcome"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usersd_job_queue_wait_seconds",
			Help:    "Time from when a job could run (enqueued, or its retry due) to when a worker started it, by kind.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "usersd_job_run_duration_seconds",
			Help:    "Time a job's run took, by kind and outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind", "outcome"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "usersd_jobs_running",
			Help: "Jobs this process is running now, by kind.",
		}, []string{"kind"}),
		rescued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_jobs_rescued_total",
			Help: "Jobs a process that died left running, put back in the queue by this one, by kind and new state (available, discarded when out of attempts, cancelled when cancellation was asked).",
		}, []string{"kind", "state"}),
	}
	if err := cfg.register(o.outcomes, o.wait, o.duration, o.inFlight, o.rescued); err != nil {
		return nil, err
	}
	return o, nil
}

// InsertMany implements rivertype.JobInsertMiddleware.
func (i *inserts) InsertMany(ctx context.Context, params []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	carrier := propagation.MapCarrier{}
	i.propagator.Inject(ctx, carrier)
	for _, p := range params {
		if len(carrier) > 0 {
			md, err := withTrace(p.Metadata, carrier)
			if err != nil {
				return nil, err
			}
			p.Metadata = md
		}
	}
	res, err := doInner(ctx)
	if err == nil {
		for _, p := range params {
			i.enqueued.WithLabelValues(p.Kind).Inc()
		}
	}
	return res, err
}

// traceKey is where a job's metadata keeps the trace context of the code
// that enqueued it (W3C traceparent and tracestate).
const traceKey = "trace"

func withTrace(metadata []byte, carrier propagation.MapCarrier) ([]byte, error) {
	md := map[string]any{}
	if len(metadata) > 0 {
		if err := json.Unmarshal(metadata, &md); err != nil {
			return nil, fmt.Errorf("jobs: job metadata: %w", err)
		}
	}
	md[traceKey] = map[string]string(carrier)
	return json.Marshal(md)
}

func enqueuedBy(metadata []byte) propagation.MapCarrier {
	var md struct {
		Trace map[string]string `json:"trace"`
	}
	if json.Unmarshal(metadata, &md) != nil {
		return nil
	}
	return md.Trace
}

// Work implements rivertype.WorkerMiddleware.
func (o *observer) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	start := time.Now()
	o.wait.WithLabelValues(job.Kind).Observe(max(0, start.Sub(job.ScheduledAt).Seconds()))

	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "river"),
			attribute.Int64("job.id", job.ID),
			attribute.String("job.kind", job.Kind),
			attribute.Int("job.attempt", job.Attempt),
			attribute.String("job.queue", job.Queue),
		),
	}
	if c := enqueuedBy(job.Metadata); c != nil {
		if sc := trace.SpanContextFromContext(o.propagator.Extract(context.Background(), c)); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
	}
	ctx, span := o.tracer.Start(ctx, "job "+job.Kind, opts...)
	defer span.End()
	sc := span.SpanContext()
	lc := o.log.With().Int64("job_id", job.ID).Str("kind", job.Kind).Int("attempt", job.Attempt)
	if sc.IsValid() {
		lc = lc.Str("trace_id", sc.TraceID().String()).Str("span_id", sc.SpanID().String())
	}
	log := lc.Logger()
	ctx = log.WithContext(ctx)

	gauge := o.inFlight.WithLabelValues(job.Kind)
	gauge.Inc()
	o.running.Add(1)
	err := doInner(ctx)
	o.running.Add(-1)
	gauge.Dec()

	took := time.Since(start)
	outcome := outcomeOf(job, err)
	o.outcomes.WithLabelValues(job.Kind, outcome).Inc()
	o.duration.WithLabelValues(job.Kind, outcome).Observe(took.Seconds())
	var ev *zerolog.Event
	switch outcome {
	case outcomeCompleted, outcomeSnoozed:
		ev = log.Info()
	case outcomeRetried:
		ev = log.Warn().Err(err)
	default:
		ev = log.Error().Err(err)
	}
	if err != nil && outcome != outcomeSnoozed {
		span.RecordError(err)
		span.SetStatus(codes.Error, outcome)
	}
	ev.Str("outcome", outcome).Dur("duration", took).Msg("job run")
	return err
}

func outcomeOf(job *rivertype.JobRow, err error) string {
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	switch {
	case err == nil:
		return outcomeCompleted
	case errors.As(err, &snooze):
		return outcomeSnoozed
	case errors.As(err, &cancel), job.Attempt >= job.MaxAttempts:
		return outcomeFailed
	default:
		return outcomeRetried
	}
}

// depthCollector reports the depth of the queue, read at scrape time.
type depthCollector struct {
	depth depthFunc
	desc  *prometheus.Desc
}

func newDepthCollector(depth depthFunc) *depthCollector {
	return &depthCollector{depth: depth, desc: prometheus.NewDesc("usersd_job_queue_depth",
		"Jobs in the database waiting or running, by kind and state (available, scheduled, retryable, running); read at scrape time.",
		[]string{"kind", "state"}, nil)}
}

// depthFunc counts the jobs that are waiting or running, by kind and state.
type depthFunc func(ctx context.Context) (map[[2]string]int, error)

// depthQuery is the same on both databases.
const depthQuery = `SELECT kind, state, count(*) FROM river_job
WHERE state IN ('available', 'scheduled', 'retryable', 'running') GROUP BY kind, state`

// depthTimeout bounds the query of one scrape.
const depthTimeout = 2 * time.Second

// scanDepth reads the rows of depthQuery.
func scanDepth(rows rows) (map[[2]string]int, error) {
	out := map[[2]string]int{}
	for rows.Next() {
		var kind, state string
		var n int
		if err := rows.Scan(&kind, &state, &n); err != nil {
			return nil, err
		}
		out[[2]string{kind, state}] = n
	}
	return out, rows.Err()
}

// Describe implements prometheus.Collector.
func (d *depthCollector) Describe(ch chan<- *prometheus.Desc) { ch <- d.desc }

// Collect implements prometheus.Collector: it reads the queue depth.
func (d *depthCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), depthTimeout)
	defer cancel()
	counts, err := d.depth(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(d.desc, fmt.Errorf("reading the job queue depth: %w", err))
		return
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
