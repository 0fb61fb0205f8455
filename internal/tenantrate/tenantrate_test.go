package tenantrate

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usersd/usersd/internal/users"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTenants serves tenants from a map, counting reads; err, when set,
// fails every read.
type fakeTenants struct {
	rates map[string]float64
	reads atomic.Int64
	err   error
}

func (f *fakeTenants) GetTenant(_ context.Context, id string) (*users.Tenant, error) {
	f.reads.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	r, ok := f.rates[id]
	if !ok {
		return nil, users.ErrNotFound
	}
	return &users.Tenant{ID: id, Settings: users.TenantSettings{RequestsPerSecond: r}}, nil
}

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newGate(f *fakeTenants) (*Gate, *clock) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	g := New(f, time.Second, 0)
	g.now = c.now
	return g, c
}

// admitted counts the calls of n made at once in tenant that pass.
func admitted(t *testing.T, g *Gate, tenant string, n int) int {
	t.Helper()
	ok := 0
	for range n {
		err := g.Admit(context.Background(), tenant)
		var re *users.RateError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &re) && errors.Is(err, users.ErrRateLimited):
			if re.Tenant != tenant || re.RetryAfter <= 0 {
				t.Errorf("RateError = %+v, want tenant %s and a wait", re, tenant)
			}
		default:
			t.Fatalf("Admit(%s) err = %v", tenant, err)
		}
	}
	return ok
}

// TestAdmitRate: a tenant's callers share one bucket of a second of its
// rate, which refills at the rate; other tenants are not affected.
func TestAdmitRate(t *testing.T) {
	f := &fakeTenants{rates: map[string]float64{"acme": 5, "globex": 0}}
	g, c := newGate(f)
	if got := admitted(t, g, "acme", 8); got != 5 {
		t.Errorf("acme at 5/s: %d of 8 calls at once passed, want 5", got)
	}
	if got := admitted(t, g, "globex", 50); got != 50 {
		t.Errorf("globex without a rate: %d of 50 passed, want all", got)
	}
	if got := admitted(t, g, "nowhere", 50); got != 50 {
		t.Errorf("an unknown tenant: %d of 50 passed, want all", got)
	}
	c.t = c.t.Add(400 * time.Millisecond) // 2 tokens at 5/s
	if got := admitted(t, g, "acme", 8); got != 2 {
		t.Errorf("acme 400ms later: %d passed, want 2", got)
	}
}

// TestSettingsCached: the settings are read once per TTL, and a change
// applies once the TTL has passed.
func TestSettingsCached(t *testing.T) {
	f := &fakeTenants{rates: map[string]float64{"acme": 2}}
	g, c := newGate(f)
	admitted(t, g, "acme", 10)
	if n := f.reads.Load(); n != 1 {
		t.Errorf("%d reads for 10 calls within the TTL, want 1", n)
	}
	f.rates["acme"] = 0
	c.t = c.t.Add(999 * time.Millisecond)
	if got := admitted(t, g, "acme", 10); got == 10 {
		t.Errorf("within the TTL the old rate should still apply; all 10 calls passed")
	}
	c.t = c.t.Add(2 * time.Millisecond)
	if got := admitted(t, g, "acme", 10); got != 10 {
		t.Errorf("after the TTL, without a rate: %d of 10 passed, want all", got)
	}
	if n := f.reads.Load(); n != 2 {
		t.Errorf("%d reads after the TTL, want 2", n)
	}
}

// TestReadFails: while the settings cannot be read, the last rate known
// applies (none at first), and the next call reads again.
func TestReadFails(t *testing.T) {
	f := &fakeTenants{rates: map[string]float64{"acme": 1}}
	g, c := newGate(f)
	f.err = users.Unavailable("connection_lost", errors.New("down"))
	if got := admitted(t, g, "acme", 3); got != 3 {
		t.Errorf("nothing known and the store away: %d of 3 passed, want all", got)
	}
	f.err = nil
	if got := admitted(t, g, "acme", 3); got != 1 {
		t.Errorf("store back, 1/s: %d of 3 passed, want 1", got)
	}
	c.t = c.t.Add(2 * time.Second)
	f.err = users.Unavailable("connection_lost", errors.New("down"))
	if got := admitted(t, g, "acme", 3); got != 1 {
		t.Errorf("store away again after the TTL: %d of 3 passed, want 1 (the last rate known)", got)
	}
}
