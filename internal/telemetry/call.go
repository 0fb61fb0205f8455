package telemetry

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
)

// Call is what one request records about itself as it passes the layers:
// the HTTP middleware creates it, the gateway names the route, the gRPC
// interceptors add the RPC and its outcome. The edge that created it logs
// and measures it once.
type Call struct {
	mu    sync.Mutex
	route string     // HTTP route template, e.g. "/v1/users/{id}"
	rpc   string     // full gRPC method, e.g. "/users.v1.UserService/GetUser"
	code  codes.Code // the RPC's outcome
	cause error      // the error behind an INTERNAL status or a store's failure; never sent to clients
	set   bool       // rpc and code are set
}

type callKey struct{}

// WithCall returns ctx carrying a new Call.
func WithCall(ctx context.Context) (context.Context, *Call) {
	c := &Call{}
	return ContextWithCall(ctx, c), c
}

// CallFrom returns the Call in ctx, or nil.
func CallFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// SetRoute records the HTTP route template. A nil Call ignores it.
func (c *Call) SetRoute(route string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.route = route
	c.mu.Unlock()
}

// SetRPC records the RPC that served the request and its code.
func (c *Call) SetRPC(rpc string, code codes.Code) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.rpc, c.code, c.set = rpc, code, true
	c.mu.Unlock()
}

// SetCause records the error behind an INTERNAL status, or the failure of
// a store behind an UNAVAILABLE or ABORTED one, which clients never see and
// the access log reports.
func (c *Call) SetCause(err error) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.cause = err
	c.mu.Unlock()
}

// ContextWithCall returns ctx carrying c.
func ContextWithCall(ctx context.Context, c *Call) context.Context {
	return context.WithValue(ctx, callKey{}, c)
}

// Route returns the route template, or "" when no route matched.
func (c *Call) Route() string {
	if c == nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.route
}

// RPC returns the RPC, its code and cause; ok is false if no RPC ran.
func (c *Call) RPC() (rpc string, code codes.Code, cause error, ok bool) {
	if c == nil {
		return "", codes.OK, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rpc, c.code, c.cause, c.set
}
