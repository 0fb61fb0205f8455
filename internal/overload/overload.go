// Package overload bounds the requests a process serves at once. Past the
// bound it rejects at once (gRPC RESOURCE_EXHAUSTED, HTTP 503, both with a
// retry-after hint) instead of queueing without limit, so an overloaded
// process keeps its memory and latency and sheds load to its peers.
package overload

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RetryAfter is the wait suggested to rejected clients.
const RetryAfter = time.Second

// Limiter admits at most a fixed number of requests at once, across both
// transports. The zero value and a nil *Limiter admit everything.
type Limiter struct {
	slots    chan struct{}
	onReject func(transport string)
}

// New returns a Limiter of max concurrent requests (max <= 0: no limit).
// onReject, if not nil, is called for each rejection with "http" or "grpc".
func New(max int, onReject func(transport string)) *Limiter {
	l := &Limiter{onReject: onReject}
	if max > 0 {
		l.slots = make(chan struct{}, max)
	}
	return l
}

// acquire takes a slot without waiting; release gives it back.
func (l *Limiter) acquire() bool {
	if l == nil || l.slots == nil {
		return true
	}
	select {
	case l.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l *Limiter) release() {
	if l != nil && l.slots != nil {
		<-l.slots
	}
}

func (l *Limiter) rejected(transport string) {
	if l.onReject != nil {
		l.onReject(transport)
	}
}

// InFlight returns the number of requests being served.
func (l *Limiter) InFlight() int {
	if l == nil || l.slots == nil {
		return 0
	}
	return len(l.slots)
}

var retryAfter = strconv.Itoa(int(RetryAfter / time.Second))

// UnaryServerInterceptor rejects calls past the limit with
// RESOURCE_EXHAUSTED and a "retry-after" header in seconds.
func (l *Limiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !l.acquire() {
			l.rejected("grpc")
			_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", retryAfter))
			return nil, status.Error(codes.ResourceExhausted, "server overloaded: too many requests in flight; retry later")
		}
		defer l.release()
		return handler(ctx, req)
	}
}

// Middleware rejects requests past the limit with 503 Service Unavailable
// and Retry-After, with a google.rpc.Status body like the API's errors.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.acquire() {
			l.rejected("http")
			w.Header().Set("Retry-After", retryAfter)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"code":8,"message":"server overloaded: too many requests in flight; retry later","details":[]}`))
			return
		}
		defer l.release()
		next.ServeHTTP(w, r)
	})
}
