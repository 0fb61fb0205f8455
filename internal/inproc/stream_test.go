package inproc_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/testkit"
)

// watcher is a Health service whose Watch sends n statuses, each in a new
// message (a message sent is not the handler's to change), after setting
// a header; then it sets a trailer and returns err.
// failAt > 0 fails the stream at that message instead. block makes it wait,
// after its first message, for its context to end.
type watcher struct {
	healthpb.UnimplementedHealthServer
	n, failAt int
	err       error
	block     bool

	seen     seen
	sendErr  error       // the error of the SendMsg that failed, if one did
	returned atomic.Bool // Watch has returned
}

func (w *watcher) Watch(req *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	defer w.returned.Store(true)
	ctx := stream.Context()
	w.seen.method, _ = grpc.Method(ctx)
	w.seen.incoming, _ = metadata.FromIncomingContext(ctx)
	w.seen.peer, _ = peer.FromContext(ctx)
	w.seen.deadline, _ = ctx.Deadline()
	req.Service = "changed by the server"
	if err := grpc.SetHeader(ctx, metadata.Pairs("h", "1")); err != nil {
		return err
	}
	for i := 1; i <= w.n; i++ {
		if i == w.failAt {
			return status.Error(codes.Unavailable, "failed mid-stream")
		}
		msg := &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_ServingStatus(i % 4)}
		if err := stream.Send(msg); err != nil {
			w.sendErr = err
			return err
		}
		if i == 1 {
			// The header is final once a message went.
			if err := grpc.SetHeader(ctx, metadata.Pairs("late", "1")); err == nil {
				return errors.New("SetHeader after the first message succeeded")
			}
		}
		if w.block {
			for {
				if err := stream.Send(msg); err != nil {
					w.sendErr = err
					return err
				}
			}
		}
	}
	stream.SetTrailer(metadata.Pairs("t", "2"))
	return w.err
}

// recvAll reads the stream to its end and returns the statuses and the
// final error (nil for io.EOF).
func recvAll(stream grpc.ServerStreamingClient[healthpb.HealthCheckResponse]) ([]healthpb.HealthCheckResponse_ServingStatus, error) {
	var got []healthpb.HealthCheckResponse_ServingStatus
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, m.GetStatus())
	}
}

func TestStream(t *testing.T) {
	var intercepted []string
	var endedBeforeEOF atomic.Bool
	conn := inproc.New(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		r := req.(*healthpb.HealthCheckRequest)
		intercepted = append(intercepted, info.FullMethod+" "+r.GetService())
		resp, err := handler(ctx, req)
		endedBeforeEOF.Store(true)
		return resp, err
	})
	srv := &watcher{n: 5}
	healthpb.RegisterHealthServer(conn, srv)

	ctx := metadata.AppendToOutgoingContext(context.Background(), "idempotency-key", "k1")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	want, _ := ctx.Deadline()
	req := &healthpb.HealthCheckRequest{Service: "users"}
	var header, trailer metadata.MD
	var p peer.Peer
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if h, err := stream.Header(); err != nil || h.Get("h")[0] != "1" || len(h.Get("late")) != 0 {
		t.Errorf("Header() = %v, %v; want h=1 before the end of the stream", h, err)
	}
	got, err := recvAll(stream)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	wantStatuses := []healthpb.HealthCheckResponse_ServingStatus{1, 2, 3, 0, 1}
	if !equal(got, wantStatuses) {
		t.Errorf("received %v, want %v: each message as sent, in order", got, wantStatuses)
	}
	if !endedBeforeEOF.Load() || !srv.returned.Load() {
		t.Error("Recv returned io.EOF before the interceptor and the handler returned")
	}
	const method = "/grpc.health.v1.Health/Watch"
	if len(intercepted) != 1 || intercepted[0] != method+" users" {
		t.Errorf("interceptor saw %v, want one call of %s with the request", intercepted, method)
	}
	if req.GetService() != "users" {
		t.Errorf("the server changed the caller's request: %v", req)
	}
	s := srv.seen
	if s.method != method || s.incoming.Get("idempotency-key")[0] != "k1" || s.peer == nil || s.peer.Addr.Network() != inproc.Network || !s.deadline.Equal(want) {
		t.Errorf("the service saw method %q, metadata %v, peer %v, deadline %v; want %s, the caller's metadata and deadline, the inproc peer",
			s.method, s.incoming, s.peer, s.deadline, method)
	}
	if header.Get("h")[0] != "1" || trailer.Get("t")[0] != "2" || stream.Trailer().Get("t")[0] != "2" {
		t.Errorf("header %v, trailer %v, want h=1 and t=2", header, trailer)
	}
	if p.Addr == nil || p.Addr.Network() != inproc.Network {
		t.Errorf("grpc.Peer gave %v, want the inproc peer", p)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestStreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		srv  *watcher
		want codes.Code
		n    int
	}{
		{"before the first message", &watcher{n: 3, failAt: 1}, codes.Unavailable, 0},
		{"after messages", &watcher{n: 3, failAt: 3}, codes.Unavailable, 2},
		{"at the end", &watcher{n: 2, err: status.Error(codes.ResourceExhausted, "x")}, codes.ResourceExhausted, 2},
		{"not a status", &watcher{n: 1, err: errors.New("plain")}, codes.Unknown, 1},
		{"a context error", &watcher{n: 1, err: context.DeadlineExceeded}, codes.DeadlineExceeded, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := inproc.New(nil)
			healthpb.RegisterHealthServer(conn, tc.srv)
			stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvAll(stream)
			if status.Code(err) != tc.want || len(got) != tc.n {
				t.Errorf("%d messages then %v, want %d then %v", len(got), err, tc.n, tc.want)
			}
			if h, err := stream.Header(); err != nil || h.Get("h")[0] != "1" {
				t.Errorf("Header() = %v, %v; want h=1", h, err)
			}
			// The end is sticky.
			if _, again := stream.Recv(); status.Code(again) != tc.want {
				t.Errorf("Recv after the end: %v, want %v", again, tc.want)
			}
		})
	}
}

