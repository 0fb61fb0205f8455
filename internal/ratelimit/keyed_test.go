package ratelimit_test

import (
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/ratelimit"
)

// TestKeyedBounded checks, through Reserve as webhook delivery uses it,
// that a Keyed holds at most its maximum, evicting the least recently used,
// drops buckets that have refilled, and applies a key's changed limit.
func TestKeyedBounded(t *testing.T) {
	evicted := prometheus.NewCounter(prometheus.CounterOpts{Name: "evicted"})
	k := ratelimit.NewKeyed(2, evicted)
	now := time.Now()
	for _, key := range []string{"a", "b", "a", "c"} {
		k.Reserve(key, 1, 1, now)
	}
	if got := k.Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
	if got := counterValue(t, evicted); got != 1 {
		t.Errorf("evicted = %v, want 1", got)
	}
	if keys := ratelimit.Keys(k); slices.Contains(keys, "b") {
		t.Errorf("keys = %v: b, the least recently used, was kept", keys)
	}
	// Once both have refilled ("a" reserved two tokens: 2s), a call drops
	// them on its way.
	k.Reserve("d", 1, 1, now.Add(5*time.Second))
	if keys := ratelimit.Keys(k); !slices.Equal(keys, []string{"d"}) || counterValue(t, evicted) != 1 {
		t.Errorf("after a and c refilled: keys %v, want d, and no eviction", keys)
	}

	// A limit changed by the target applies to its bucket.
	if d := k.Reserve("d", rate.Inf, 1, now.Add(5*time.Second)).DelayFrom(now.Add(5 * time.Second)); d != 0 {
		t.Errorf("delay after raising the limit = %v, want 0", d)
	}
	// So does a changed burst: "e" drains a burst of 3 and, refilled under
	// a burst of 1, has 1 token, not 3.
	at := now.Add(time.Hour)
	for i := range 3 {
		if d := k.Reserve("e", 1, 3, at).DelayFrom(at); d != 0 {
			t.Fatalf("reservation %d of a burst of 3: delay %v, want 0", i+1, d)
		}
	}
	at = at.Add(10 * time.Second)
	if d := k.Reserve("e", 1, 1, at).DelayFrom(at); d != 0 {
		t.Errorf("first reservation after lowering the burst: delay %v, want 0", d)
	}
	if d := k.Reserve("e", 1, 1, at).DelayFrom(at); d != time.Second {
		t.Errorf("second reservation after lowering the burst: delay %v, want 1s", d)
	}
}

// TestKeyedNilCounter checks that a Keyed without a counter evicts all the
// same.
func TestKeyedNilCounter(t *testing.T) {
	k := ratelimit.NewKeyed(1, nil)
	now := time.Now()
	for _, key := range []string{"a", "b"} {
		if ok, _ := k.Allow(key, 1, 1, now); !ok {
			t.Errorf("Allow(%q) refused a new key", key)
		}
	}
	if keys := ratelimit.Keys(k); !slices.Equal(keys, []string{"b"}) {
		t.Errorf("keys = %v, want [b]", keys)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
