package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
)

// keys holds one signing key of each kind auth accepts, and the path of a
// JWKS file of all three.
type keys struct {
	rsa, ec, ed *authtest.Key
	jwks        string
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	k := &keys{
		rsa:  authtest.NewKey(t, jose.RS256),
		ec:   authtest.NewKey(t, jose.ES256),
		ed:   authtest.NewKey(t, jose.EdDSA),
		jwks: filepath.Join(t.TempDir(), "jwks.json"),
	}
	authtest.WriteJWKS(t, k.jwks, k.rsa, k.ec, k.ed)
	return k
}

// newAuth returns an Authenticator of cfg, closed when the test ends. Mode,
// Issuer and Audience default to jwt and those of authtest.
func newAuth(t *testing.T, cfg auth.Config) *auth.Authenticator {
	t.Helper()
	if cfg.Mode == "" {
		cfg.Mode = auth.ModeJWT
	}
	if cfg.Issuer == "" {
		cfg.Issuer = authtest.Issuer
	}
	if cfg.Audience == "" {
		cfg.Audience = authtest.Audience
	}
	a, err := auth.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("auth.New(%+v) err = %v", cfg, err)
	}
	t.Cleanup(a.Close)
	return a
}

func TestVerifyAlgorithms(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	sub := uuid.NewString()
	for _, key := range []*authtest.Key{k.rsa, k.ec, k.ed} {
		t.Run(string(key.Alg), func(t *testing.T) {
			tok := key.Token(t, authtest.Claims{Subject: sub, Scopes: []string{"users.write", "other"}})
			p, err := a.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify(%s token) err = %v", key.Alg, err)
			}
			want := auth.Principal{Subject: sub, Scopes: map[string]bool{"users.write": true, "users.read": true, "other": true}}
			if diff := cmp.Diff(want, p); diff != "" {
				t.Errorf("Verify(%s token) mismatch (-want +got):\n%s", key.Alg, diff)
			}
		})
	}
}

func TestVerifyScopeClaims(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	tests := []struct {
		name  string
		extra map[string]any
		want  []string
	}{
		{"scope string", map[string]any{"scope": "users.read  openid"}, []string{"openid", "users.read"}},
		{"scope array", map[string]any{"scope": []string{"users.admin"}}, []string{"users.admin", "users.read", "users.write"}},
		{"scp array", map[string]any{"scp": []string{"users.write"}}, []string{"users.read", "users.write"}},
		{"scp string and scope", map[string]any{"scp": "users.read", "scope": "email"}, []string{"email", "users.read"}},
		{"none", nil, nil},
		{"empty strings", map[string]any{"scope": []string{""}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := k.ec.Token(t, authtest.Claims{Subject: "alice", Extra: tc.extra})
			p, err := a.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("Verify err = %v", err)
			}
			var got []string
			for s := range p.Scopes {
				got = append(got, s)
			}
			if diff := cmp.Diff(tc.want, got, cmpSorted); diff != "" {
				t.Errorf("scopes mismatch (-want +got):\n%s", diff)
			}
		})
	}

	tok := k.ec.Token(t, authtest.Claims{Subject: "alice", Extra: map[string]any{"scope": 42}})
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, auth.ErrTokenClaims) {
		t.Errorf("Verify(scope 42) err = %v, want %v", err, auth.ErrTokenClaims)
	}
}

var cmpSorted = cmp.Options{cmpopts.SortSlices(func(a, b string) bool { return a < b }), cmpopts.EquateEmpty()}

