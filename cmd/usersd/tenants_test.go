package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// TestTenantsHTTP: TenantService over HTTP/JSON, every answer checked
// against the v2 OpenAPI document.
func TestTenantsHTTP(t *testing.T) {
	s := startServer(t)
	spec := newContract(t, "v2")
	do := func(method, path, body string, header ...string) response {
		t.Helper()
		r := s.do(t, method, path, body, header...)
		if err := spec.check(httptest.NewRequest(method, path, nil), r.Status, r.Header, []byte(r.Raw)); err != nil {
			t.Error(err)
		}
		return r
	}

	created := do("POST", "/v2/tenants?tenantId=acme", `{"displayName":"Acme","settings":{"maxUsers":1000,"requestsPerSecond":25}}`)
	created.wantStatus(t, http.StatusCreated)
	if got := created.Header.Get("Location"); got != "/v2/tenants/acme" {
		t.Errorf("Location = %q, want /v2/tenants/acme", got)
	}
	etag := created.str("etag")
	if created.Header.Get("ETag") != `"`+etag+`"` || created.str("name") != "tenants/acme" || created.str("state") != "STATE_ACTIVE" {
		t.Errorf("create answered %s with ETag %q", created.Raw, created.Header.Get("ETag"))
	}
	if created.Body["deleteTime"] != nil {
		t.Errorf("deleteTime = %v, want null", created.Body["deleteTime"])
	}
	do("POST", "/v2/tenants?tenantId=acme", `{"displayName":"Again"}`).wantStatus(t, http.StatusConflict)
	do("POST", "/v2/tenants?tenantId=Bad_Id", `{"displayName":"X"}`).wantStatus(t, http.StatusBadRequest, "tenant_id")
	do("POST", "/v2/tenants?tenantId=neg", `{"displayName":"X","settings":{"maxUsers":-1}}`).wantStatus(t, http.StatusBadRequest, "tenant.settings.max_users")

	do("GET", "/v2/tenants/acme", "").wantStatus(t, http.StatusOK)
	do("GET", "/v2/tenants/nowhere", "").wantStatus(t, http.StatusNotFound)
	do("GET", "/v2/tenants/default", "").wantStatus(t, http.StatusOK)

	// PATCH changes the fields in the body only; a stale If-Match is 409.
	updated := do("PATCH", "/v2/tenants/acme", `{"displayName":"Acme Corp"}`, "If-Match", `"`+etag+`"`)
	updated.wantStatus(t, http.StatusOK)
	if updated.str("displayName") != "Acme Corp" {
		t.Errorf("PATCH answered %s", updated.Raw)
	}
	if settings, _ := updated.Body["settings"].(map[string]any); settings["maxUsers"] != float64(1000) {
		t.Errorf("PATCH of displayName changed the settings: %s", updated.Raw)
	}
	do("PATCH", "/v2/tenants/acme", `{"displayName":"Stale"}`, "If-Match", `"`+etag+`"`).wantStatus(t, http.StatusConflict)

	do("DELETE", "/v2/tenants/default", "").wantStatus(t, http.StatusBadRequest)
	deleted := do("DELETE", "/v2/tenants/acme", "")
	deleted.wantStatus(t, http.StatusOK)
	if deleted.str("state") != "STATE_DELETED" {
		t.Errorf("DELETE answered %s", deleted.Raw)
	}
	list := do("GET", "/v2/tenants?showDeleted=true&pageSize=1", "")
	list.wantStatus(t, http.StatusOK)
	if list.str("nextPageToken") == "" {
		t.Errorf("a first page of one of two tenants has no next page: %s", list.Raw)
	}
	do("POST", "/v2/tenants/acme:undelete", `{}`).wantStatus(t, http.StatusOK)
}

// TestTenantLimitsHTTP checks a tenant's limits end to end over HTTP, with
// the contract: past settings.maxUsers a create is 429 with a
// google.rpc.QuotaFailure and no Retry-After, and an import fails the rows
// past it; past settings.requestsPerSecond the tenant's calls are 429 with
// Retry-After, while the default tenant's go on.
func TestTenantLimitsHTTP(t *testing.T) {
	s := startServer(t)
	spec := newContract(t, "v2")
	do := func(method, path, body string) response {
		t.Helper()
		r := s.do(t, method, path, body)
		if err := spec.check(httptest.NewRequest(method, path, nil), r.Status, r.Header, []byte(r.Raw)); err != nil {
			t.Error(err)
		}
		return r
	}
	do("POST", "/v2/tenants?tenantId=small", `{"displayName":"Small","settings":{"maxUsers":2}}`).wantStatus(t, http.StatusCreated)
	do("POST", "/v2/tenants/small/users", `{"email":"one@example.com","displayName":"One"}`).wantStatus(t, http.StatusCreated)
	do("POST", "/v2/tenants/small/users", `{"email":"two@example.com","displayName":"Two"}`).wantStatus(t, http.StatusCreated)
	full := do("POST", "/v2/tenants/small/users", `{"email":"three@example.com","displayName":"Three"}`)
	full.wantStatus(t, http.StatusTooManyRequests)
	if full.Header.Get("Retry-After") != "" || !strings.Contains(full.Raw, `"@type":"type.googleapis.com/google.rpc.QuotaFailure"`) ||
		!strings.Contains(full.Raw, `"subject":"tenants/small"`) {
		t.Errorf("a create past maxUsers: Retry-After %q, body %s; want a QuotaFailure on tenants/small and no Retry-After", full.Header.Get("Retry-After"), full.Raw)
	}
	// The default tenant has no limit.
	do("POST", "/v2/users", `{"email":"three@example.com","displayName":"Three"}`).wantStatus(t, http.StatusCreated)

	// Raising the limit by one: an import of two gets one in.
	do("PATCH", "/v2/tenants/small", `{"settings":{"maxUsers":3}}`).wantStatus(t, http.StatusOK)
	imp := do("POST", "/v2/tenants/small/users:import", `{"requestId":"small-import","users":[{"email":"a@example.com","displayName":"A"},{"email":"b@example.com","displayName":"B"}]}`)
	imp.wantStatus(t, http.StatusAccepted)
	var op response
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if op = do("GET", imp.Header.Get("Location"), ""); op.Body["done"] == true || time.Now().After(deadline) {
			break
		}
	}
	if md, _ := op.Body["metadata"].(map[string]any); md["imported"] != 1.0 || md["failed"] != 1.0 || !strings.Contains(op.Raw, users.ReasonQuota) {
		t.Errorf("an import of two into a tenant with room for one: %s", op.Raw)
	}

	// A rate of 2 a second: a burst of 2, then 429 with Retry-After.
	do("POST", "/v2/tenants?tenantId=slow", `{"displayName":"Slow","settings":{"requestsPerSecond":2}}`).wantStatus(t, http.StatusCreated)
	var limited response
	passed := 0
	for range 10 {
		if limited = do("GET", "/v2/tenants/slow/users", ""); limited.Status != http.StatusOK {
			break
		}
		passed++
	}
	if limited.Status != http.StatusTooManyRequests || limited.Header.Get("Retry-After") == "" || passed < 2 || passed > 4 {
		t.Errorf("tenant at 2 requests/s: %d calls passed, then %d with Retry-After %q: %s; want 2 (or a few more as the bucket refills) then 429 with Retry-After",
			passed, limited.Status, limited.Header.Get("Retry-After"), limited.Raw)
	}
	do("GET", "/v2/users", "").wantStatus(t, http.StatusOK) // another tenant's calls go on
}
