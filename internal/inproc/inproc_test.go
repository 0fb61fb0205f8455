package inproc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/inproc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen is what the service saw of a call.
type seen struct {
	method   string
	incoming metadata.MD
	outgoing metadata.MD
	peer     *peer.Peer
	span     trace.SpanContext
	tenant   string
	deadline time.Time
	ctxErr   error
}

// health is a Health service that records what it sees, sets a header and
// a trailer, and modifies the request it was given.
type health struct {
	healthpb.UnimplementedHealthServer
	seen seen
	err  error
}

func (h *health) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.seen.method, _ = grpc.Method(ctx)
	h.seen.incoming, _ = metadata.FromIncomingContext(ctx)
	h.seen.outgoing, _ = metadata.FromOutgoingContext(ctx)
	h.seen.peer, _ = peer.FromContext(ctx)
	h.seen.span = trace.SpanContextFromContext(ctx)
	h.seen.tenant = baggage.FromContext(ctx).Member("tenant").Value()
	h.seen.deadline, _ = ctx.Deadline()
	h.seen.ctxErr = ctx.Err()
	req.Service = "changed by the server"
	if err := grpc.SetHeader(ctx, metadata.Pairs("h", "1")); err != nil {
		return nil, err
	}
	if err := grpc.SetTrailer(ctx, metadata.Pairs("t", "2")); err != nil {
		return nil, err
	}
	if h.err != nil {
		return nil, h.err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func TestInvoke(t *testing.T) {
	var intercepted []string
	conn := inproc.New(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		intercepted = append(intercepted, info.FullMethod)
		return handler(ctx, req)
	})
	srv := &health{}
	healthpb.RegisterHealthServer(conn, srv)
	client := healthpb.NewHealthClient(conn)

	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bag)
	ctx = metadata.AppendToOutgoingContext(ctx, "idempotency-key", "k1")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	want, _ := ctx.Deadline()

	req := &healthpb.HealthCheckRequest{Service: "users"}
	var header, trailer metadata.MD
	var p peer.Peer
	resp, err := client.Check(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("response %v, want SERVING", resp)
	}
	const method = "/grpc.health.v1.Health/Check"
	if len(intercepted) != 1 || intercepted[0] != method {
		t.Errorf("interceptor saw %v, want [%s]", intercepted, method)
	}
	got := srv.seen
	if got.method != method {
		t.Errorf("grpc.Method = %q, want %q", got.method, method)
	}
	if v := got.incoming.Get("idempotency-key"); len(v) != 1 || v[0] != "k1" {
		t.Errorf("incoming metadata %v, want idempotency-key k1", got.incoming)
	}
	if len(got.outgoing) != 0 {
		t.Errorf("the service has outgoing metadata %v, want none", got.outgoing)
	}
	if got.peer == nil || got.peer.Addr.Network() != inproc.Network {
		t.Errorf("peer %v, want one on the %q network", got.peer, inproc.Network)
	}
	if p.Addr == nil || p.Addr.Network() != inproc.Network {
		t.Errorf("grpc.Peer gave %v, want the inproc peer", p)
	}
	if !got.span.Equal(sc) || got.tenant != "acme" {
		t.Errorf("the service saw span %v and baggage tenant=%q, want the caller's %v and acme", got.span, got.tenant, sc)
	}
	if !got.deadline.Equal(want) {
		t.Errorf("deadline %v, want the caller's %v", got.deadline, want)
	}
	if req.GetService() != "users" {
		t.Errorf("the caller's request became %q: the service must get a copy", req.GetService())
	}
	if header.Get("h")[0] != "1" || trailer.Get("t")[0] != "2" {
		t.Errorf("header %v trailer %v, want h=1 and t=2", header, trailer)
	}
}

func TestInvokeError(t *testing.T) {
	conn := inproc.New(nil)
	srv := &health{err: status.Error(codes.ResourceExhausted, "slow down")}
	healthpb.RegisterHealthServer(conn, srv)
	var trailer metadata.MD
	_, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("Check error %v, want the service's RESOURCE_EXHAUSTED", err)
	}
	if trailer.Get("t")[0] != "2" {
		t.Errorf("trailer %v of a failed call, want t=2", trailer)
	}

	// A cancelled caller's context is the service's.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.err = nil
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !errors.Is(srv.seen.ctxErr, context.Canceled) {
		t.Errorf("the service's context error %v, want Canceled", srv.seen.ctxErr)
	}
}

func TestUnsupported(t *testing.T) {
	conn := inproc.New(nil)
	healthpb.RegisterHealthServer(conn, &health{})
	err := conn.Invoke(context.Background(), "/grpc.health.v1.Health/Nope", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("unknown method: %v, want UNIMPLEMENTED", err)
	}
	// Messages of the wrong type are an error, not a panic.
	err = conn.Invoke(context.Background(), "/grpc.health.v1.Health/Check", &healthpb.HealthCheckResponse{}, &healthpb.HealthCheckResponse{})
	if status.Code(err) != codes.Internal {
		t.Errorf("request of the wrong type: %v, want INTERNAL", err)
	}
	err = conn.Invoke(context.Background(), "/grpc.health.v1.Health/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Internal {
		t.Errorf("reply of the wrong type: %v, want INTERNAL", err)
	}
	stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Watch: %v, want UNIMPLEMENTED", err)
	}
}

func TestRegisterTwice(t *testing.T) {
	conn := inproc.New(nil)
	healthpb.RegisterHealthServer(conn, &health{})
	defer func() {
		if recover() == nil {
			t.Error("registering a service twice did not panic")
		}
	}()
	healthpb.RegisterHealthServer(conn, &health{})
}
