package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Mode says whether calls are authenticated.
type Mode string

const (
	// ModeJWT requires a bearer JWT on every call but the public ones.
	ModeJWT Mode = "jwt"
	// ModeNone lets every call through unauthenticated: for development on
	// a loopback address only (see Insecure).
	ModeNone Mode = "none"
)

// Defaults and bounds of Config.
const (
	// DefaultSkew is the clock skew allowed when Config.Skew is zero.
	DefaultSkew = 30 * time.Second
	// MaxSkew is the largest Config.Skew accepted.
	MaxSkew = 5 * time.Minute
	// DefaultRefreshInterval is how often the JWKS is read again when
	// Config.RefreshInterval is zero.
	DefaultRefreshInterval = 15 * time.Minute
	// DefaultMinRefreshInterval is the least time between two reads of the
	// JWKS when Config.MinRefreshInterval is zero.
	DefaultMinRefreshInterval = time.Minute
	// MaxTokenBytes bounds a token; longer ones are rejected unparsed.
	MaxTokenBytes = 8 << 10
	// MaxJWKSBytes bounds a JWKS document.
	MaxJWKSBytes = 1 << 20
	// fetchTimeout bounds one read of the JWKS with the default HTTP client.
	fetchTimeout = 10 * time.Second
)

// Config configures an Authenticator.
type Config struct {
	// Mode is ModeJWT or ModeNone; anything else, the empty string
	// included, is an error. With ModeNone every other field must be zero.
	Mode Mode
	// Issuer must equal the tokens' "iss" claim, e.g.
	// "https://auth.example.com/realms/acme". Required with ModeJWT.
	Issuer string
	// Audience must be one of the tokens' "aud" claim, e.g. "usersd".
	// Required with ModeJWT.
	Audience string
	// JWKS is where the issuer's public keys are: an https:// URL, or the
	// path of a file (a mounted secret, say). Required with ModeJWT; it is
	// read once by New, which fails if it holds no usable key.
	JWKS string
	// Skew is the clock difference allowed when checking "exp", "nbf" and
	// "iat": 0 means DefaultSkew; negative or above MaxSkew is an error.
	Skew time.Duration
	// HTTPClient reads a JWKS URL. Nil means a client with a 10 s timeout
	// that follows only https:// redirects.
	HTTPClient *http.Client
	// RefreshInterval is how often the JWKS is read again; 0 means
	// DefaultRefreshInterval. A failed read keeps the keys already known.
	RefreshInterval time.Duration
	// MinRefreshInterval bounds the reads a token with an unknown key id
	// triggers: at most one per interval. 0 means
	// DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration
	// Log receives failed refreshes of the JWKS. The zero Logger discards
	// them.
	Log zerolog.Logger
	// TenantClaim is the claim that binds a token to a tenant (its id);
	// "" means DefaultTenantClaim. A token without it is bound to the
	// default tenant. See Principal.Tenant.
	TenantClaim string
}

// DefaultTenantClaim is the claim that binds a token to a tenant unless
// Config.TenantClaim names another.
const DefaultTenantClaim = "tenant"

// Authenticator verifies bearer tokens and authorizes calls; its
// interceptors do both (see UnaryInterceptor). Its methods are safe for
// concurrent use.
type Authenticator struct {
	mode     Mode
	issuer   string
	audience string
	skew     time.Duration
	// tenantClaim is Config.TenantClaim, or its default.
	tenantClaim string
	keys        *keySet // nil with ModeNone
	stop        context.CancelFunc
	stopped     chan struct{} // closed when the refresh goroutine has returned
}

