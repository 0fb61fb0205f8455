package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/ratelimit"
)

// authGateway is the HTTP API with authentication on, and the keys its
// JWKS holds.
type authGateway struct {
	h       http.Handler
	rsa, ec *authtest.Key
}

// newAuthGateway returns the gateway of newAPIGateway with an
// Authenticator trusting two fresh keys in chain.Auth.
func newAuthGateway(t *testing.T, chain grpcserver.ChainConfig) *authGateway {
	t.Helper()
	g := &authGateway{rsa: authtest.NewKey(t, jose.RS256), ec: authtest.NewKey(t, jose.ES256)}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, jwks, g.rsa, g.ec)
	a, err := auth.New(context.Background(), auth.Config{Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience, JWKS: jwks})
	if err != nil {
		t.Fatalf("auth.New err = %v", err)
	}
	t.Cleanup(a.Close)
	chain.Auth = a.UnaryInterceptor()
	g.h = newAPIGateway(t, gateway.Options{}, chain)
	return g
}

// callAuth serves one request on h with the Authorization header authz,
// or none when it is empty.
func callAuth(t *testing.T, h http.Handler, method, path, body, authz string) *httptest.ResponseRecorder {
	t.Helper()
	if authz == "" {
		return call(t, h, method, path, body)
	}
	return call(t, h, method, path, body, "Authorization", authz)
}

func (g *authGateway) bearer(t *testing.T, sub string, scopes ...string) string {
	t.Helper()
	return "Bearer " + g.ec.Token(t, authtest.Claims{Subject: sub, Scopes: scopes})
}

// TestAuthHostileTokensHTTP sends every hostile credential through the
// gateway, to v1 and v2, and logs the status and challenge each got: 401
// with exactly one RFC 6750 challenge and a google.rpc.Status body, never
// a 500.
func TestAuthHostileTokensHTTP(t *testing.T) {
	g := newAuthGateway(t, grpcserver.ChainConfig{})
	self := uuid.NewString()
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-28s | %-4s | %s\n", "credential", "HTTP", "WWW-Authenticate")
	for _, h := range authtest.HostileTokens(t, g.rsa, g.ec, self) {
		t.Run(h.Name, func(t *testing.T) {
			want := `Bearer realm="usersd"`
			if h.Reason != "" {
				want += `, error="invalid_token", error_description="` + h.Reason + `"`
			}
			for _, path := range []string{"/v1/users", "/v2/users/" + self} {
				w := callAuth(t, g.h, "GET", path, "", h.Authorization)
				if w.Code != http.StatusUnauthorized {
					t.Errorf("GET %s status = %d, want 401; body %s", path, w.Code, w.Body)
				}
				if got := w.Header().Values("WWW-Authenticate"); len(got) != 1 || got[0] != want {
					t.Errorf("GET %s WWW-Authenticate = %q, want [%q]", path, got, want)
				}
				if body := decode(t, w); body["code"] != 16.0 {
					t.Errorf("GET %s body = %v, want code 16 (UNAUTHENTICATED)", path, body)
				}
				if path == "/v1/users" {
					fmt.Fprintf(&table, "%-28s | %-4d | %s\n", h.Name, w.Code, strings.Join(w.Header().Values("WWW-Authenticate"), "; "))
				}
			}
		})
	}
	t.Log(table.String())
}

