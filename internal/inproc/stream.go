package inproc

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Server-streaming calls. A call is unary on the way in (one request) and
// a stream on the way out, and it runs behind the Conn's interceptor as
// a unary call would: the interceptor sees the request, and its handler
// runs the method's stream handler to the end and returns no response,
// only the handler's error. So every interceptor of the unary chain
// (metrics, access log, deadline, authentication, rate limit, error
// mapping, validation) applies to the stream as to any call of the Conn,
// and sees it end when its last message has been sent.
//
// The handler runs in a goroutine of its own, started when the client
// sends the request, with the caller's context as a unary call has it
// (the caller's metadata as incoming metadata, the inproc peer,
// grpc.Method, grpc.SetHeader, SendHeader and SetTrailer). The messages
// the handler sends go to the client through a queue of at most
// streamWindow, as over the network flow control lets a sender run ahead
// of its reader by a window: SendMsg returns once its message is queued,
// and the handler works on the next while the client reads, each in its
// goroutine; a client that reads slowly slows the handler once the queue
// is full, and memory stays bounded. The client's RecvMsg copies each
// message into its own; Recv takes the message itself. So, as grpc-go's
// ServerStream.SendMsg says, a handler must not modify a message once it
// has sent it, nor anything the message holds (the race detector catches
// one that does in the tests that run it). The header is final at the
// first message (or SendHeader); Header waits for it, or for the end of
// the call. The client receives every message the handler sent before it
// returned, then the end: io.EOF, or the handler's status. When the
// caller's context ends, SendMsg fails with its status, and RecvMsg
// returns that status, dropping the messages queued, once the handler has
// returned: a call that RecvMsg saw end is over.
//
// Client-streaming and bidirectional methods are not served: NewStream
// answers them Unimplemented.

// streamWindow is how many messages a handler may send ahead of its
// client. A few dozen let the two run side by side (an export's handler
// reads and converts users while the gateway writes the ones before):
// with none, each message went from one goroutine to the other and back,
// and an export ran at about two thirds of the speed.
const streamWindow = 32

// streamMethod is a registered server-streaming method.
type streamMethod struct {
	impl    any
	handler grpc.StreamHandler
}

// NewStream starts a call of the server-streaming method fullMethod; the
// handler runs once the request is sent (SendMsg). Other methods are
// Unimplemented.
func (c *Conn) NewStream(ctx context.Context, desc *grpc.StreamDesc, fullMethod string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	m, ok := c.streams[fullMethod]
	if !ok || desc == nil || desc.ClientStreams || !desc.ServerStreams {
		return nil, status.Errorf(codes.Unimplemented, "inproc: %s is not a server-streaming method of the services registered", fullMethod)
	}
	return &clientStream{
		conn: c, method: m, fullMethod: fullMethod, ctx: ctx, opts: opts,
		started: make(chan struct{}),
		msgs:    make(chan proto.Message, streamWindow),
		done:    make(chan struct{}),
		ts:      &transportStream{method: fullMethod, headerSent: make(chan struct{})},
	}, nil
}

// clientStream is the caller's side of a server-streaming call.
type clientStream struct {
	conn       *Conn
	method     streamMethod
	fullMethod string
	ctx        context.Context
	opts       []grpc.CallOption

	sendOnce sync.Once
	started  chan struct{} // closed when the request is sent

	msgs chan proto.Message // the handler's messages, in the order sent
	done chan struct{}      // closed when the handler has returned
	err  error              // the call's status error, set before done closes

	ts         *transportStream
	finishOnce sync.Once
}

var _ grpc.ClientStream = (*clientStream)(nil)

// SendMsg sends the request and starts the handler. A server-streaming
// call takes one request.
func (cs *clientStream) SendMsg(m any) error {
	in, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "inproc: request %T is not a proto message", m)
	}
	sent := false
	cs.sendOnce.Do(func() {
		sent = true
		cs.start(proto.Clone(in))
		close(cs.started)
	})
	if !sent {
		return status.Errorf(codes.Internal, "inproc: %s takes one request", cs.fullMethod)
	}
	return nil
}

// start runs the call in a goroutine: the handler behind the interceptor,
// on req.
func (cs *clientStream) start(req proto.Message) {
	md, _ := metadata.FromOutgoingContext(cs.ctx)
	sctx := metadata.NewIncomingContext(metadata.NewOutgoingContext(cs.ctx, nil), md)
	sctx = peer.NewContext(sctx, thePeer)
	sctx = grpc.NewContextWithServerTransportStream(sctx, cs.ts)
	sctx, cancel := context.WithCancel(sctx)
	go func() {
		defer close(cs.done)
		defer cancel()
		run := func(ctx context.Context, req any) (any, error) {
			in, _ := req.(proto.Message)
			return nil, cs.method.handler(cs.method.impl, &serverStream{ctx: ctx, cs: cs, req: in})
		}
		var err error
		if ic := cs.conn.interceptor; ic != nil {
			_, err = ic(sctx, req, &grpc.UnaryServerInfo{Server: cs.method.impl, FullMethod: cs.fullMethod}, run)
		} else {
			_, err = run(sctx, req)
		}
		if err != nil {
			// As grpc.Server: the status of err, or of the context error.
			if _, ok := status.FromError(err); !ok {
				err = status.FromContextError(err).Err()
			}
		}
		cs.err = err
		cs.ts.finish()
	}()
}

