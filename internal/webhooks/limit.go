package webhooks

import (
	"container/list"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// sweep is the most idle limiters dropped per reservation, to keep each
// call's work small; a call adds at most one limiter, so the sweep keeps up.
const sweep = 16

// limiters holds a token bucket per target, at most max of them, least
// recently used first out. Limiters idle long enough to refill are dropped
// on the way, which changes nothing (a new one starts full too): each call
// drops up to sweep of them from the least recently used end, stopping at
// the first that has not refilled.
type limiters struct {
	max     int
	evicted prometheus.Counter

	mu    sync.Mutex
	byKey map[string]*list.Element // of *limiterEntry
	lru   list.List                // front: most recently used
}

type limiterEntry struct {
	key string
	lim *rate.Limiter
	// full is when the bucket will be full again if nothing else is
	// reserved: after it, dropping the limiter changes nothing.
	full time.Time
}

func newLimiters(max int, evicted prometheus.Counter) *limiters {
	return &limiters{max: max, evicted: evicted, byKey: map[string]*list.Element{}}
}

// reserve takes a token from key's bucket, limited to r a second with burst
// b, and returns the reservation: its DelayFrom(now) is how long to wait
// before sending. Cancel it to give the token back if not sending. A
// target whose r or b changed keeps its bucket, with the new limit.
func (l *limiters) reserve(key string, r rate.Limit, b int, now time.Time) *rate.Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < sweep; i++ {
		e := l.lru.Back()
		if e == nil || now.Before(e.Value.(*limiterEntry).full) {
			break
		}
		l.remove(e)
	}
	var ent *limiterEntry
	if e, ok := l.byKey[key]; ok {
		l.lru.MoveToFront(e)
		ent = e.Value.(*limiterEntry)
		if ent.lim.Limit() != r {
			ent.lim.SetLimitAt(now, r)
		}
		if ent.lim.Burst() != b {
			ent.lim.SetBurstAt(now, b)
		}
	} else {
		if len(l.byKey) >= l.max {
			l.remove(l.lru.Back())
			l.evicted.Inc()
		}
		ent = &limiterEntry{key: key, lim: rate.NewLimiter(r, b)}
		l.byKey[key] = l.lru.PushFront(ent)
	}
	res := ent.lim.ReserveN(now, 1)
	ent.full = now.Add(res.DelayFrom(now)).Add(refillTime(r, b))
	return res
}

// remove drops e. l.mu must be held.
func (l *limiters) remove(e *list.Element) {
	delete(l.byKey, e.Value.(*limiterEntry).key)
	l.lru.Remove(e)
}

// len returns the number of limiters in memory.
func (l *limiters) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}

// refillTime is how long a bucket of burst tokens takes to fill from empty
// at limit tokens a second, rounded up, at most the longest Duration.
func refillTime(limit rate.Limit, burst int) time.Duration {
	ns := math.Ceil(float64(burst) / float64(limit) * float64(time.Second))
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}
