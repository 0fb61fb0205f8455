package telemetry

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"
)

// HTTPTelemetry is the telemetry of the public HTTP API in one layer: the
// access line of HTTPAccessLog, the span naming of RouteSpan and the metrics
// of Metrics.HTTPMiddleware, with one Call, one copy of the request and one
// response recorder between them. It observes exactly what
//
//	HTTPAccessLog(log, RouteSpan(m.HTTPMiddleware(next)))
//
// does (the same line, span name and attributes, series and exemplars) and
// turns a panic in next into a 500 in the same way. Install it inside the
// tracing middleware, as that chain.
func HTTPTelemetry(log zerolog.Logger, m *Metrics, next http.Handler) http.Handler {
	return &httpEdge{log: log, m: m, next: next}
}

type httpEdge struct {
	log  zerolog.Logger
	m    *Metrics
	next http.Handler
}

func (h *httpEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx, call := r.Context(), CallFrom(r.Context())
	if call == nil {
		ctx, call = WithCall(ctx)
		r = r.WithContext(ctx)
	}
	sw := &statusRecorder{ResponseWriter: w}
	h.m.httpInFlight.Inc()
	stack, p := h.serve(sw, r)
	// What Metrics.HTTPMiddleware observes, panic or not: a panic before
	// any status counts as a 500.
	h.m.httpInFlight.Dec()
	status := sw.status
	if status == 0 {
		status = http.StatusOK
		if p != nil {
			status = http.StatusInternalServerError
		}
	}
	h.m.observeHTTP(ctx, call.Route(), r.Method, status, time.Since(start))
	if p == http.ErrAbortHandler {
		// As HTTPAccessLog: no line, and net/http's own handling.
		panic(p)
	}
	if p != nil {
		call.SetCause(fmt.Errorf("panic: %v", p))
		if sw.status == 0 {
			http.Error(sw, internalErrorBody, http.StatusInternalServerError)
		}
	} else {
		// RouteSpan names the span only when next returned.
		nameSpan(ctx, r.Method, call)
	}
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	logHTTP(&h.log, ctx, r, call, sw.status, sw.bytes, start, stack)
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
