package auth

import (
	"cmp"
	"context"
	"net/http"
	"strings"

	"github.com/usersd/usersd/internal/users"
)

// SCIMAuthenticator authenticates the requests of the SCIM service
// (internal/scim's Authenticator): a bearer JWT, verified as the API's
// are (Verify), with ScopeSCIM, bound to the tenant of the URL (its
// tenant claim; none is the default tenant). A caller with
// ScopeTenantsAdmin may provision any tenant.
type SCIMAuthenticator struct {
	a *Authenticator
}

// NewSCIMAuthenticator returns the SCIM authenticator of a, which must be
// in ModeJWT (with ModeNone the SCIM service is not authenticated: give it
// no authenticator).
func NewSCIMAuthenticator(a *Authenticator) *SCIMAuthenticator {
	return &SCIMAuthenticator{a: a}
}

// SCIMError is a refused SCIM request: 401 (no valid token), 403 (no
// ScopeSCIM) or 404 (a token of another tenant: the answer does not tell
// whether the tenant exists).
type SCIMError struct {
	// Status is the HTTP status.
	Status int
	// Reason is a fixed text, safe to show the client.
	Reason string
	// challenge is the WWW-Authenticate value of a 401 or 403.
	challenge string
}

func (e *SCIMError) Error() string { return e.Reason }

// StatusCode is the HTTP status of the answer.
func (e *SCIMError) StatusCode() int { return e.Status }

// Challenge is the WWW-Authenticate value of the answer, "" for a 404.
func (e *SCIMError) Challenge() string { return e.challenge }

// Authenticate returns the request's context carrying the caller
// (NewContext) and bound to tenant (users.BindTenant), or a *SCIMError.
func (s *SCIMAuthenticator) Authenticate(r *http.Request, tenant string) (context.Context, error) {
	p, err := s.principal(r)
	if err != nil {
		te, ok := err.(TokenError)
		if !ok {
			te = ErrTokenMalformed
		}
		return nil, &SCIMError{Status: http.StatusUnauthorized, Reason: string(te), challenge: challenge(te)}
	}
	if !p.Has(ScopeSCIM) {
		d := &denial{scope: ScopeSCIM}
		return nil, &SCIMError{Status: http.StatusForbidden, Reason: d.Error(), challenge: scopeChallenge(d)}
	}
	if !p.Has(ScopeTenantsAdmin) && cmp.Or(p.Tenant, users.DefaultTenant) != tenant {
		return nil, &SCIMError{Status: http.StatusNotFound, Reason: "resource not found"}
	}
	return users.BindTenant(NewContext(r.Context(), p), tenant), nil
}

// principal returns the caller of the request's Authorization header.
func (s *SCIMAuthenticator) principal(r *http.Request) (Principal, error) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return Principal{}, ErrTokenMissing
	case 1:
	default:
		return Principal{}, ErrTokenRepeated
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, ErrTokenScheme
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return Principal{}, ErrTokenEmpty
	}
	return s.a.Verify(r.Context(), token)
}
