package main

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/usersd/usersd/internal/auth/authtest"
)

// TestSCIMEndToEnd serves SCIM on loopback with JWT authentication: the
// refusals (401 without a token, 403 without the scim scope, 404 for a
// token of another tenant) and a create and a list through the public
// HTTP server's edge.
func TestSCIMEndToEnd(t *testing.T) {
	key := authtest.NewKey(t, jose.EdDSA)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, jwks, key)
	s := startServer(t, "--auth", "jwt", "--auth-issuer", authtest.Issuer, "--auth-audience", authtest.Audience, "--auth-jwks", jwks)
	bearer := func(tenant string, scopes ...string) []string {
		c := authtest.Claims{Subject: "idp-" + tenant, Scopes: scopes}
		if tenant != "" {
			c.Extra = map[string]any{"tenant": tenant}
		}
		return []string{"Authorization", "Bearer " + key.Token(t, c), "Content-Type", "application/scim+json"}
	}
	platform := bearer("", "tenants.admin")
	for _, id := range []string{"scim-a", "scim-b"} {
		s.do(t, "POST", "/v2/tenants?tenantId="+id, `{"displayName":"`+id+`"}`, platform...).wantStatus(t, http.StatusCreated)
	}
	base := "/scim/v2/tenants/scim-a"
	wantSCIM := func(r response, status int) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("status = %d, want %d; body: %s", r.Status, status, r.Raw)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/scim+json") {
			t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
		}
		if status >= 400 && r.Body["status"] != strconv.Itoa(status) {
			t.Errorf("not a SCIM error: %s", r.Raw)
		}
	}

	r := s.do(t, "GET", base+"/Users", "")
	wantSCIM(r, http.StatusUnauthorized)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	wantSCIM(s.do(t, "GET", base+"/Users", "", "Authorization", "Bearer not-a-jwt"), http.StatusUnauthorized)
	// The users API's scopes do not provision.
	wantSCIM(s.do(t, "GET", base+"/Users", "", bearer("scim-a", "users.admin")...), http.StatusForbidden)
	// Another tenant's token: as if the tenant did not exist.
	wantSCIM(s.do(t, "GET", base+"/Users", "", bearer("scim-b", "scim")...), http.StatusNotFound)
	wantSCIM(s.do(t, "GET", "/scim/v2/tenants/nosuch/Users", "", bearer("nosuch", "scim")...), http.StatusNotFound)
	// A scim token does not call the users API.
	s.do(t, "GET", "/v2/tenants/scim-a/users", "", bearer("scim-a", "scim")...).wantStatus(t, http.StatusForbidden)

	idp := bearer("scim-a", "scim")
	r = s.do(t, "POST", base+"/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"e2e@example.com","name":{"givenName":"E","familyName":"Two"}}`, idp...)
	wantSCIM(r, http.StatusCreated)
	id, _ := r.Body["id"].(string)
	if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, base+"/Users/"+id) || r.Header.Get("ETag") == "" {
		t.Errorf("create: Location %q ETag %q", loc, r.Header.Get("ETag"))
	}
	r = s.do(t, "GET", base+"/Users?filter="+url.QueryEscape(`userName eq "E2E@example.com"`), "", idp...)
	wantSCIM(r, http.StatusOK)
	if r.Body["totalResults"] != 1.0 {
		t.Errorf("list: %s", r.Raw)
	}
	// The platform's scope provisions any tenant; the other tenant sees
	// nothing of scim-a's.
	r = s.do(t, "GET", "/scim/v2/tenants/scim-b/Users", "", platform...)
	wantSCIM(r, http.StatusOK)
	if r.Body["totalResults"] != 0.0 {
		t.Errorf("scim-b list: %s", r.Raw)
	}
	// The metrics name the route template, not the ids.
	res, err := http.Get("http://" + s.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	metrics, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(metrics), `"/scim/v2/tenants/{tenant}/Users"`) {
		t.Errorf("no SCIM route in the metrics")
	}
}
