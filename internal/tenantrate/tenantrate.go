// Package tenantrate limits the calls made in each tenant, on one replica,
// to the tenant's request rate (users.TenantSettings.RequestsPerSecond),
// shared by all its callers. It is the users.TenantGate of the service,
// on top of the per-caller limit of package ratelimit.
//
// A tenant's settings are read from the store once per TTL per replica and
// cached: a changed rate applies within the TTL. Other per-tenant checks
// read the same cache (Gate.Settings): the attribute schemas. Each limited tenant has a
// token bucket whose burst is one second of its rate.
package tenantrate

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/ratelimit"
	"github.com/usersd/usersd/internal/users"
)

// Defaults of New.
const (
	// DefaultTTL is how long a tenant's settings are cached.
	DefaultTTL = 5 * time.Second
	// DefaultMaxTenants is how many tenants' settings and buckets are
	// kept at once, least recently used first out.
	DefaultMaxTenants = 10_000
)

// Reader reads a tenant: users.TenantStore's GetTenant.
type Reader interface {
	GetTenant(ctx context.Context, id string) (*users.Tenant, error)
}

// Gate admits the calls of each tenant at its rate. It is safe for
// concurrent use.
type Gate struct {
	read    Reader
	ttl     time.Duration
	now     func() time.Time
	buckets *ratelimit.Keyed

	mu    sync.Mutex
	rates *simplelru.LRU[string, cachedSettings]
}

// cachedSettings are a tenant's settings as read (the zero settings for a
// tenant that does not exist), until they are read again.
type cachedSettings struct {
	settings users.TenantSettings
	until    time.Time
}

var _ users.TenantGate = (*Gate)(nil)

// New returns a Gate that reads the tenants' settings with r, caches them
// for ttl (DefaultTTL when 0), and keeps at most maxTenants tenants
// (DefaultMaxTenants when 0).
func New(r Reader, ttl time.Duration, maxTenants int) *Gate {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if maxTenants <= 0 {
		maxTenants = DefaultMaxTenants
	}
	rates, err := simplelru.NewLRU[string, cachedSettings](maxTenants, nil)
	if err != nil { // only for a size below 1
		panic(err)
	}
	return &Gate{read: r, ttl: ttl, now: time.Now, buckets: ratelimit.NewKeyed(maxTenants, nil), rates: rates}
}

// Admit returns nil when a call may be made in the tenant now, taking a
// token from its bucket, or a *users.RateError saying when to retry.
// Tenants without a rate, and unknown ones (the call will find nothing),
// always pass; so do calls while the settings cannot be read, which the
// call itself will then most likely fail to reach too.
func (g *Gate) Admit(ctx context.Context, tenant string) error {
	st, _ := g.Settings(ctx, tenant)
	perSecond := st.RequestsPerSecond
	if perSecond <= 0 {
		return nil
	}
	burst := max(1, int(math.Ceil(perSecond)))
	ok, wait := g.buckets.Allow(tenant, rate.Limit(perSecond), burst, g.now())
	if ok {
		return nil
	}
	return &users.RateError{Tenant: tenant, RetryAfter: wait}
}

// Settings returns the tenant's settings, from the cache or, once they
// have expired, from the store; the zero settings for a tenant that does
// not exist. When the store cannot be read it returns the settings last
// known, if any, with the error, and reads again next time.
func (g *Gate) Settings(ctx context.Context, tenant string) (users.TenantSettings, error) {
	now := g.now()
	g.mu.Lock()
	c, ok := g.rates.Get(tenant)
	g.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.settings, nil
	}
	t, err := g.read.GetTenant(ctx, tenant)
	switch {
	case err == nil:
		c.settings = t.Settings
	case errors.Is(err, users.ErrNotFound):
		c.settings = users.TenantSettings{}
	default:
		return c.settings, err
	}
	c.until = now.Add(g.ttl)
	g.mu.Lock()
	g.rates.Add(tenant, c)
	g.mu.Unlock()
	return c.settings, nil
}

// Forget drops the tenant's cached settings: the next call reads them.
func (g *Gate) Forget(tenant string) {
	g.mu.Lock()
	g.rates.Remove(tenant)
	g.mu.Unlock()
}
