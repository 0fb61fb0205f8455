package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/usersd/usersd/internal/users"
)

// algorithms are the signature algorithms a token may use. HMAC and "none"
// are not among them, so a token "signed" with the public key as an HMAC
// secret, or not at all, never reaches a key.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// TokenError is why a token was rejected. Its text is fixed, safe to show
// the client (it becomes the error_description of the WWW-Authenticate
// challenge) and never repeats what the token says.
type TokenError string

func (e TokenError) Error() string { return string(e) }

// The reasons a call's credentials are rejected. ErrTokenMissing and
// ErrTokenScheme (the authorization is not a bearer token, e.g. "Basic …")
// mean there was no token: their challenge carries no error code (RFC
// 6750, section 3.1).
const (
	ErrTokenMissing    TokenError = "missing bearer token"
	ErrTokenScheme     TokenError = "authorization is not a bearer token"
	ErrTokenEmpty      TokenError = "empty bearer token"
	ErrTokenRepeated   TokenError = "more than one authorization header"
	ErrTokenTooLarge   TokenError = "token too large"
	ErrTokenMalformed  TokenError = "malformed token"
	ErrTokenAlgorithm  TokenError = "unsupported signing algorithm"
	ErrTokenType       TokenError = "unsupported token type"
	ErrTokenNoKeyID    TokenError = "token names no key id"
	ErrTokenUnknownKey TokenError = "unknown signing key"
	ErrTokenKeyMisuse  TokenError = "signing key does not match the algorithm"
	ErrTokenSignature  TokenError = "invalid signature"
	ErrTokenClaims     TokenError = "malformed claims"
	ErrTokenIssuer     TokenError = "wrong issuer"
	ErrTokenAudience   TokenError = "wrong audience"
	ErrTokenNoExpiry   TokenError = "token has no expiry"
	ErrTokenExpired    TokenError = "token expired"
	ErrTokenNotYet     TokenError = "token not valid yet"
	ErrTokenFuture     TokenError = "token issued in the future"
	ErrTokenNoSubject  TokenError = "token has no subject"
)

// claims are the claims of a token that matter here.
type claims struct {
	jwt.Claims
	Scope scopeList `json:"scope"` // RFC 8693, RFC 9068: a space-separated string
	Scp   scopeList `json:"scp"`   // Okta, Microsoft Entra ID: a string or an array
}

// scopeList is a claim holding scopes as a space-separated string or an
// array of strings.
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = strings.Fields(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("scope is neither a string nor an array of strings")
	}
	*s = list
	return nil
}

// Verify checks a bearer token (without the "Bearer " prefix): its size,
// algorithm, type, key, signature, issuer, audience, expiry, start and
// subject. It returns the caller it names, or a TokenError. It fails with
// ErrTokenMissing when the Authenticator's mode is none.
func (a *Authenticator) Verify(ctx context.Context, token string) (Principal, error) {
	if a.keys == nil {
		return Principal{}, ErrTokenMissing
	}
	if len(token) > MaxTokenBytes {
		return Principal{}, ErrTokenTooLarge
	}
	if token == "" {
		return Principal{}, ErrTokenEmpty
	}
	sig, err := jose.ParseSignedCompact(token, algorithms)
	if err != nil {
		return Principal{}, parseError(token)
	}
	if len(sig.Signatures) != 1 {
		return Principal{}, ErrTokenMalformed
	}
	h := sig.Signatures[0].Header
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok && !tokenType(typ) {
		return Principal{}, ErrTokenType
	}
	if h.JSONWebKey != nil || h.ExtraHeaders["jku"] != nil || h.ExtraHeaders["x5u"] != nil {
		// Keys come from the JWKS alone, never from the token.
		return Principal{}, ErrTokenUnknownKey
	}
	if h.KeyID == "" {
		return Principal{}, ErrTokenNoKeyID
	}
	key, ok := a.keys.key(ctx, h.KeyID)
	if !ok {
		return Principal{}, ErrTokenUnknownKey
	}
	if algorithmOf(key.Key) != jose.SignatureAlgorithm(h.Algorithm) {
		return Principal{}, ErrTokenKeyMisuse
	}
	payload, err := sig.Verify(key.Key)
	if err != nil {
		return Principal{}, ErrTokenSignature
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return Principal{}, ErrTokenClaims
	}
	if err := a.check(c.Claims, time.Now()); err != nil {
		return Principal{}, err
	}
	tenant, err := a.tenant(payload)
	if err != nil {
		return Principal{}, err
	}
	p := principal(c.Subject, c.Scope, c.Scp)
	p.Tenant = tenant
	return p, nil
}

// tenant returns the tenant id in the token's tenant claim, "" when it has
// none, or ErrTokenClaims when the claim is not a tenant id.
func (a *Authenticator) tenant(payload []byte) (string, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(payload, &all); err != nil {
		return "", ErrTokenClaims
	}
	raw, ok := all[a.tenantClaim]
	if !ok {
		return "", nil
	}
	var t string
	if err := json.Unmarshal(raw, &t); err != nil || users.CheckTenantID("tenant", t) != nil {
		return "", ErrTokenClaims
	}
	return t, nil
}

// check validates the registered claims at now.
func (a *Authenticator) check(c jwt.Claims, now time.Time) error {
	if c.Expiry == nil {
		return ErrTokenNoExpiry
	}
	err := c.ValidateWithLeeway(jwt.Expected{Issuer: a.issuer, AnyAudience: jwt.Audience{a.audience}, Time: now}, a.skew)
	switch {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return ErrTokenIssuer
	case errors.Is(err, jwt.ErrInvalidAudience):
		return ErrTokenAudience
	case errors.Is(err, jwt.ErrExpired):
		return ErrTokenExpired
	case errors.Is(err, jwt.ErrNotValidYet):
		return ErrTokenNotYet
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return ErrTokenFuture
	case err != nil:
		return ErrTokenClaims
	}
	if c.Subject == "" {
		return ErrTokenNoSubject
	}
	return nil
}

// tokenType reports whether a "typ" header names a JWT access token (RFC
// 9068) or a plain JWT. Other types (logout tokens, DPoP proofs, …) are
// meant for other purposes (RFC 8725, section 3.11).
func tokenType(typ any) bool {
	s, ok := typ.(string)
	if !ok {
		return false
	}
	switch strings.TrimPrefix(strings.ToLower(s), "application/") {
	case "jwt", "at+jwt":
		return true
	}
	return false
}

// parseError tells a token with a refused algorithm from one that is
// malformed, by a best-effort look at its header.
func parseError(token string) TokenError {
	head, _, ok := strings.Cut(token, ".")
	if !ok {
		return ErrTokenMalformed
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ErrTokenMalformed
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil || h.Alg == "" {
		return ErrTokenMalformed
	}
	for _, alg := range algorithms {
		if h.Alg == string(alg) {
			return ErrTokenMalformed
		}
	}
	return ErrTokenAlgorithm
}