// TestStreamInterceptorError: a call the interceptor refuses runs no
// handler, and its status (and header) reach the client.
func TestStreamInterceptorError(t *testing.T) {
	conn := inproc.New(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		_ = grpc.SetHeader(ctx, metadata.Pairs("www-authenticate", "Bearer"))
		return nil, status.Error(codes.Unauthenticated, "no")
	})
	srv := &watcher{n: 3}
	healthpb.RegisterHealthServer(conn, srv)
	stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := stream.Header(); err != nil || h.Get("www-authenticate")[0] != "Bearer" {
		t.Errorf("Header() = %v, %v; want the interceptor's", h, err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Recv: %v, want UNAUTHENTICATED", err)
	}
	if srv.returned.Load() {
		t.Error("the handler ran")
	}
}

// TestStreamCancel: a caller that cancels ends the handler's SendMsg with
// CANCELED, and Recv returns once the handler has returned.
func TestStreamCancel(t *testing.T) {
	conn := inproc.New(nil)
	srv := &watcher{n: 1, block: true}
	healthpb.RegisterHealthServer(conn, srv)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := stream.Recv(); err != nil {
			t.Fatalf("Recv: %v", err)
		}
	}
	cancel()
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled && err != nil {
		t.Errorf("Recv after cancel: %v, want CANCELED", err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.Canceled {
				t.Errorf("Recv after cancel: %v, want CANCELED", err)
			}
			break
		}
	}
	if !srv.returned.Load() || status.Code(srv.sendErr) != codes.Canceled {
		t.Errorf("after Recv failed: handler returned %t, its SendMsg err %v; want returned, CANCELED", srv.returned.Load(), srv.sendErr)
	}
}

// TestStreamDeadline: the interceptor's deadline is the stream's.
func TestStreamDeadline(t *testing.T) {
	conn := inproc.New(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return handler(ctx, req)
	})
	srv := &watcher{n: 1, block: true}
	healthpb.RegisterHealthServer(conn, srv)
	stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Read one message, then stop reading: the handler waits in SendMsg
	// until its deadline.
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	var err2 error
	for err2 == nil {
		_, err2 = stream.Recv()
	}
	if status.Code(err2) != codes.DeadlineExceeded || status.Code(srv.sendErr) != codes.DeadlineExceeded {
		t.Errorf("Recv: %v, the handler's SendMsg: %v; want DEADLINE_EXCEEDED", err2, srv.sendErr)
	}
}

// TestStreamUnsupported: a second request, and streams that are not
// server-streaming, are errors.
func TestStreamUnsupported(t *testing.T) {
	conn := inproc.New(nil)
	healthpb.RegisterHealthServer(conn, &watcher{n: 1})
	desc := &healthpb.Health_ServiceDesc.Streams[0]
	stream, err := conn.NewStream(context.Background(), desc, "/grpc.health.v1.Health/Watch")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&healthpb.HealthCheckRequest{}); status.Code(err) != codes.Internal {
		t.Errorf("a second request: %v, want INTERNAL", err)
	}
	for stream.RecvMsg(&healthpb.HealthCheckResponse{}) == nil {
	}
	up := &grpc.StreamDesc{StreamName: "Up", ClientStreams: true}
	if _, err := conn.NewStream(context.Background(), up, "/grpc.health.v1.Health/Watch"); status.Code(err) != codes.Unimplemented {
		t.Errorf("a client stream: %v, want UNIMPLEMENTED", err)
	}
	if _, err := conn.NewStream(context.Background(), desc, "/grpc.health.v1.Health/Nope"); status.Code(err) != codes.Unimplemented {
		t.Errorf("an unknown stream: %v, want UNIMPLEMENTED", err)
	}
}

