package webhooks

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"
)

// TestCheckDial checks the dialer's Control on the addresses it is given
// after name resolution.
func TestCheckDial(t *testing.T) {
	tests := []struct {
		address string
		ok      bool
	}{
		{"93.184.216.34:443", true},
		{"[2606:4700:4700::1111]:443", true},
		{"127.0.0.1:80", false},
		{"10.1.2.3:80", false},
		{"169.254.169.254:80", false},
		{"100.100.100.100:80", false},
		{"[::1]:80", false},
		{"[fc00::1]:80", false},
		{"[fe80::1%eth0]:80", false},
		{"[::ffff:10.0.0.1]:80", false},
		{"[64:ff9b::7f00:1]:80", false},
		{"not an address", false},
	}
	for _, tt := range tests {
		err := checkDial("tcp", tt.address, nil)
		if tt.ok && err != nil {
			t.Errorf("checkDial(%q) err = %v, want nil", tt.address, err)
		}
		if !tt.ok && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("checkDial(%q) err = %v, want %v", tt.address, err, ErrForbiddenAddress)
		}
	}
}

// TestLimitersBounded checks that the table of rate limiters holds at most
// its maximum, evicting the least recently used, and drops limiters that
// have refilled.
func TestLimitersBounded(t *testing.T) {
	evicted := prometheus.NewCounter(prometheus.CounterOpts{Name: "evicted"})
	l := newLimiters(2, evicted)
	now := time.Now()
	for _, key := range []string{"a", "b", "a", "c"} {
		l.reserve(key, 1, 1, now)
	}
	if got := l.len(); got != 2 {
		t.Errorf("len() = %d, want 2", got)
	}
	if got := counterValue(t, evicted); got != 1 {
		t.Errorf("evicted = %v, want 1", got)
	}
	if _, ok := l.byKey["b"]; ok {
		t.Errorf("b, the least recently used, was kept")
	}
	// Once both have refilled ("a" reserved two tokens: 2s), a call drops
	// them on its way.
	l.reserve("d", 1, 1, now.Add(5*time.Second))
	if l.len() != 1 || counterValue(t, evicted) != 1 {
		t.Errorf("after a and c refilled: keys %v, want d, and no eviction", keys(l))
	}

	// A limit changed by the target applies to its bucket.
	if d := l.reserve("d", rate.Inf, 1, now.Add(5*time.Second)).DelayFrom(now.Add(5 * time.Second)); d != 0 {
		t.Errorf("delay after raising the limit = %v, want 0", d)
	}
}

func keys(l *limiters) []string {
	var ks []string
	for k := range l.byKey {
		ks = append(ks, k)
	}
	return ks
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"3599", 3599 * time.Second},
		{"3600", MaxRetryAfter},
		{"99999999999999999999999", MaxRetryAfter},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"Wed, 04 Mar 2026 05:06:37 GMT", 30 * time.Second},
		{"Wed, 04 Mar 2026 05:00:00 GMT", 0},
		{"Thu, 05 Mar 2026 05:06:07 GMT", MaxRetryAfter},
		{"Wednesday, 04-Mar-26 05:07:07 GMT", time.Minute}, // RFC 850
	}
	for _, tt := range tests {
		if got := retryAfter(tt.v, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
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
