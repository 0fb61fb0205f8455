package telemetry_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/telemetry"
)

// TestGRPCSpans checks the gRPC server spans, attribute for attribute as
// otelgrpc's stats handler made them: a span per traced call, continued
// from the caller's traceparent, named after the method, with its
// outcome, an error status only for the codes a server is to blame for;
// none for untraced methods.
func TestGRPCSpans(t *testing.T) {
	tp, exp := newProvider(t, telemetry.TraceConfig{})
	untraced := func(m string) bool { return strings.HasPrefix(m, "/grpc.health.v1.Health/") }
	unary, stream := telemetry.GRPCSpans(tp, untraced)

	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := peer.NewContext(context.Background(), &peer.Peer{
		Addr:      &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234},
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090},
	})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("traceparent", caller))

	var inSpan []bool
	call := func(method string, err error) {
		info := &grpc.UnaryServerInfo{FullMethod: method}
		unary(ctx, nil, info, func(ctx context.Context, _ any) (any, error) {
			inSpan = append(inSpan, strings.HasPrefix(traceparentOf(ctx), "00-0af7651916cd43dd8448eb211c80319c-"))
			return nil, err
		})
	}
	call("/users.v2.UserService/GetUser", nil)
	call("/users.v2.UserService/GetUser", status.Error(codes.NotFound, "no such user"))
	call("/users.v2.UserService/GetUser", status.Error(codes.Unavailable, "database away"))
	call("/users.v2.UserService/GetUser", errors.New("not a status"))
	call("/grpc.health.v1.Health/Check", nil)
	stream(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: "/users.v2.UserService/WatchUserEvents"},
		func(_ any, ss grpc.ServerStream) error {
			inSpan = append(inSpan, strings.HasPrefix(traceparentOf(ss.Context()), "00-0af7651916cd43dd8448eb211c80319c-"))
			return status.Error(codes.Canceled, "gone")
		})

	if want := []bool{true, true, true, true, true, true}; !cmp.Equal(inSpan, want) {
		t.Errorf("handlers ran in the caller's trace: %v, want %v", inSpan, want)
	}
	var got []string
	for _, s := range exp.GetSpans() {
		if s.Parent.SpanID().String() != "b7ad6b7169203331" || !s.Parent.IsRemote() {
			t.Errorf("span %s: parent %v, want the caller's", s.Name, s.Parent)
		}
		line := s.Name + " " + s.SpanKind.String() + " " + s.Status.Code.String() + " " + s.Status.Description
		for _, a := range s.Attributes {
			line += " " + string(a.Key) + "=" + a.Value.String()
		}
		got = append(got, line)
	}
	const attrs = " rpc.system.name=grpc server.address=127.0.0.1 server.port=9090 rpc.response.status_code="
	want := []string{
		"users.v2.UserService/GetUser server Unset  rpc.method=users.v2.UserService/GetUser" + attrs + "OK",
		"users.v2.UserService/GetUser server Unset  rpc.method=users.v2.UserService/GetUser" + attrs + "NOT_FOUND",
		"users.v2.UserService/GetUser server Error database away rpc.method=users.v2.UserService/GetUser" + attrs + "UNAVAILABLE",
		"users.v2.UserService/GetUser server Error not a status rpc.method=users.v2.UserService/GetUser" + attrs + "UNKNOWN",
		"users.v2.UserService/WatchUserEvents server Unset  rpc.method=users.v2.UserService/WatchUserEvents" + attrs + "CANCELLED",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

// traceparentOf returns the traceparent of ctx's span.
func traceparentOf(ctx context.Context) string {
	c := propagation.MapCarrier{}
	telemetry.Propagator().Inject(ctx, c)
	return c["traceparent"]
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context { return s.ctx }