// TestVerifyHostile checks the reason each hostile token is refused for.
// The credentials that are no bearer token at all are the interceptor's to
// refuse (TestInterceptorHostile).
func TestVerifyHostile(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	for _, h := range authtest.HostileTokens(t, k.rsa, k.ec, uuid.NewString()) {
		tok, ok := strings.CutPrefix(h.Authorization, "Bearer ")
		if !ok || tok == "" {
			continue
		}
		t.Run(h.Name, func(t *testing.T) {
			_, err := a.Verify(context.Background(), tok)
			if got := errString(err); got != h.Reason {
				t.Errorf("Verify(%s) err = %q, want %q", h.Name, got, h.Reason)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestVerifySkew(t *testing.T) {
	k := newKeys(t)
	now := time.Now()
	tests := []struct {
		name string
		skew time.Duration
		c    authtest.Claims
		want error
	}{
		{"expired within the default skew", 0, authtest.Claims{Expiry: now.Add(-10 * time.Second)}, nil},
		{"expired beyond the default skew", 0, authtest.Claims{Expiry: now.Add(-40 * time.Second)}, auth.ErrTokenExpired},
		{"starts within the default skew", 0, authtest.Claims{NotBefore: now.Add(10 * time.Second)}, nil},
		{"starts beyond the default skew", 0, authtest.Claims{NotBefore: now.Add(40 * time.Second)}, auth.ErrTokenNotYet},
		{"issued within the default skew", 0, authtest.Claims{IssuedAt: now.Add(10 * time.Second)}, nil},
		{"expired within a skew of 2m", 2 * time.Minute, authtest.Claims{Expiry: now.Add(-90 * time.Second)}, nil},
		{"expired beyond a skew of 2m", 2 * time.Minute, authtest.Claims{Expiry: now.Add(-150 * time.Second)}, auth.ErrTokenExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuth(t, auth.Config{JWKS: k.jwks, Skew: tc.skew})
			tc.c.Subject = "alice"
			_, err := a.Verify(context.Background(), k.ed.Token(t, tc.c))
			if !errors.Is(err, tc.want) || (err != nil) != (tc.want != nil) {
				t.Errorf("Verify err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyIssuerAndAudience(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	tests := []struct {
		name string
		c    authtest.Claims
		want error
	}{
		{"audience among several", authtest.Claims{Extra: map[string]any{"aud": []string{"other", authtest.Audience}}}, nil},
		{"no audience", authtest.Claims{Extra: map[string]any{"aud": []string{}}}, auth.ErrTokenAudience},
		{"issuer differs by a slash", authtest.Claims{Issuer: strings.TrimSuffix(authtest.Issuer, "/")}, auth.ErrTokenIssuer},
		{"audience differs in case", authtest.Claims{Audience: strings.ToUpper(authtest.Audience)}, auth.ErrTokenAudience},
		{"exp a string", authtest.Claims{Extra: map[string]any{"exp": "tomorrow"}}, auth.ErrTokenClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Subject = "alice"
			_, err := a.Verify(context.Background(), k.rsa.Token(t, tc.c))
			if !errors.Is(err, tc.want) || (err != nil) != (tc.want != nil) {
				t.Errorf("Verify err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyTokenTypes(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	claims := authtest.Claims{Subject: "alice"}.Map()
	for _, typ := range []any{nil, "JWT", "jwt", "at+jwt", "application/at+JWT"} {
		header := map[string]any{"kid": k.rsa.ID}
		if typ != nil {
			header["typ"] = typ
		}
		if _, err := a.Verify(context.Background(), k.rsa.Sign(t, header, claims)); err != nil {
			t.Errorf("Verify(typ %v) err = %v, want nil", typ, err)
		}
	}
	for _, typ := range []any{"logout+jwt", "JOSE", 7} {
		header := map[string]any{"kid": k.rsa.ID, "typ": typ}
		if _, err := a.Verify(context.Background(), k.rsa.Sign(t, header, claims)); !errors.Is(err, auth.ErrTokenType) {
			t.Errorf("Verify(typ %v) err = %v, want %v", typ, err, auth.ErrTokenType)
		}
	}
}

func TestVerifyTokenSize(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	// Pad a claim so that the token is just within, then just over, the
	// limit.
	base := k.ed.Token(t, authtest.Claims{Subject: "alice", Extra: map[string]any{"pad": ""}})
	pad := (auth.MaxTokenBytes - len(base)) * 3 / 4
	var tok string
	for ; ; pad++ {
		tok = k.ed.Token(t, authtest.Claims{Subject: "alice", Extra: map[string]any{"pad": strings.Repeat("x", pad)}})
		if len(tok) > auth.MaxTokenBytes-4 {
			break
		}
	}
	if len(tok) > auth.MaxTokenBytes {
		t.Fatalf("token of %d bytes, want at most %d", len(tok), auth.MaxTokenBytes)
	}
	if _, err := a.Verify(context.Background(), tok); err != nil {
		t.Errorf("Verify(%d bytes) err = %v, want nil", len(tok), err)
	}
	big := k.ed.Token(t, authtest.Claims{Subject: "alice", Extra: map[string]any{"pad": strings.Repeat("x", pad+8)}})
	if _, err := a.Verify(context.Background(), big); !errors.Is(err, auth.ErrTokenTooLarge) {
		t.Errorf("Verify(%d bytes) err = %v, want %v", len(big), err, auth.ErrTokenTooLarge)
	}
}

func TestNewRejectsConfig(t *testing.T) {
	k := newKeys(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak := filepath.Join(dir, "weak.json")
	authtest.WriteJWKS(t, weak, &authtest.Key{ID: "weak", Alg: jose.RS256, Signer: rsa1024})
	oct := write("oct.json", `{"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)
	enc := filepath.Join(dir, "enc.json")
	authtest.WriteJWKS(t, enc, k.rsa)
	if err := os.WriteFile(enc, []byte(strings.Replace(string(readFile(t, enc)), `"use":"sig"`, `"use":"enc"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	dup := write("dup.json", strings.Replace(string(authtest.JWKS(t, k.rsa, k.ec)), k.ec.ID, k.rsa.ID, 1))
	wrongAlg := write("alg.json", strings.Replace(string(authtest.JWKS(t, k.rsa)), `"alg":"RS256"`, `"alg":"PS256"`, 1))

	ok := auth.Config{Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience, JWKS: k.jwks}
	with := func(edit func(*auth.Config)) auth.Config {
		c := ok
		edit(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  auth.Config
		want string // in the error
	}{
		{"no mode", auth.Config{}, "mode"},
		{"unknown mode", auth.Config{Mode: "oidc"}, "mode"},
		{"none with an issuer", auth.Config{Mode: auth.ModeNone, Issuer: authtest.Issuer}, "mode none"},
		{"no issuer", with(func(c *auth.Config) { c.Issuer = "" }), "issuer"},
		{"no audience", with(func(c *auth.Config) { c.Audience = " " }), "audience"},
		{"no JWKS", with(func(c *auth.Config) { c.JWKS = "" }), "JWKS"},
		{"http URL", with(func(c *auth.Config) { c.JWKS = "http://idp.example/jwks" }), "https"},
		{"file URL", with(func(c *auth.Config) { c.JWKS = "file:///etc/jwks.json" }), "path"},
		{"negative skew", with(func(c *auth.Config) { c.Skew = -time.Second }), "skew"},
		{"skew above the cap", with(func(c *auth.Config) { c.Skew = auth.MaxSkew + time.Second }), "skew"},
		{"negative refresh", with(func(c *auth.Config) { c.RefreshInterval = -time.Second }), "negative"},
		{"missing file", with(func(c *auth.Config) { c.JWKS = filepath.Join(dir, "nope.json") }), "no such file"},
		{"not a JWKS", with(func(c *auth.Config) { c.JWKS = write("junk.json", "<html>") }), "not a JWKS"},
		{"empty JWKS", with(func(c *auth.Config) { c.JWKS = write("empty.json", `{"keys":[]}`) }), "no usable signing key"},
		{"RSA key too short", with(func(c *auth.Config) { c.JWKS = weak }), "no usable signing key"},
		{"symmetric key", with(func(c *auth.Config) { c.JWKS = oct }), "no usable signing key"},
		{"encryption key", with(func(c *auth.Config) { c.JWKS = enc }), "no usable signing key"},
		{"alg not of the key", with(func(c *auth.Config) { c.JWKS = wrongAlg }), "no usable signing key"},
		{"duplicate key ids", with(func(c *auth.Config) { c.JWKS = dup }), "two keys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := auth.New(context.Background(), tc.cfg)
			if err == nil {
				a.Close()
				t.Fatalf("New(%+v) err = nil, want one about %q", tc.cfg, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) err = %v, want one about %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJWKSSkipsUnusableKeys checks that a JWKS with keys auth cannot use
// (here a symmetric one and one of unknown type) still serves the others.
func TestJWKSSkipsUnusableKeys(t *testing.T) {
	k := newKeys(t)
	doc := strings.Replace(string(authtest.JWKS(t, k.ec)), `"keys":[`,
		`"keys":[{"kty":"oct","kid":"hmac","k":"c2VjcmV0"},{"kty":"XYZ","kid":"odd"},`, 1)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAuth(t, auth.Config{JWKS: path})
	if _, err := a.Verify(context.Background(), k.ec.Token(t, authtest.Claims{Subject: "alice"})); err != nil {
		t.Errorf("Verify err = %v, want nil", err)
	}
}

func TestModeNone(t *testing.T) {
	a, err := auth.New(context.Background(), auth.Config{Mode: auth.ModeNone})
	if err != nil {
		t.Fatalf("New(none) err = %v", err)
	}
	defer a.Close()
	if got := a.Mode(); got != auth.ModeNone {
		t.Errorf("Mode() = %q, want %q", got, auth.ModeNone)
	}
	if _, err := a.Verify(context.Background(), "x.y.z"); err == nil {
		t.Error("Verify in mode none err = nil, want an error")
	}
}

func TestCloseStopsRefresh(t *testing.T) {
	k := newKeys(t)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := auth.New(ctx, auth.Config{Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience, JWKS: k.jwks, RefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cancel() // stops the refresher on its own…
	a.Close()
	a.Close() // …and Close waits for it, as often as it is called.
	// Keys known are still used.
	if _, err := a.Verify(context.Background(), k.rsa.Token(t, authtest.Claims{Subject: "alice"})); err != nil {
		t.Errorf("Verify after Close err = %v, want nil", err)
	}
	// An unknown key fails at once instead of waiting for a refresh.
	other := authtest.NewKey(t, jose.ES256)
	if _, err := a.Verify(context.Background(), other.Token(t, authtest.Claims{Subject: "alice"})); !errors.Is(err, auth.ErrTokenUnknownKey) {
		t.Errorf("Verify(unknown key) after Close err = %v, want %v", err, auth.ErrTokenUnknownKey)
	}
}

func TestInsecure(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9090", false},
		{"127.0.0.1:0", false},
		{"[::1]:8080", false},
		{"localhost:8080", false},
		{"LocalHost:8080", false},
		{":8080", true},
		{"0.0.0.0:8080", true},
		{"[::]:8080", true},
		{"10.0.0.5:8080", true},
		{"usersd.internal:8080", true},
		{"garbage", true},
	}
	for _, tc := range tests {
		if got := auth.Insecure(tc.addr); got != tc.want {
			t.Errorf("Insecure(%q) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
