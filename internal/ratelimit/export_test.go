package ratelimit

import "time"

// SetClock makes l read the time from now, for tests.
func SetClock(l *Limiter, now func() time.Time) { l.now = now }

// Keys returns k's keys, least recently used first, for tests.
func Keys(k *Keyed) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.buckets.Keys()
}