// RecvMsg copies the next message of the handler into m. It returns io.EOF
// when the handler returned nil after its last message, and the call's
// status error when it failed or the caller's context ended.
func (cs *clientStream) RecvMsg(m any) error {
	return cs.recv(func(src proto.Message) error {
		dst, ok := m.(proto.Message)
		if !ok || !sameType(dst, src) {
			return status.Errorf(codes.Internal, "inproc: %s sends %T, not %T", cs.fullMethod, src, m)
		}
		proto.Reset(dst)
		proto.Merge(dst, src)
		return nil
	})
}

// Recv returns the next message of stream, a server-streaming call started
// by a service's generated client (whose stream is a
// grpc.GenericClientStream): on a Conn, the message that the handler
// sent, itself, which is the caller's from then on; on any other
// connection, the message stream.Recv returns. It ends as stream.Recv does
// (io.EOF, or the call's status error).
//
// An export hands over a million users this way, where RecvMsg would copy
// each one (its timestamps, labels and attributes) into a message of the
// caller's: about a tenth of the gateway's time per user.
func Recv[Req, Res any](stream grpc.ServerStreamingClient[Res]) (*Res, error) {
	g, ok := stream.(*grpc.GenericClientStream[Req, Res])
	if !ok {
		return stream.Recv()
	}
	cs, ok := g.ClientStream.(*clientStream)
	if !ok {
		return stream.Recv()
	}
	var m *Res
	err := cs.recv(func(src proto.Message) error {
		var ok bool
		if m, ok = any(src).(*Res); !ok {
			return status.Errorf(codes.Internal, "inproc: %s sends %T, not %T", cs.fullMethod, src, m)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// recv waits for the next message of the handler and calls take with it
// (take returns its error); or returns io.EOF when the handler returned
// nil after its last message, and the call's status error when it failed
// or the caller's context ended.
func (cs *clientStream) recv(take func(proto.Message) error) error {
	select {
	case <-cs.started:
	default:
		select {
		case <-cs.started:
		case <-cs.ctx.Done():
			return status.FromContextError(cs.ctx.Err()).Err() // nothing runs
		}
	}
	select {
	case src := <-cs.msgs:
		return take(src)
	case <-cs.done:
		// The handler has returned: what it sent comes first.
		select {
		case src := <-cs.msgs:
			return take(src)
		default:
		}
	case <-cs.ctx.Done():
		// The handler's context is done too: wait for it to return, so
		// that nothing of the call runs on once RecvMsg has reported its
		// end.
		<-cs.done
		cs.finish()
		return status.FromContextError(cs.ctx.Err()).Err()
	}
	cs.finish()
	if cs.err != nil {
		return cs.err
	}
	return io.EOF
}

// finish sets the header, trailer and peer of the call options, once.
func (cs *clientStream) finish() {
	cs.finishOnce.Do(func() {
		header, trailer := cs.ts.metadata()
		for _, o := range cs.opts {
			switch o := o.(type) {
			case grpc.HeaderCallOption:
				*o.HeaderAddr = header
			case grpc.TrailerCallOption:
				*o.TrailerAddr = trailer
			case grpc.PeerCallOption:
				*o.PeerAddr = *thePeer
			}
		}
	})
}

// Header returns the header once the handler sent it (with its first
// message, or SendHeader) or returned.
func (cs *clientStream) Header() (metadata.MD, error) {
	select {
	case <-cs.ts.headerSent:
	case <-cs.done:
	case <-cs.ctx.Done():
		return nil, status.FromContextError(cs.ctx.Err()).Err()
	}
	header, _ := cs.ts.metadata()
	return header, nil
}

// Trailer returns the trailer; it is complete once RecvMsg returned an
// error or io.EOF.
func (cs *clientStream) Trailer() metadata.MD {
	select {
	case <-cs.done:
		_, trailer := cs.ts.metadata()
		return trailer
	default:
		return nil
	}
}

// CloseSend does nothing: the request was the only message.
func (cs *clientStream) CloseSend() error { return nil }

// Context returns the caller's context.
func (cs *clientStream) Context() context.Context { return cs.ctx }

// serverStream is the handler's side of a server-streaming call.
type serverStream struct {
	ctx  context.Context
	cs   *clientStream
	req  proto.Message
	recv bool
}

var _ grpc.ServerStream = (*serverStream)(nil)

func (ss *serverStream) Context() context.Context { return ss.ctx }

func (ss *serverStream) SetHeader(md metadata.MD) error { return ss.cs.ts.SetHeader(md) }

func (ss *serverStream) SendHeader(md metadata.MD) error { return ss.cs.ts.SendHeader(md) }

func (ss *serverStream) SetTrailer(md metadata.MD) { _ = ss.cs.ts.SetTrailer(md) }

// SendMsg queues m for the client's RecvMsg or Recv and returns once it
// is queued, or with the status of the context when that ends first.
func (ss *serverStream) SendMsg(m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "inproc: response %T is not a proto message", m)
	}
	ss.cs.ts.markSent()
	select {
	case ss.cs.msgs <- msg:
		return nil
	case <-ss.ctx.Done():
		return status.FromContextError(ss.ctx.Err()).Err()
	}
}

// RecvMsg copies the request into m, then returns io.EOF.
func (ss *serverStream) RecvMsg(m any) error {
	if ss.recv {
		return io.EOF
	}
	ss.recv = true
	dst, ok := m.(proto.Message)
	if !ok || ss.req == nil || !sameType(dst, ss.req) {
		return status.Errorf(codes.Internal, "inproc: %s takes %T, not %T", ss.cs.fullMethod, m, ss.req)
	}
	proto.Merge(dst, ss.req)
	return nil
}
