package telemetry

import (
	"context"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Access logs: exactly one line per request, written by the edge the request
// arrived at. A JSON call is logged by HTTPTelemetry with
// the outcome of the RPC it became; a gRPC call by AccessLogInterceptor.
// Neither logs request bodies, and client errors' messages (which may quote
// input) are logged only at debug level.

// traceFields adds the trace and span ids of ctx's span, in lower-case hex
// as their String methods spell them, without making those strings.
func traceFields(e *zerolog.Event, ctx context.Context) *zerolog.Event {
	sc := trace.SpanContextFromContext(ctx)
	if sc.IsValid() {
		tid, sid := sc.TraceID(), sc.SpanID()
		e = e.Hex("trace_id", tid[:]).Hex("span_id", sid[:])
	}
	return e
}

// level is the level of a request's access line: warn when its store
// failed for a reason of infrastructure (an UNAVAILABLE or ABORTED answer
// with a cause), error when the server failed otherwise, info for the
// rest.
func level(log *zerolog.Logger, code codes.Code, cause error) *zerolog.Event {
	if cause != nil && (code == codes.Unavailable || code == codes.Aborted) {
		return log.Warn()
	}
	if cause != nil || code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		return log.Error()
	}
	return log.Info()
}

// AccessLogInterceptor logs one line per gRPC call that arrived over the
// network. Calls from the in-process gateway connection, which carry the
// HTTP request's Call, are recorded on it instead, for HTTPTelemetry to log.
func AccessLogInterceptor(log zerolog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		call := CallFrom(ctx)
		edge := false
		if call == nil {
			call, edge = &Call{}, true
			ctx = ContextWithCall(ctx, call)
		}

		resp, err := handler(ctx, req)
		code := status.Code(err)
		call.SetRPC(info.FullMethod, code)
		if !edge {
			return resp, err
		}
		_, _, cause, _ := call.RPC()
		e := level(&log, code, cause)
		e = traceFields(e, ctx).
			Str("rpc", info.FullMethod).
			Str("grpc_code", code.String()).
			Float64("duration_ms", ms(time.Since(start)))
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			e = e.Str("peer", p.Addr.String())
		}
		e = withError(e, &log, err, cause)
		e.Msg("grpc request")
		return resp, err
	}
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// withError adds what may be logged of a failure: the hidden cause of an
// internal error always; a client error's message only at debug level.
func withError(e *zerolog.Event, log *zerolog.Logger, err, cause error) *zerolog.Event {
	switch {
	case cause != nil:
		return e.AnErr("error", cause)
	case err != nil && log.GetLevel() <= zerolog.DebugLevel:
		return e.Str("error", status.Convert(err).Message())
	}
	return e
}

// internalErrorBody is the body of the 500 that answers a panic.
const internalErrorBody = `{"code":13,"message":"internal error","details":[]}`

// logHTTP writes the access line of an HTTP request on route (its label:
// the template, or "unmatched"), answered with status and bytes of body
// after elapsed; ctx carries its span.
func logHTTP(log *zerolog.Logger, ctx context.Context, r *http.Request, call *Call, route string, status int, bytes int64, elapsed time.Duration, stack []byte) {
	rpc, code, cause, ranRPC := call.RPC()
	if !ranRPC {
		code = codes.OK
		if status >= 500 {
			code = codes.Internal
		}
	}
	e := level(log, code, cause)
	e = traceFields(e, ctx).
		Str("method", r.Method).
		Str("route", route).
		Int("status", status).
		Float64("duration_ms", ms(elapsed)).
		Str("peer", r.RemoteAddr).
		Int64("bytes", bytes)
	if ranRPC {
		e = e.Str("rpc", rpc).Str("grpc_code", code.String())
	}
	if cause != nil {
		e = e.AnErr("error", cause)
	}
	if stack != nil {
		e = e.Bytes("stack", stack)
	}
	e.Msg("http request")
}