// TestAuthHTTPStatuses checks the statuses of authorized and refused calls
// over HTTP, self-service included.
func TestAuthHTTPStatuses(t *testing.T) {
	g := newAuthGateway(t, grpcserver.ChainConfig{})
	writer := g.bearer(t, uuid.NewString(), auth.ScopeWrite)
	w := call(t, g.h, "POST", "/v1/users", `{"email":"ada@example.com","displayName":"Ada"}`, "Authorization", writer)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /v1/users as users.write status = %d, want 201; body %s", w.Code, w.Body)
	}
	id := decode(t, w)["id"].(string)
	self := g.bearer(t, id)
	nobody := g.bearer(t, uuid.NewString(), "openid")

	tests := []struct {
		name, method, path, body, authz string
		want                            int
		challenge                       string // of a 403
	}{
		{"reader lists", "GET", "/v1/users", "", g.bearer(t, "x", auth.ScopeRead), http.StatusOK, ""},
		{"no scopes lists", "GET", "/v1/users", "", nobody, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.read", scope="users.read"`},
		{"self gets, v1", "GET", "/v1/users/" + id, "", self, http.StatusOK, ""},
		{"self gets, v2", "GET", "/v2/users/" + id, "", self, http.StatusOK, ""},
		{"self gets, negotiated", "GET", "/users/" + id, "", self, http.StatusOK, ""},
		{"self renames itself", "PATCH", "/v1/users/" + id, `{"displayName":"Ada L."}`, self, http.StatusOK, ""},
		{"self labels itself, v2", "PATCH", "/v2/users/" + id, `{"labels":{"team":"core"}}`, self, http.StatusOK, ""},
		{"self changes its email", "PATCH", "/v1/users/" + id, `{"email":"ada@evil.example"}`, self, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.write", scope="users.write"`},
		{"self suspends itself", "PATCH", "/v2/users/" + id, `{"state":"STATE_SUSPENDED"}`, self, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.write", scope="users.write"`},
		{"self deletes itself", "DELETE", "/v1/users/" + id, "", self, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.write", scope="users.write"`},
		{"writer imports", "POST", "/v1/users:import", `{"requestId":"r1","users":[{"email":"b@example.com","displayName":"B"}]}`, writer, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.admin", scope="users.admin"`},
		{"reader lists events", "GET", "/v1/userEvents", "", g.bearer(t, "x", auth.ScopeRead), http.StatusOK, ""},
		{"self lists events", "GET", "/v1/userEvents", "", self, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.read", scope="users.read"`},
		{"writer lists webhooks", "GET", "/v1/webhooks", "", writer, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.admin", scope="users.admin"`},
		{"admin lists webhooks", "GET", "/v1/webhooks", "", g.bearer(t, "x", auth.ScopeAdmin), http.StatusOK, ""},
		{"no token, invalid request", "GET", "/v1/users/not-a-uuid", "", "", http.StatusUnauthorized, ""},
		{"no scopes, invalid request", "GET", "/v1/users/not-a-uuid", "", nobody, http.StatusForbidden,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.read", scope="users.read"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := callAuth(t, g.h, tc.method, tc.path, tc.body, tc.authz)
			if w.Code != tc.want {
				t.Fatalf("%s %s status = %d, want %d; body %s", tc.method, tc.path, w.Code, tc.want, w.Body)
			}
			got := w.Header().Values("WWW-Authenticate")
			switch {
			case tc.want == http.StatusUnauthorized:
				if len(got) != 1 || got[0] != `Bearer realm="usersd"` {
					t.Errorf("WWW-Authenticate = %q, want [%q]", got, `Bearer realm="usersd"`)
				}
			case tc.challenge != "":
				if len(got) != 1 || got[0] != tc.challenge {
					t.Errorf("WWW-Authenticate = %q, want [%q]", got, tc.challenge)
				}
			case len(got) != 0:
				t.Errorf("WWW-Authenticate = %q, want none", got)
			}
			if h := w.Header().Get("Grpc-Metadata-Www-Authenticate"); h != "" {
				t.Errorf("Grpc-Metadata-Www-Authenticate = %q, want none", h)
			}
		})
	}
}

// TestAuthorizationHeaderOnly checks that credentials come from the
// Authorization header alone: Grpc-Metadata-Authorization is not
// forwarded.
func TestAuthorizationHeaderOnly(t *testing.T) {
	g := newAuthGateway(t, grpcserver.ChainConfig{})
	admin := g.bearer(t, uuid.NewString(), auth.ScopeAdmin)
	if w := call(t, g.h, "GET", "/v1/users", "", "Grpc-Metadata-Authorization", admin); w.Code != http.StatusUnauthorized {
		t.Errorf("GET with Grpc-Metadata-Authorization only: status = %d, want 401", w.Code)
	}
	if w := call(t, g.h, "GET", "/v1/users", "", "Authorization", admin, "Grpc-Metadata-Authorization", "Bearer garbage"); w.Code != http.StatusOK {
		t.Errorf("GET with Authorization and Grpc-Metadata-Authorization: status = %d, want 200; body %s", w.Code, w.Body)
	}
	if w := call(t, g.h, "GET", "/v1/users", "", "Authorization", "bearer "+strings.TrimPrefix(admin, "Bearer ")); w.Code != http.StatusOK {
		t.Errorf("GET with scheme in lower case: status = %d, want 200; body %s", w.Code, w.Body)
	}
}

// TestRetryAfterHeader runs the per-caller rate limit behind
// authentication: a caller past its limit gets 429 with Retry-After, and
// the limit is the caller's own.
func TestRetryAfterHeader(t *testing.T) {
	limiter, err := ratelimit.New(ratelimit.Config{Rate: rate.Limit(0.001), Burst: 1}, ratelimit.SubjectKey(auth.Subject))
	if err != nil {
		t.Fatal(err)
	}
	g := newAuthGateway(t, grpcserver.ChainConfig{RateLimit: limiter.UnaryServerInterceptor()})
	alice, bob := g.bearer(t, "alice", auth.ScopeRead), g.bearer(t, "bob", auth.ScopeRead)

	if w := call(t, g.h, "GET", "/v1/users", "", "Authorization", alice); w.Code != http.StatusOK {
		t.Fatalf("alice's first GET status = %d, want 200; body %s", w.Code, w.Body)
	}
	w := call(t, g.h, "GET", "/v1/users", "", "Authorization", alice)
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("alice's second GET status = %d, want 429; body %s", w.Code, w.Body)
	}
	if secs, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || secs < 1 {
		t.Errorf("Retry-After = %q, want a positive number of seconds", w.Header().Get("Retry-After"))
	}
	if h := w.Header().Get("Grpc-Metadata-Retry-After"); h != "" {
		t.Errorf("Grpc-Metadata-Retry-After = %q, want none", h)
	}
	if w := call(t, g.h, "GET", "/v1/users", "", "Authorization", bob); w.Code != http.StatusOK {
		t.Errorf("bob's GET status = %d, want 200 (his own limit); body %s", w.Code, w.Body)
	}
}
