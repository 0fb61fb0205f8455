package ratelimit

import (
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// sweep is the most refilled buckets Keyed drops per call, to keep each
// call's work small; a call adds at most one bucket, so the sweep keeps up.
const sweep = 16

// Keyed is a token bucket (a rate.Limiter) per key, with bounded memory: it
// keeps at most the maximum given to NewKeyed, least recently used first
// out. It serves the per-caller limit of Limiter and the per-target limit
// of webhook deliveries. Its methods are safe for concurrent use.
//
// Each call names the key's rate and burst; a key whose rate or burst
// changed keeps its bucket, with the new limit from then on.
//
// A bucket left idle long enough to refill is dropped on the way, which
// changes nothing (a new bucket starts full too): each call drops up to 16
// of them from the least recently used end, stopping at the first that has
// not refilled. That is not counted as an eviction. A bucket pushed out for
// a new key before it refilled is: its key gets a fresh burst when it comes
// back. No goroutine is involved.
type Keyed struct {
	evicted prometheus.Counter // may be nil

	mu      sync.Mutex
	buckets *simplelru.LRU[string, *keyedBucket]
}

// keyedBucket is one key's token bucket.
type keyedBucket struct {
	lim    *rate.Limiter
	limit  rate.Limit
	burst  int
	refill time.Duration // refillTime(limit, burst)
	// full is when the bucket will be full again if nothing else is
	// taken: from then on, dropping it changes nothing.
	full time.Time
}

// NewKeyed returns a Keyed that holds at most maxKeys buckets (at least 1)
// and counts in evicted, if not nil, each bucket pushed out before it had
// refilled.
func NewKeyed(maxKeys int, evicted prometheus.Counter) *Keyed {
	buckets, err := simplelru.NewLRU[string, *keyedBucket](max(maxKeys, 1), nil)
	if err != nil { // only for a size below 1
		panic(err)
	}
	return &Keyed{evicted: evicted, buckets: buckets}
}

// Allow reports whether key may act now under a limit of r a second with
// burst b, and if so takes a token from its bucket. If not, it takes
// nothing, and retryAfter (more than zero, at most the longest Duration) is
// how long until the bucket holds a token again. r must be more than zero
// and finite.
func (k *Keyed) Allow(key string, r rate.Limit, b int, now time.Time) (ok bool, retryAfter time.Duration) {
	k.mu.Lock()
	bk := k.bucket(key, r, b, now)
	bk.fullBy(now.Add(bk.refill))
	lim := bk.lim
	k.mu.Unlock()
	// The bucket is safe for concurrent use on its own. AllowN changes
	// nothing when it refuses; Reserve and Cancel would, a little, when two
	// refused calls of a key interleave.
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, max(seconds((1-lim.TokensAt(now))/float64(r)), time.Nanosecond)
}

// Reserve takes a token from key's bucket, under a limit of r a second with
// burst b, and returns the reservation: its DelayFrom(now) is how long to
// wait before acting. Cancel it to give the token back if not acting.
func (k *Keyed) Reserve(key string, r rate.Limit, b int, now time.Time) *rate.Reservation {
	k.mu.Lock()
	defer k.mu.Unlock()
	bk := k.bucket(key, r, b, now)
	res := bk.lim.ReserveN(now, 1)
	bk.fullBy(now.Add(res.DelayFrom(now)).Add(bk.refill))
	return res
}

// fullBy records that the bucket will be full again by t, if that is later
// than it was to be. Keyed.mu must be held.
func (bk *keyedBucket) fullBy(t time.Time) {
	if t.After(bk.full) {
		bk.full = t
	}
}

// bucket returns key's bucket with limit r and burst b, made the most
// recently used, after dropping buckets that have refilled and, to make
// room, the least recently used. k.mu must be held.
func (k *Keyed) bucket(key string, r rate.Limit, b int, now time.Time) *keyedBucket {
	for range sweep {
		_, oldest, ok := k.buckets.GetOldest()
		if !ok || now.Before(oldest.full) {
			break
		}
		k.buckets.RemoveOldest()
	}
	bk, ok := k.buckets.Get(key)
	if !ok {
		bk = &keyedBucket{lim: rate.NewLimiter(r, b), limit: r, burst: b, refill: refillTime(r, b)}
		if k.buckets.Add(key, bk) && k.evicted != nil {
			k.evicted.Inc()
		}
		return bk
	}
	if bk.limit != r || bk.burst != b {
		if bk.limit != r {
			bk.lim.SetLimitAt(now, r)
		}
		if bk.burst != b {
			bk.lim.SetBurstAt(now, b)
		}
		bk.limit, bk.burst, bk.refill = r, b, refillTime(r, b)
	}
	return bk
}

// Len returns the number of buckets in memory: at most the maximum given to
// NewKeyed.
func (k *Keyed) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.buckets.Len()
}

// refillTime is how long a bucket of burst tokens takes to fill from empty
// at limit tokens a second, rounded up, at most the longest Duration.
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
