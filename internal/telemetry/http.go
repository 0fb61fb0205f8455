package telemetry

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// HTTPTelemetry is the telemetry of the public HTTP API, in one layer with
// one span, one Call, one copy of the request and one response recorder,
// its spans made by tp (nil: none). It
//
//   - starts the request's server span, continued from the caller's
//     traceparent (see httpspan.go), which the access line and the
//     metrics' exemplars refer to;
//   - creates the request's Call unless an outer layer did (an existing one
//     is used as it is); the gateway and the gRPC interceptors fill it in
//     with the route's template and the RPC's outcome;
//   - writes one access line per request: method, route, status, duration,
//     peer, bytes, the trace, and the RPC with its code when the route ran
//     one, at a level that follows that code; and it turns a panic
//     in next into a 500 with a google.rpc.Status body (unless a status
//     went out already) and a logged stack; http.ErrAbortHandler goes on
//     to net/http, with no line;
//   - observes the usersd_http_request_duration_seconds histogram by route,
//     method and status, with a trace_id exemplar (at most one per
//     exemplarInterval) when the request's span is sampled, and the
//     usersd_http_requests_in_flight gauge. The route label is the template
//     on the Call once next has returned, or "unmatched" when none was: the
//     raw path is never used, so the label set stays bounded. Methods other
//     than the standard ones count as "other"; a request that panicked
//     before answering counts as a 500;
//   - names the server span after the route once next has returned, not
//     when next panicked: "GET /v1/users/{id}", with http.route, and the
//     RPC's rpc.* attributes when the route ran one; records the request's
//     and the response's attributes and ends it.
func HTTPTelemetry(log zerolog.Logger, m *Metrics, tp trace.TracerProvider, next http.Handler) http.Handler {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &httpEdge{log: log, m: m, tracer: tp.Tracer(tracerName), propagator: Propagator(), next: next}
}

type httpEdge struct {
	log        zerolog.Logger
	m          *Metrics
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	next       http.Handler
}

func (h *httpEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := h.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := h.tracer.Start(ctx, spanName(r.Method), trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start))
	call := CallFrom(ctx)
	if call == nil {
		ctx, call = WithCall(ctx)
	}
	r = r.WithContext(ctx)
	var body *countingBody
	if span.IsRecording() && r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{ReadCloser: r.Body}
		r.Body = body
	}
	sw := &statusRecorder{ResponseWriter: w}
	h.m.httpInFlight.Inc()
	stack, p := h.serve(sw, r)
	// Observed panic or not: a panic before any status counts as a 500,
	// which is then what goes out.
	h.m.httpInFlight.Dec()
	elapsed := time.Since(start)
	status := sw.status
	if status == 0 {
		status = http.StatusOK
		if p != nil {
			status = http.StatusInternalServerError
		}
	}
	route := call.Route()
	label := route
	if label == "" {
		label = "unmatched"
	}
	h.m.observeHTTP(ctx, label, r.Method, status, elapsed)
	if p == http.ErrAbortHandler {
		// No line, and net/http's own handling; the span has no outcome.
		endSpan(span, r, "", call, 0, 0, 0)
		panic(p)
	}
	spanRoute := route
	if p != nil {
		// The span is named only when next returned.
		spanRoute = ""
		call.SetCause(fmt.Errorf("panic: %v", p))
		if sw.status == 0 {
			http.Error(sw, internalErrorBody, http.StatusInternalServerError)
		}
	}
	endSpan(span, r, spanRoute, call, body.count(), sw.bytes, status)
	logHTTP(&h.log, ctx, r, call, label, status, sw.bytes, elapsed, stack)
}

// serve runs next and returns what it panicked with, if it did, and the
// stack of the panic (none for http.ErrAbortHandler).
func (h *httpEdge) serve(w http.ResponseWriter, r *http.Request) (stack []byte, panicked any) {
	defer func() {
		if panicked = recover(); panicked != nil && panicked != http.ErrAbortHandler {
			stack = debug.Stack()
		}
	}()
	h.next.ServeHTTP(w, r)
	return nil, nil
}
