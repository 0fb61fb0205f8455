package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/sercand/kuberesolver/v6"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // registers the client-side health checker healthCheckConfig uses
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// DefaultTimeout is the deadline Dial gives calls whose context has none.
const DefaultTimeout = 10 * time.Second

// Retry policy, for the built-in retries of the service config and for the
// CreateUser interceptor alike.
const (
	maxAttempts       = 4
	initialBackoff    = 50 * time.Millisecond
	maxBackoff        = time.Second
	backoffMultiplier = 2
)

// serviceConfig balances calls round-robin over every address the resolver
// returns and retries the idempotent methods on UNAVAILABLE. CreateUser,
// UpdateUser, DeleteUser and UndeleteUser are absent on purpose: see
// retryCreate for CreateUser; the others are never retried.
//
// healthCheckConfig turns on client-side health checking: each connection
// watches grpc.health.v1 (service "", the whole server), and round_robin
// sends calls only to replicas that answer SERVING. A replica in its
// shutdown delay answers NOT_SERVING, so clients leave it before it stops
// listening. A server without the health service counts as healthy.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""},
  "methodConfig": [{
    "name": [
      {"service": "users.v1.UserService", "method": "GetUser"},
      {"service": "users.v1.UserService", "method": "ListUsers"},
      {"service": "users.v1.UserService", "method": "BatchGetUsers"},
      {"service": "users.v2.UserService", "method": "GetUser"},
      {"service": "users.v2.UserService", "method": "ListUsers"},
      {"service": "users.v2.UserService", "method": "BatchGetUsers"}
    ],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.05s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// mdIdempotencyKey is the metadata key the server reads as CreateUser's
// request id when the request has none (grpcserver.MDIdempotencyKey).
const mdIdempotencyKey = "idempotency-key"

// Option configures Dial.
type Option func(*options)

type options struct {
	tp       trace.TracerProvider
	prop     propagation.TextMapPropagator
	timeout  time.Duration
	creds    credentials.TransportCredentials
	dialOpts []grpc.DialOption
}

// WithTracerProvider traces every call with tp. The default traces nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

// WithPropagators sends the trace context with p. The default is W3C Trace
// Context and Baggage.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(o *options) { o.prop = p }
}

// WithTimeout sets the deadline of calls whose context has none, retries
// included; 0 leaves such calls unbounded. The default is DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithTransportCredentials secures the connections with c. The default is
// plaintext; WithTLS is the common case.
func WithTransportCredentials(c credentials.TransportCredentials) Option {
	return func(o *options) { o.creds = c }
}

// WithDialOptions adds gRPC dial options after the defaults, e.g. a stats
// handler. Options that replace a default (the service config, keepalive)
// override it.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// Conn is a client of every replica behind a target.
type Conn struct {
	cc *grpc.ClientConn
	v1 usersv1.UserServiceClient
	v2 usersv2.UserServiceClient
}

// V1 returns the users.v1 client.
func (c *Conn) V1() usersv1.UserServiceClient { return c.v1 }

// V2 returns the users.v2 client.
func (c *Conn) V2() usersv2.UserServiceClient { return c.v2 }

// ClientConn returns the underlying channel, for other services of the
// same replicas (grpc.health.v1) and for its connectivity state.
func (c *Conn) ClientConn() *grpc.ClientConn { return c.cc }

// Close closes every connection; calls in flight fail with CANCELED.
func (c *Conn) Close() error { return c.cc.Close() }

// Dial returns a client of target (see the package documentation for the
// schemes). It does not wait for a connection: the first call connects, and
// calls wait for a replica to be reachable until their deadline. ctx is
// only checked for cancellation.
func Dial(ctx context.Context, target string, opts ...Option) (*Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := options{
		tp:      tracenoop.NewTracerProvider(),
		prop:    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		timeout: DefaultTimeout,
		creds:   insecure.NewCredentials(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(o.creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
		// The server allows pings every 20s at most, and only with calls
		// in flight (cmd/usersd/serve.go).
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: false}),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(
			otelgrpc.WithTracerProvider(o.tp), otelgrpc.WithPropagators(o.prop),
			otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		)),
		grpc.WithChainUnaryInterceptor(defaultTimeout(o.timeout), retryCreate),
	}
	scheme, rest, _ := strings.Cut(target, ":///")
	switch scheme {
	case "static":
		// With TLS, each replica's certificate is checked against its own
		// address, unless the credentials name the server.
		//lint:ignore SA1019 grpc.NewClient still takes the authority from it
		r, err := staticResolver(rest, o.creds.Info().ServerName == "")
		if err != nil {
			return nil, fmt.Errorf("target %q: %w", target, err)
		}
		dialOpts = append(dialOpts, grpc.WithResolvers(r))
	case "kubernetes":
		// Needs the in-cluster service account, allowed to list and watch
		// EndpointSlices; without it the channel fails to resolve.
		dialOpts = append(dialOpts, grpc.WithResolvers(kuberesolver.NewBuilder(nil, "kubernetes")))
	}
	cc, err := grpc.NewClient(target, append(dialOpts, o.dialOpts...)...)
	if err != nil {
		return nil, err
	}
	return &Conn{cc: cc, v1: usersv1.NewUserServiceClient(cc), v2: usersv2.NewUserServiceClient(cc)}, nil
}

// staticResolver resolves to the comma-separated host:port list addrs. With
// nameEach, each address is its own server name (for TLS); otherwise the
// channel's authority is.
func staticResolver(addrs string, nameEach bool) (resolver.Builder, error) {
	var state resolver.State
	for a := range strings.SplitSeq(addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addr := resolver.Address{Addr: a}
			if nameEach {
				addr.ServerName = a
			}
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{addr}})
		}
	}
	if len(state.Endpoints) == 0 {
		return nil, errors.New("no addresses")
	}
	r := manual.NewBuilderWithScheme("static")
	r.InitialState(state)
	return r, nil
}

// defaultTimeout bounds calls whose context has no deadline by d.
func defaultTimeout(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok && d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// retryCreate retries CreateUser on UNAVAILABLE, like the service config
// retries the read methods, but only when the call carries a request id (in
// the request or as Idempotency-Key metadata): only then does the server
// answer a replay with the user the first attempt created.
func retryCreate(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if (method != "/users.v1.UserService/CreateUser" && method != "/users.v2.UserService/CreateUser") || !hasRequestID(ctx, req) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	backoff := initialBackoff
	for attempt := 1; ; attempt++ {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if status.Code(err) != codes.Unavailable || attempt == maxAttempts {
			return err
		}
		// Full jitter, as gRPC's own retries.
		t := time.NewTimer(rand.N(backoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff = min(backoff*backoffMultiplier, maxBackoff)
	}
}

func hasRequestID(ctx context.Context, req any) bool {
	if r, ok := req.(interface{ GetRequestId() string }); ok && r.GetRequestId() != "" {
		return true
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	for _, v := range md.Get(mdIdempotencyKey) {
		if v != "" {
			return true
		}
	}
	return false
}
