package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
