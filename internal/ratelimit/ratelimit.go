// Package ratelimit limits the rate of calls of each caller with a token
// bucket per caller: a caller may make Burst calls at once and Rate calls a
// second on average after that. A call past the limit is refused at once
// with gRPC RESOURCE_EXHAUSTED and a retry-after hint (HTTP 429 through the
// gateway); refused calls cost the caller nothing.
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
	"sync"
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

// sweep is the most idle buckets dropped per call, to keep each call's
// work small; a call adds at most one bucket, so the sweep keeps up.
const sweep = 16

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
	limit rate.Limit
	burst int
	max   int
	// refill is the time an emptied bucket takes to fill up again: after
	// it, dropping the bucket changes nothing.
	refill time.Duration
	key    func(context.Context) string
	now    func() time.Time
	desc   string // the limit, for error messages

	mu      sync.Mutex
	buckets map[string]*bucket
	newest  *bucket // most recently used; its older neighbours follow
	oldest  *bucket // least recently used: next out

	rejectedGRPC, rejectedHTTP prometheus.Counter
	evicted                    prometheus.Counter
}

// bucket is one caller's token bucket, on the Limiter's recency list.
type bucket struct {
	key          string
	lim          *rate.Limiter
	last         time.Time // the caller's latest call, admitted or not
	newer, older *bucket
}

// New returns a Limiter that keys each call by key, or by PeerKey if key is
// nil. Calls whose key is "" share one bucket. It fails only if cfg's
// Registerer refuses the metrics.
func New(cfg Config, key func(ctx context.Context) string) (*Limiter, error) {
	if key == nil {
		key = PeerKey
	}
	l := &Limiter{
		key:     key,
		now:     time.Now,
		max:     cfg.MaxCallers,
		buckets: map[string]*bucket{},
	}
	if cfg.Rate > 0 && cfg.Rate != rate.Inf {
		l.limit, l.burst = cfg.Rate, cfg.Burst
		if l.burst <= 0 {
			l.burst = int(max(1, math.Ceil(float64(cfg.Rate))))
		}
		l.refill = refillTime(l.limit, l.burst)
		l.desc = fmt.Sprintf("%s requests/s per caller, burst %d",
			strconv.FormatFloat(float64(l.limit), 'g', -1, 64), l.burst)
	}
	if l.max <= 0 {
		l.max = DefaultMaxCallers
	}

	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usersd_rate_limited_total",
		Help: "Calls refused by the per-caller rate limit, by transport (http or grpc).",
	}, []string{"transport"})
	l.rejectedGRPC, l.rejectedHTTP = rejected.WithLabelValues("grpc"), rejected.WithLabelValues("http")
	l.evicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "usersd_rate_limit_evicted_total",
		Help: "Rate limit buckets dropped for a new caller before they had refilled; each gives its caller a fresh burst. If it keeps rising, raise the maximum number of callers.",
	})
	callers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "usersd_rate_limit_callers",
		Help: "Callers with a rate limit bucket in memory.",
	}, func() float64 { return float64(l.Len()) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{rejected, l.evicted, callers} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("ratelimit: registering metrics: %w", err)
			}
		}
	}
	return l, nil
}

// refillTime is how long a bucket of burst tokens takes to fill from empty
// at limit tokens a second.
func refillTime(limit rate.Limit, burst int) time.Duration {
	return seconds(float64(burst) / float64(limit))
}

// seconds is s seconds rounded up to the nanosecond, at most the longest
// Duration.
func seconds(s float64) time.Duration {
	ns := math.Ceil(s * float64(time.Second))
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

func (l *Limiter) enabled() bool { return l != nil && l.limit > 0 }

// Allow reports whether the caller key may make a call now, and if so
// takes a token from its bucket. If not, it takes nothing, and retryAfter
// (more than zero) is how long until the bucket holds a token again.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if !l.enabled() {
		return true, 0
	}
	now := l.now()
	lim := l.bucket(key, now)
	// AllowN changes nothing when it refuses; Reserve and Cancel would, a
	// little, when two refused calls of a caller interleave.
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, max(seconds((1-lim.TokensAt(now))/float64(l.limit)), time.Nanosecond)
}

// bucket returns key's token bucket, made the most recently used, after
// dropping buckets that have refilled and, to make room, the least
// recently used.
func (l *Limiter) bucket(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < sweep && l.oldest != nil && now.Sub(l.oldest.last) >= l.refill; i++ {
		l.remove(l.oldest)
	}
	b := l.buckets[key]
	switch {
	case b == nil:
		if len(l.buckets) >= l.max {
			l.remove(l.oldest)
			l.evicted.Inc()
		}
		b = &bucket{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	case b == l.newest:
		b.last = now
		return b.lim
	default:
		l.unlink(b)
	}
	b.last = now
	b.older = l.newest
	if l.newest != nil {
		l.newest.newer = b
	}
	l.newest = b
	if l.oldest == nil {
		l.oldest = b
	}
	return b.lim
}

// remove drops b. l.mu must be held.
func (l *Limiter) remove(b *bucket) {
	l.unlink(b)
	delete(l.buckets, b.key)
}

// unlink takes b off the recency list. l.mu must be held.
func (l *Limiter) unlink(b *bucket) {
	if b.newer != nil {
		b.newer.older = b.older
	} else {
		l.newest = b.older
	}
	if b.older != nil {
		b.older.newer = b.newer
	} else {
		l.oldest = b.newer
	}
	b.newer, b.older = nil, nil
}

// Len returns the number of buckets in memory: at most the configured
// MaxCallers.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
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
