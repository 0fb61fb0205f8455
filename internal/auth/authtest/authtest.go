// Package authtest issues JWTs for the tests of code behind package auth:
// signing keys of each kind auth accepts, their JWKS, tokens with the
// claims a test chooses, and a table of hostile tokens.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The issuer and audience of the tokens Key.Token signs unless told
// otherwise.
const (
	Issuer   = "https://issuer.usersd.test/"
	Audience = "usersd-test"
)

// Key is a signing key with its key id.
type Key struct {
	ID     string
	Alg    jose.SignatureAlgorithm
	Signer crypto.Signer
}

// NewKey returns a new key for alg (jose.RS256: RSA 2048 bits; jose.ES256:
// ECDSA P-256; jose.EdDSA: Ed25519) with a random key id.
func NewKey(t testing.TB, alg jose.SignatureAlgorithm) *Key {
	t.Helper()
	var (
		signer crypto.Signer
		err    error
	)
	switch alg {
	case jose.RS256:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("authtest.NewKey: unsupported algorithm %s", alg)
	}
	if err != nil {
		t.Fatalf("generating a %s key: %v", alg, err)
	}
	return &Key{ID: strings.ToLower(string(alg)) + "-" + rand.Text()[:8], Alg: alg, Signer: signer}
}

// JWK returns the public JWK of k, with its kid, alg and use.
func (k *Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Signer.Public(), KeyID: k.ID, Algorithm: string(k.Alg), Use: "sig"}
}

// JWKS returns the JWKS document of the public keys.
func JWKS(t testing.TB, keys ...*Key) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatalf("marshalling a JWKS: %v", err)
	}
	return b
}

