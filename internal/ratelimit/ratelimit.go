// Package ratelimit limits the rate of calls of each caller with a token
// bucket per caller: a caller may make Burst calls at once and Rate calls a
// second on average after that. A call past the limit is refused at once
// with gRPC RESOURCE_EXHAUSTED and a retry-after hint (HTTP 429 through the
// gateway); refused calls cost the caller nothing.
//
// The buckets live in a Keyed: a token bucket (golang.org/x/time/rate) per
// key in a least-recently-used table (github.com/hashicorp/golang-lru/v2),
// the one keyed limiter of usersd, which webhook delivery uses too for its
// per-target limit.
//
// Memory is bounded however many callers appear: the Limiter keeps at most
// MaxCallers buckets (about 200 bytes each), least recently used first out.
// A bucket left idle long enough to refill (Burst/Rate) is dropped on the
// way, which changes nothing: a new bucket starts full too. A bucket pushed
// out before it refilled gives its caller a fresh burst when it returns.
// That is the trade-off chosen: it takes MaxCallers other callers between
// two calls of a caller, it is counted in usersd_rate_limit_evicted_total,
// and the alternative, refusing new callers while the table is full, would
// let a flood of addresses lock everyone else out. No goroutine is
// involved: eviction happens on the calls themselves.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultMaxCallers is the number of buckets kept when Config.MaxCallers is
// not set: about 2 MB.
const DefaultMaxCallers = 10_000

// MDRetryAfter is the response metadata key of the wait, in whole seconds
// rounded up, suggested to a refused caller. The gateway forwards it as the
// HTTP Retry-After header.
const MDRetryAfter = "retry-after"

// Config configures a Limiter.
type Config struct {
	// Rate is the sustained calls per second allowed to each caller. Zero,
	// negative or rate.Inf means no limit.
	Rate rate.Limit
	// Burst is the calls a caller may make at once, after being idle. Zero
	// or negative means Rate rounded up, at least 1.
	Burst int
	// MaxCallers bounds the buckets kept in memory. Zero or negative means
	// DefaultMaxCallers.
	MaxCallers int
	// Registerer, if not nil, receives the limiter's metrics:
	// usersd_rate_limited_total{transport}, usersd_rate_limit_callers and
	// usersd_rate_limit_evicted_total.
	Registerer prometheus.Registerer
}

// Limiter limits the rate of calls per caller. Its methods are safe for
// concurrent use. A nil *Limiter admits everything.
type Limiter struct {
	limit   rate.Limit
	burst   int
	key     func(context.Context) string
	now     func() time.Time
	desc    string // the limit, for error messages
	buckets *Keyed

	rejectedGRPC, rejectedHTTP prometheus.Counter
}

// New returns a Limiter that keys each call by key, or by PeerKey if key is
// nil. Calls whose key is "" share one bucket. It fails only if cfg's
// Registerer refuses the metrics.
func New(cfg Config, key func(ctx context.Context) string) (*Limiter, error) {
	if key == nil {
		key = PeerKey
	}
	l := &Limiter{key: key, now: time.Now}
	if cfg.Rate > 0 && cfg.Rate != rate.Inf {
		l.limit, l.burst = cfg.Rate, cfg.Burst
		if l.burst <= 0 {
			l.burst = int(max(1, math.Ceil(float64(cfg.Rate))))
		}
		l.desc = fmt.Sprintf("%s requests/s per caller, burst %d",
			strconv.FormatFloat(float64(l.limit), 'g', -1, 64), l.burst)
	}
	maxCallers := cfg.MaxCallers
	if maxCallers <= 0 {
		maxCallers = DefaultMaxCallers
	}

	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usersd_rate_limited_total",
		Help: "Calls refused by the per-caller rate limit, by transport (http or grpc).",
	}, []string{"transport"})
	l.rejectedGRPC, l.rejectedHTTP = rejected.WithLabelValues("grpc"), rejected.WithLabelValues("http")
	evicted := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "usersd_rate_limit_evicted_total",
		Help: "Rate limit buckets dropped for a new caller before they had refilled; each gives its caller a fresh burst. If it keeps rising, raise the maximum number of callers.",
	})
	l.buckets = NewKeyed(maxCallers, evicted)
	callers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "usersd_rate_limit_callers",
		Help: "Callers with a rate limit bucket in memory.",
	}, func() float64 { return float64(l.Len()) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{rejected, evicted, callers} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ratelimit: registering metrics: %w", err)
			}
		}
	}
	return l, nil
}

func (l *Limiter) enabled() bool { return l != nil && l.limit > 0 }

// Allow reports whether the caller key may make a call now, and if so
// takes a token from its bucket. If not, it takes nothing, and retryAfter
// (more than zero) is how long until the bucket holds a token again.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if !l.enabled() {
		return true, 0
	}
	return l.buckets.Allow(key, l.limit, l.burst, l.now())
}

// Len returns the number of buckets in memory: at most the configured
// MaxCallers.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	return l.buckets.Len()
}

// UnaryServerInterceptor refuses calls past their caller's limit with
// RESOURCE_EXHAUSTED, a message naming the limit, a google.rpc.RetryInfo
// detail and a "retry-after" response header in whole seconds, rounded up
// (at least 1). Put it right after authentication, so that the key function
// sees the call's subject, and before the work it protects.
func (l *Limiter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	if !l.enabled() {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ok, wait := l.Allow(l.key(ctx))
		if ok {
			return handler(ctx, req)
		}
		if fromGateway(ctx) {
			l.rejectedHTTP.Inc()
		} else {
			l.rejectedGRPC.Inc()
		}
		secs := int64(math.Ceil(wait.Seconds()))
		_ = grpc.SetHeader(ctx, metadata.Pairs(MDRetryAfter, strconv.FormatInt(secs, 10)))
		return nil, l.exhausted(secs)
	}
}

// exhausted is the error of a call refused for secs seconds.
func (l *Limiter) exhausted(secs int64) error {
	st := status.Newf(codes.ResourceExhausted, "rate limit exceeded: %s; retry after %ds", l.desc, secs)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: secs}}); err == nil {
		st = d
	}
	return st.Err()
}