// New returns an Authenticator configured by cfg. With ModeJWT it reads
// the JWKS at once, and then keeps refreshing it in a goroutine that stops
// when ctx is done or Close is called, whichever comes first.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	switch cfg.Mode {
	case ModeNone:
		if cfg.Issuer != "" || cfg.Audience != "" || cfg.JWKS != "" {
			return nil, errors.New("auth: mode none takes no issuer, audience or JWKS")
		}
		return &Authenticator{mode: ModeNone}, nil
	case ModeJWT:
	default:
		return nil, fmt.Errorf("auth: mode %q: want %q or %q", cfg.Mode, ModeJWT, ModeNone)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"issuer", cfg.Issuer}, {"audience", cfg.Audience}, {"JWKS", cfg.JWKS}} {
		if strings.TrimSpace(f.v) == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("auth: mode jwt needs %s", strings.Join(missing, ", "))
	}
	skew := cfg.Skew
	switch {
	case skew == 0:
		skew = DefaultSkew
	case skew < 0 || skew > MaxSkew:
		return nil, fmt.Errorf("auth: skew %v: want 0 to %v", skew, MaxSkew)
	}
	for _, d := range []time.Duration{cfg.RefreshInterval, cfg.MinRefreshInterval} {
		if d < 0 {
			return nil, fmt.Errorf("auth: refresh interval %v is negative", d)
		}
	}
	fetch, err := source(cfg.JWKS, cfg.HTTPClient)
	if err != nil {
		return nil, err
	}
	ks := &keySet{
		fetch:  fetch,
		every:  orDefault(cfg.RefreshInterval, DefaultRefreshInterval),
		minGap: orDefault(cfg.MinRefreshInterval, DefaultMinRefreshInterval),
		log:    cfg.Log,
		kick:   make(chan struct{}, 1),
		last:   time.Now(), // the first read starts now
	}
	lctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	err = ks.load(lctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("auth: reading the JWKS %s: %w", cfg.JWKS, err)
	}
	ctx, stop := context.WithCancel(ctx)
	a := &Authenticator{
		mode: ModeJWT, issuer: cfg.Issuer, audience: cfg.Audience, skew: skew,
		tenantClaim: cmp.Or(cfg.TenantClaim, DefaultTenantClaim),
		keys:        ks, stop: stop, stopped: make(chan struct{}),
	}
	go func() {
		defer close(a.stopped)
		ks.run(ctx)
	}()
	return a, nil
}

// Close stops refreshing the JWKS and waits until the refresh goroutine
// has returned. Tokens with a known key are still verified afterwards.
// Close may be called more than once.
func (a *Authenticator) Close() {
	if a == nil || a.stop == nil {
		return
	}
	a.stop()
	<-a.stopped
}

// Mode returns the mode the Authenticator was made with.
func (a *Authenticator) Mode() Mode { return a.mode }

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// source returns the function that reads the JWKS at location: a file, or
// an https:// URL read with client.
func source(location string, client *http.Client) (func(context.Context) ([]byte, error), error) {
	u, err := url.Parse(location)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 { // "C:\keys.json" has a one-letter scheme
		path := location
		return func(context.Context) ([]byte, error) { return readFile(path) }, nil
	}
	switch {
	case u.Scheme == "file":
		return nil, fmt.Errorf("auth: JWKS %q: give a file as a path, not a file: URL", location)
	case u.Scheme != "https":
		return nil, fmt.Errorf("auth: JWKS %q: want an https:// URL or a file path", location)
	case u.Host == "":
		return nil, fmt.Errorf("auth: JWKS %q: URL has no host", location)
	}
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout, CheckRedirect: HTTPSOnly}
	}
	return func(ctx context.Context) ([]byte, error) { return readURL(ctx, client, location) }, nil
}

// HTTPSOnly is the redirect policy (http.Client.CheckRedirect) of the
// client that reads a JWKS URL when Config.HTTPClient is nil: it refuses
// redirects away from https, and chains of more than 5.
func HTTPSOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s: not https", req.URL.Redacted())
	}
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	return nil
}

// Principal is the authenticated caller of a call.
type Principal struct {
	// Subject is the token's "sub" claim. When it is a user's id, the
	// caller may read that user and change its display name and labels
	// without any scope.
	Subject string
	// Scopes holds the token's scopes (its "scope" and "scp" claims) and
	// the scopes they imply: users.admin implies users.write, which implies
	// users.read. Callers must not modify it.
	Scopes map[string]bool
	// Tenant is the id of the tenant the token is bound to (its tenant
	// claim, Config.TenantClaim), "" when it names none: then the caller
	// is the default tenant's. A caller without ScopeTenantsAdmin acts in
	// its tenant only; see users.BindTenant.
	Tenant string
}

// Has reports whether p was granted scope, directly or by implication.
func (p Principal) Has(scope string) bool { return p.Scopes[scope] }

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller the interceptors authenticated, and false
// when there is none: the mode is none, or the call is to a public service.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Subject returns the subject of the caller the interceptors
// authenticated, or "" (see FromContext). It suits
// ratelimit.SubjectKey.
func Subject(ctx context.Context) string {
	p, _ := FromContext(ctx)
	return p.Subject
}

// Insecure reports whether a server listening on addr ("host:port") can be
// reached from other hosts: the host is empty, a wildcard, a non-loopback
// address or a name other than "localhost". Serving with ModeNone on such
// an address exposes the whole API to anyone who can reach it; callers
// should warn, or refuse. An addr that cannot be parsed counts as insecure.
func Insecure(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
