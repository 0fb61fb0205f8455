package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/users"
)

// TestSCIMAuthenticator: a SCIM request needs a valid bearer JWT (401),
// the scim scope (403), and its tenant (404, as if the tenant did not
// exist); tenants.admin provisions any tenant; the context carries the
// caller and is bound to the URL's tenant.
func TestSCIMAuthenticator(t *testing.T) {
	k := newKeys(t)
	s := auth.NewSCIMAuthenticator(newAuth(t, auth.Config{JWKS: k.jwks}))
	token := func(tenant string, scopes ...string) string {
		c := authtest.Claims{Subject: "idp", Scopes: scopes}
		if tenant != "" {
			c.Extra = map[string]any{"tenant": tenant}
		}
		return "Bearer " + k.ed.Token(t, c)
	}
	for _, tc := range []struct {
		name, authz, tenant string
		status              int
		challenge           string
	}{
		{"no token", "", "acme", 401, `Bearer realm="usersd"`},
		{"basic", "Basic dXNlcjpwYXNz", "acme", 401, `Bearer realm="usersd"`},
		{"malformed", "Bearer x.y.z", "acme", 401, `error="invalid_token"`},
		{"no scim scope", token("acme", "users.admin"), "acme", 403, `scope="scim"`},
		{"another tenant", token("other", "scim"), "acme", 404, ""},
		{"default tenant's token elsewhere", token("", "scim"), "acme", 404, ""},
		{"its tenant", token("acme", "scim"), "acme", 0, ""},
		{"default tenant", token("", "scim"), users.DefaultTenant, 0, ""},
		{"platform", token("", "tenants.admin"), "acme", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/scim/v2/tenants/"+tc.tenant+"/Users", nil)
			if tc.authz != "" {
				r.Header.Set("Authorization", tc.authz)
			}
			ctx, err := s.Authenticate(r, tc.tenant)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if b, ok := users.BoundTenant(ctx); !ok || b != tc.tenant {
					t.Errorf("bound to %q, %v; want %q", b, ok, tc.tenant)
				}
				if p, ok := auth.FromContext(ctx); !ok || !p.Has(auth.ScopeSCIM) {
					t.Errorf("principal %+v, %v", p, ok)
				}
				return
			}
			se, ok := err.(*auth.SCIMError)
			if !ok || se.StatusCode() != tc.status {
				t.Fatalf("err = %v, want a SCIMError %d", err, tc.status)
			}
			if !strings.Contains(se.Challenge(), tc.challenge) || (tc.challenge == "") != (se.Challenge() == "") {
				t.Errorf("challenge %q, want one with %q", se.Challenge(), tc.challenge)
			}
			if tc.status == http.StatusNotFound && se.Error() != "resource not found" {
				t.Errorf("404 says %q", se.Error())
			}
		})
	}
}

// TestScopeSCIMImplies: scim implies nothing, and only tenants.admin
// implies it.
func TestScopeSCIMImplies(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	for scope, want := range map[string]bool{auth.ScopeRead: false, auth.ScopeWrite: false, auth.ScopeAdmin: false, auth.ScopeTenantsAdmin: true} {
		p, err := a.Verify(t.Context(), k.ed.Token(t, authtest.Claims{Subject: "s", Scopes: []string{scope}}))
		if err != nil {
			t.Fatal(err)
		}
		if p.Has(auth.ScopeSCIM) != want {
			t.Errorf("%s implies scim = %v, want %v", scope, !want, want)
		}
	}
	p, err := a.Verify(t.Context(), k.ed.Token(t, authtest.Claims{Subject: "s", Scopes: []string{auth.ScopeSCIM}}))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Scopes) != 1 {
		t.Errorf("scim grants %v, want itself only", p.Scopes)
	}
}