// sender is a Health service whose Watch sends n new messages, keeping
// them, then fails with err (nil: ends).
type sender struct {
	healthpb.UnimplementedHealthServer
	n    int
	err  error
	sent []*healthpb.HealthCheckResponse
}

func (s *sender) Watch(_ *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	for i := range s.n {
		m := &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_ServingStatus(i % 4)}
		s.sent = append(s.sent, m)
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return s.err
}

// TestRecv: Recv takes each message the handler sent, itself, then ends as
// RecvMsg does; on a stream that is not a Conn's, it is the stream's Recv.
func TestRecv(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{{"to the end", nil, codes.OK}, {"failed", status.Error(codes.Unavailable, "gone"), codes.Unavailable}} {
		t.Run(tc.name, func(t *testing.T) {
			conn := inproc.New(nil)
			srv := &sender{n: 5, err: tc.err}
			healthpb.RegisterHealthServer(conn, srv)
			stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var got []*healthpb.HealthCheckResponse
			for {
				m, err := inproc.Recv[healthpb.HealthCheckRequest](stream)
				if err != nil {
					if (tc.err == nil && err != io.EOF) || (tc.err != nil && status.Code(err) != tc.want) {
						t.Errorf("Recv ended with %v, want %v", err, tc.want)
					}
					break
				}
				got = append(got, m)
			}
			if !equal(got, srv.sent) {
				t.Errorf("Recv returned %p, want the messages sent, %p", got, srv.sent)
			}
		})
	}

	other := &grpc.GenericClientStream[healthpb.HealthCheckRequest, healthpb.HealthCheckResponse]{ClientStream: oneMessage{}}
	if m, err := inproc.Recv[healthpb.HealthCheckRequest](other); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Recv on another connection's stream = %v, %v; want the stream's message", m, err)
	}
}

// oneMessage is a client stream of another connection than a Conn, whose
// RecvMsg gives a SERVING status.
type oneMessage struct{ grpc.ClientStream }

func (oneMessage) RecvMsg(m any) error {
	m.(*healthpb.HealthCheckResponse).Status = healthpb.HealthCheckResponse_SERVING
	return nil
}

// counter is a Health service whose Watch sends n new messages, counting
// those SendMsg took, then returns err.
type counter struct {
	healthpb.UnimplementedHealthServer
	n        int
	err      error
	sent     atomic.Int64
	returned chan struct{}
}

func (c *counter) Watch(_ *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	defer close(c.returned)
	for i := range c.n {
		if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_ServingStatus(i % 4)}); err != nil {
			return err
		}
		c.sent.Add(1)
	}
	return c.err
}

// TestStreamWindow: a handler runs at most StreamWindow messages ahead of
// a client that does not read; what it sent before it returned reaches
// the client, in order, before the end it returned.
func TestStreamWindow(t *testing.T) {
	conn := inproc.New(nil)
	srv := &counter{n: 3 * inproc.StreamWindow, returned: make(chan struct{})}
	healthpb.RegisterHealthServer(conn, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "the handler filled the window", func() bool { return srv.sent.Load() >= inproc.StreamWindow })
	time.Sleep(20 * time.Millisecond) // for a message too many
	if got := srv.sent.Load(); got != inproc.StreamWindow {
		t.Errorf("the handler sent %d messages to a client that read none, want %d (the window)", got, inproc.StreamWindow)
	}
	cancel()
	<-srv.returned

	for _, end := range []error{nil, status.Error(codes.Aborted, "after its messages")} {
		conn := inproc.New(nil)
		srv := &counter{n: inproc.StreamWindow / 2, err: end, returned: make(chan struct{})}
		healthpb.RegisterHealthServer(conn, srv)
		stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		<-srv.returned
		time.Sleep(time.Millisecond) // the call's end recorded
		got, err := recvAll(stream)
		if len(got) != srv.n || status.Code(err) != status.Code(end) {
			t.Errorf("a handler that sent %d messages and returned %v: the client got %d, then %v", srv.n, end, len(got), err)
		}
		for i, st := range got {
			if st != healthpb.HealthCheckResponse_ServingStatus(i%4) {
				t.Errorf("message %d = %v: out of order", i, st)
				break
			}
		}
	}
}