// WriteJWKS writes the JWKS of keys to path, atomically (a reader sees the
// old document or the new one), as a mounted secret changes.
func WriteJWKS(t testing.TB, path string, keys ...*Key) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, JWKS(t, keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// Claims are the claims of a token. Zero fields take defaults: Issuer,
// Audience, an expiry an hour from now and an issue time of now.
type Claims struct {
	Subject   string
	Scopes    []string // the "scope" claim, space-separated; none when empty
	Issuer    string
	Audience  string
	Expiry    time.Time
	NotBefore time.Time // no "nbf" when zero
	IssuedAt  time.Time
	NoExpiry  bool           // leave "exp" out
	Extra     map[string]any // more claims, or replacements
}

// Map returns the claims as a JSON object.
func (c Claims) Map() map[string]any {
	now := time.Now()
	m := map[string]any{
		"iss": or(c.Issuer, Issuer),
		"aud": or(c.Audience, Audience),
		"iat": orTime(c.IssuedAt, now).Unix(),
		"exp": orTime(c.Expiry, now.Add(time.Hour)).Unix(),
		"jti": rand.Text(),
	}
	if c.Subject != "" {
		m["sub"] = c.Subject
	}
	if len(c.Scopes) > 0 {
		m["scope"] = strings.Join(c.Scopes, " ")
	}
	if !c.NotBefore.IsZero() {
		m["nbf"] = c.NotBefore.Unix()
	}
	if c.NoExpiry {
		delete(m, "exp")
	}
	for k, v := range c.Extra {
		m[k] = v
	}
	return m
}

// Token returns a token with the claims c, signed by k, with typ "JWT".
func (k *Key) Token(t testing.TB, c Claims) string {
	t.Helper()
	return k.Sign(t, map[string]any{"kid": k.ID, "typ": "JWT"}, c.Map())
}

// Sign returns a compact JWS of payload (marshalled to JSON), signed by k,
// with k's alg and the header fields given (kid among them, or none).
func (k *Key) Sign(t testing.TB, header map[string]any, payload any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: map[jose.HeaderKey]any{}}
	for name, v := range header {
		opts.ExtraHeaders[jose.HeaderKey(name)] = v
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: k.Signer}, opts)
	if err != nil {
		t.Fatalf("jose.NewSigner: %v", err)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(b)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Unsigned returns a compact JWS with the header and payload given and
// the signature sig (base64url-encoded as is), for tokens no library
// would sign.
func Unsigned(t testing.TB, header map[string]any, payload any, sig []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}

// Hostile is a credential a server must refuse with UNAUTHENTICATED (HTTP
// 401) and a WWW-Authenticate challenge.
type Hostile struct {
	Name string
	// Authorization is the whole header value; "" sends none.
	Authorization string
	// Reason is the error_description expected in the challenge, the
	// text of an auth.TokenError; "" for a challenge without an error code
	// (no token, or another scheme).
	Reason string
}

// HostileTokens returns the hostile credentials a server trusting the JWKS
// of rsaKey (a jose.RS256 key) and sub's users must refuse; every token
// would be valid but for its one flaw. other must be an ES256 key of the
// same JWKS.
func HostileTokens(t testing.TB, rsaKey, other *Key, sub string) []Hostile {
	t.Helper()
	if rsaKey.Alg != jose.RS256 || other.Alg != jose.ES256 {
		t.Fatalf("authtest.HostileTokens: want an RS256 and an ES256 key, got %s and %s", rsaKey.Alg, other.Alg)
	}
	now := time.Now()
	good := Claims{Subject: sub, Scopes: []string{"users.admin"}}
	valid := rsaKey.Token(t, good)
	with := func(edit func(*Claims)) string {
		c := good
		edit(&c)
		return rsaKey.Token(t, c)
	}

	// Key confusion: HS256 with the RSA public key, as PEM, as the secret.
	der, err := x509.MarshalPKIXPublicKey(rsaKey.Signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hsHeader, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": rsaKey.ID})
	hsPayload, _ := json.Marshal(good.Map())
	input := base64.RawURLEncoding.EncodeToString(hsHeader) + "." + base64.RawURLEncoding.EncodeToString(hsPayload)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	confused := input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	// An attacker's key, under the id of a trusted one or its own.
	forger := NewKey(t, jose.RS256)
	forgerJWK := forger.JWK()

	parts := strings.Split(valid, ".")
	bearer := func(tok string) string { return "Bearer " + tok }
	return []Hostile{
		{"no token", "", ""},
		{"wrong scheme", "Basic dXNlcjpwYXNzd29yZA==", ""},
		{"empty bearer", "Bearer ", "empty bearer token"},
		{"garbage", bearer("not-a-jwt"), "malformed token"},
		{"truncated in the payload", bearer(parts[0] + "." + parts[1][:len(parts[1])/2]), "malformed token"},
		{"truncated in the signature", bearer(valid[:len(valid)-len(parts[2])/2]), "invalid signature"},
		{"signature cut off", bearer(parts[0] + "." + parts[1] + "."), "invalid signature"},
		{"huge (1 MiB)", bearer(parts[0] + "." + strings.Repeat("A", 1<<20) + "." + parts[2]), "token too large"},
		{"expired", bearer(with(func(c *Claims) { c.Expiry, c.IssuedAt = now.Add(-time.Hour), now.Add(-2*time.Hour) })), "token expired"},
		{"expired beyond the skew", bearer(with(func(c *Claims) { c.Expiry = now.Add(-2 * time.Minute) })), "token expired"},
		{"not yet valid", bearer(with(func(c *Claims) { c.NotBefore = now.Add(time.Hour) })), "token not valid yet"},
		{"issued in the future", bearer(with(func(c *Claims) { c.IssuedAt = now.Add(time.Hour) })), "token issued in the future"},
		{"no expiry", bearer(with(func(c *Claims) { c.NoExpiry = true })), "token has no expiry"},
		{"wrong issuer", bearer(with(func(c *Claims) { c.Issuer = "https://evil.example/" })), "wrong issuer"},
		{"wrong audience", bearer(with(func(c *Claims) { c.Audience = "another-service" })), "wrong audience"},
		{"no subject", bearer(with(func(c *Claims) { c.Subject = "" })), "token has no subject"},
		{"bad signature", bearer(forger.Sign(t, map[string]any{"kid": rsaKey.ID, "typ": "JWT"}, good.Map())), "invalid signature"},
		{"alg none", bearer(Unsigned(t, map[string]any{"alg": "none", "typ": "JWT", "kid": rsaKey.ID}, good.Map(), nil)), "unsupported signing algorithm"},
		{"HS256 key confusion", bearer(confused), "unsupported signing algorithm"},
		{"unknown kid", bearer(forger.Token(t, good)), "unknown signing key"},
		{"no kid", bearer(rsaKey.Sign(t, map[string]any{"typ": "JWT"}, good.Map())), "token names no key id"},
		{"embedded jwk", bearer(forger.Sign(t, map[string]any{"kid": rsaKey.ID, "jwk": forgerJWK}, good.Map())), "unknown signing key"},
		{"key of another algorithm", bearer(other.Sign(t, map[string]any{"kid": rsaKey.ID}, good.Map())), "signing key does not match the algorithm"},
		{"wrong type", bearer(rsaKey.Sign(t, map[string]any{"kid": rsaKey.ID, "typ": "dpop+jwt"}, good.Map())), "unsupported token type"},
		{"JSON serialization", bearer(`{"payload":"` + parts[1] + `","signatures":[]}`), "malformed token"},
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}
