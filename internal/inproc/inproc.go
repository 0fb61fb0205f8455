// Package inproc is a gRPC client connection to services in the same
// process. A unary call runs the service's method handler, behind one server
// interceptor, in the caller's goroutine and context: no network, no
// serialisation, no goroutine per call. The HTTP/JSON gateway uses it to
// reach the gRPC server's services through the same interceptors as calls
// over the network.
//
// The service sees what a server would: the caller's outgoing metadata as
// incoming metadata (and no outgoing metadata of its own), a peer whose
// address is on the "inproc" network, grpc.Method, and grpc.SetHeader,
// SendHeader and SetTrailer, whose metadata the caller gets through the
// grpc.Header and grpc.Trailer call options. Messages are copied both ways,
// so neither side can change what the other holds. Every other value of the
// caller's context (its deadline, cancellation, trace span, baggage) is the
// service's too.
//
// Server-streaming methods are served too, behind the same interceptor
// (see stream.go); their handler runs in a goroutine of its own. A client
// may take their messages without a copy (Recv).
// Client-streaming and bidirectional methods are not served.
package inproc

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Network is the network of the address of an in-process call's peer.
const Network = "inproc"

// Addr is the address of an in-process call's peer.
type Addr struct{}

// Network returns "inproc".
func (Addr) Network() string { return Network }

// String returns "inproc".
func (Addr) String() string { return Network }

var thePeer = &peer.Peer{Addr: Addr{}, LocalAddr: Addr{}}

// Conn is a grpc.ClientConnInterface on the services registered on it, and
// a grpc.ServiceRegistrar. Register every service before the first call.
type Conn struct {
	interceptor grpc.UnaryServerInterceptor
	methods     map[string]method       // by full method name, "/pkg.Service/Method"
	streams     map[string]streamMethod // the server-streaming ones
}

type method struct {
	impl    any
	handler grpc.MethodHandler
}

var (
	_ grpc.ClientConnInterface = (*Conn)(nil)
	_ grpc.ServiceRegistrar    = (*Conn)(nil)
)

// New returns a Conn whose calls pass through interceptor (none when nil).
func New(interceptor grpc.UnaryServerInterceptor) *Conn {
	return &Conn{interceptor: interceptor, methods: make(map[string]method), streams: make(map[string]streamMethod)}
}

// RegisterService registers the unary and server-streaming methods of the
// service sd, implemented by impl. It panics if impl does not implement
// sd's handler type or if a method is registered twice, as grpc.Server
// does.
func (c *Conn) RegisterService(sd *grpc.ServiceDesc, impl any) {
	if sd.HandlerType != nil {
		ht := reflect.TypeOf(sd.HandlerType).Elem()
		if !reflect.TypeOf(impl).Implements(ht) {
			panic(fmt.Sprintf("inproc: RegisterService: %T does not implement %v", impl, ht))
		}
	}
	for _, m := range sd.Methods {
		name := "/" + sd.ServiceName + "/" + m.MethodName
		if _, dup := c.methods[name]; dup {
			panic("inproc: RegisterService: " + name + " registered twice")
		}
		c.methods[name] = method{impl: impl, handler: m.Handler}
	}
	for _, st := range sd.Streams {
		if st.ClientStreams || !st.ServerStreams {
			continue // not served
		}
		name := "/" + sd.ServiceName + "/" + st.StreamName
		if _, dup := c.streams[name]; dup {
			panic("inproc: RegisterService: " + name + " registered twice")
		}
		c.streams[name] = streamMethod{impl: impl, handler: st.Handler}
	}
}

// Invoke calls the unary method fullMethod with args and copies its response
// into reply.
func (c *Conn) Invoke(ctx context.Context, fullMethod string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.methods[fullMethod]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", fullMethod)
	}
	in, ok := args.(proto.Message)
	if !ok {
		return status.Errorf(codes.Internal, "inproc: request %T is not a proto message", args)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	stream := &transportStream{method: fullMethod}
	sctx := metadata.NewIncomingContext(metadata.NewOutgoingContext(ctx, nil), md)
	sctx = peer.NewContext(sctx, thePeer)
	sctx = grpc.NewContextWithServerTransportStream(sctx, stream)

	dec := func(v any) error {
		dst, ok := v.(proto.Message)
		if !ok || !sameType(dst, in) {
			return status.Errorf(codes.Internal, "inproc: %s takes %T, not %T", fullMethod, v, args)
		}
		proto.Merge(dst, in)
		return nil
	}
	resp, err := m.handler(m.impl, sctx, dec, c.interceptor)
	header, trailer := stream.finish()
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = trailer
		case grpc.PeerCallOption:
			*o.PeerAddr = *thePeer
		}
	}
	if err != nil {
		return err
	}
	out, ok := reply.(proto.Message)
	src, ok2 := resp.(proto.Message)
	switch {
	case !ok || !ok2:
		return status.Errorf(codes.Internal, "inproc: response %T or reply %T is not a proto message", resp, reply)
	case src == nil || !src.ProtoReflect().IsValid():
		return status.Error(codes.Internal, "inproc: the handler returned neither a response nor an error")
	case !sameType(out, src):
		return status.Errorf(codes.Internal, "inproc: %s returns %T, not %T", fullMethod, resp, reply)
	}
	proto.Reset(out)
	proto.Merge(out, src)
	return nil
}

// sameType reports whether a and b are messages of the same type, which
// proto.Merge requires.
func sameType(a, b proto.Message) bool {
	return a.ProtoReflect().Descriptor().FullName() == b.ProtoReflect().Descriptor().FullName()
}

// transportStream collects a call's header and trailer metadata.
type transportStream struct {
	method string
	// headerSent, for a stream, is closed when the header is final.
	headerSent chan struct{}

	mu       sync.Mutex
	header   metadata.MD
	trailer  metadata.MD
	sent     bool // SendHeader was called, or a stream sent a message: the header is final
	finished bool
}

func (s *transportStream) Method() string { return s.method }

func (s *transportStream) SetHeader(md metadata.MD) error { return s.addHeader(md, false) }

func (s *transportStream) SendHeader(md metadata.MD) error { return s.addHeader(md, true) }

// addHeader adds md to the header, which send makes final.
func (s *transportStream) addHeader(md metadata.MD, send bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent || s.finished {
		return status.Error(codes.Internal, "inproc: the header was already sent")
	}
	s.header = metadata.Join(s.header, md)
	if send {
		s.markSentLocked()
	}
	return nil
}

// markSent makes the header final, as a stream's first message does.
func (s *transportStream) markSent() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markSentLocked()
}

func (s *transportStream) markSentLocked() {
	if !s.sent && s.headerSent != nil {
		close(s.headerSent)
	}
	s.sent = true
}

// metadata returns the header and the trailer as they are.
func (s *transportStream) metadata() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header, s.trailer
}

func (s *transportStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return status.Error(codes.Internal, "inproc: SetTrailer after the call ended")
	}
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}

// finish ends the call and returns its header and trailer.
func (s *transportStream) finish() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finished = true
	return s.header, s.trailer
}
