package telemetry

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// GRPCSpans returns the interceptors that give each call of the gRPC
// transport a server span, continued from the caller's trace context,
// except the calls of the methods untraced reports (health checks,
// reflection), which run in the caller's trace all the same. Install them
// first, so that everything after them, the access line included, runs in
// the span.
//
// The span is the one otelgrpc's stats handler made (v0.72: named after
// the method, with rpc.method, rpc.system.name, server.address,
// server.port and rpc.response.status_code; an error status for the codes
// a server is to blame for), its attributes recorded in one call at the
// end. As interceptors rather than a stats handler, they spare each call
// grpc-go's stats events and the copy of the call's metadata made for
// them, and read the trace context without copying the metadata
// (docs/performance.md, "The request path, fourth pass"). The span covers
// the interceptors and the handler, not grpc-go's reading of the request
// and writing of the response; a call that never reaches the interceptors
// (an unknown method) has no span.
func GRPCSpans(tp trace.TracerProvider, untraced func(fullMethod string) bool) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	s := &grpcSpans{tracer: tp.Tracer(tracerName), propagator: Propagator(), untraced: untraced}
	return s.unary, s.stream
}

type grpcSpans struct {
	tracer     trace.Tracer
	propagator propagation.TextMapPropagator
	untraced   func(string) bool
}

func (s *grpcSpans) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx = s.extract(ctx)
	if s.untraced != nil && s.untraced(info.FullMethod) {
		return handler(ctx, req)
	}
	ctx, span := s.start(ctx, info.FullMethod)
	resp, err := handler(ctx, req)
	s.end(ctx, span, info.FullMethod, err)
	return resp, err
}

func (s *grpcSpans) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := s.extract(ss.Context())
	if s.untraced != nil && s.untraced(info.FullMethod) {
		return handler(srv, &spanStream{ServerStream: ss, ctx: ctx})
	}
	ctx, span := s.start(ctx, info.FullMethod)
	err := handler(srv, &spanStream{ServerStream: ss, ctx: ctx})
	s.end(ctx, span, info.FullMethod, err)
	return err
}

// extract returns ctx in the caller's trace, when the call's metadata
// names one.
func (s *grpcSpans) extract(ctx context.Context) context.Context {
	return s.propagator.Extract(ctx, incomingCarrier{ctx})
}

// start starts the server span of the call to method.
func (s *grpcSpans) start(ctx context.Context, method string) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, strings.TrimPrefix(method, "/"), trace.WithSpanKind(trace.SpanKindServer))
}

// end records the call's outcome on its span and ends it.
func (s *grpcSpans) end(ctx context.Context, span trace.Span, method string, err error) {
	if !span.IsRecording() {
		span.End()
		return
	}
	code := codes.OK
	if err != nil {
		st, _ := status.FromError(err)
		code = st.Code()
		switch code {
		case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
			span.SetStatus(otelcodes.Error, st.Message())
		}
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, semconv.RPCMethod(strings.TrimPrefix(method, "/")), semconv.RPCSystemNameGRPC)
	if p, ok := peer.FromContext(ctx); ok && p.LocalAddr != nil {
		host, port := splitHostPort(p.LocalAddr.String())
		attrs = append(attrs, semconv.ServerAddress(host))
		if port > 0 {
			attrs = append(attrs, semconv.ServerPort(port))
		}
	}
	attrs = append(attrs, semconv.RPCResponseStatusCode(canonicalCodes[min(int(code), len(canonicalCodes)-1)]))
	span.SetAttributes(attrs...)
	span.End()
}

// canonicalCodes spells the status codes as the conventions do, by code;
// the last stands for any code beyond them.
var canonicalCodes = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED", "UNKNOWN",
}

// spanStream is a stream whose context holds its span.
type spanStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *spanStream) Context() context.Context { return s.ctx }

// incomingCarrier reads a propagator's fields from the call's incoming
// metadata without copying it.
type incomingCarrier struct{ ctx context.Context }

func (c incomingCarrier) Get(key string) string {
	if v := metadata.ValueFromIncomingContext(c.ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c incomingCarrier) Set(string, string) {}

func (c incomingCarrier) Keys() []string {
	md, _ := metadata.FromIncomingContext(c.ctx)
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	return keys
}
