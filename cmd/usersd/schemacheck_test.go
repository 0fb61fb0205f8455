package main

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSchemaCheckHTTP: setting a tenant's attributes schema starts a
// schema check, a long-running operation named by the tenant's
// attributesSchemaCheck, that counts the tenant's users (not deleted) that
// break the new schema and names some of them, without changing them; v2's
// GetOperation reads it, v1's, which knows imports only, does not. Every
// answer is checked against the v2 contract.
func TestSchemaCheckHTTP(t *testing.T) {
	s := startServer(t)
	spec := newContract(t, "v2")
	do := func(method, path, body string) response {
		t.Helper()
		r := s.do(t, method, path, body)
		if strings.HasPrefix(path, "/v2/") {
			if err := spec.check(httptest.NewRequest(method, path, nil), r.Status, r.Header, []byte(r.Raw)); err != nil {
				t.Error(err)
			}
		}
		return r
	}
	const schema = `{"type":"object","required":["level"],"properties":{"level":{"type":"integer","minimum":1,"maximum":10}}}`

	created := do("POST", "/v2/tenants?tenantId=acme", `{"displayName":"Acme"}`)
	created.wantStatus(t, http.StatusCreated)
	if check := created.Body["attributesSchemaCheck"]; check != "" {
		t.Errorf("a tenant created without a schema: attributesSchemaCheck %v, want empty", check)
	}
	var names []string
	for _, u := range []string{
		`{"email":"ok@example.com","displayName":"Ok","attributes":{"level":3}}`,
		`{"email":"high@example.com","displayName":"High","attributes":{"level":11}}`,
		`{"email":"none@example.com","displayName":"None"}`,
	} {
		r := do("POST", "/v2/tenants/acme/users", u)
		r.wantStatus(t, http.StatusCreated)
		names = append(names, r.Body["name"].(string))
	}
	// A deleted user that breaks the schema is not checked.
	gone := do("POST", "/v2/tenants/acme/users", `{"email":"gone@example.com","displayName":"Gone","attributes":{"level":0}}`)
	gone.wantStatus(t, http.StatusCreated)
	do("DELETE", "/v2/"+gone.Body["name"].(string), "").wantStatus(t, http.StatusOK)
	before := make([]string, len(names))
	for i, n := range names {
		before[i] = do("GET", "/v2/"+n, "").Raw
	}

	patched := do("PATCH", "/v2/tenants/acme", `{"settings":{"attributesSchema":`+schema+`}}`)
	patched.wantStatus(t, http.StatusOK)
	check, _ := patched.Body["attributesSchemaCheck"].(string)
	if !strings.HasPrefix(check, "tenants/acme/operations/") {
		t.Fatalf("UpdateTenant with a new schema: attributesSchemaCheck %q, want tenants/acme/operations/{id}; %s", check, patched.Raw)
	}
	if got := do("GET", "/v2/tenants/acme", "").Body["attributesSchemaCheck"]; got != check {
		t.Errorf("GetTenant: attributesSchemaCheck %v, want %s", got, check)
	}

	op := awaitCheck(t, do, check)
	md, _ := op.Body["schemaCheckMetadata"].(map[string]any)
	if md["checked"] != 3.0 || md["violating"] != 2.0 {
		t.Errorf("the check: %s; want 3 checked, 2 violating", op.Raw)
	}
	if op.Body["metadata"] != nil || op.Body["response"] != nil {
		t.Errorf("a schema check has an import's metadata or response: %s", op.Raw)
	}
	res, _ := op.Body["schemaCheckResponse"].(map[string]any)
	samples, _ := res["samples"].([]any)
	var users []string
	for _, x := range samples {
		v, _ := x.(map[string]any)
		users = append(users, v["user"].(string))
		if f, _ := v["field"].(string); !strings.HasPrefix(f, "attributes") || v["description"] == "" {
			t.Errorf("sample %v: want a field under attributes and a description", v)
		}
	}
	if want := names[1:]; !slices.Equal(users, want) {
		t.Errorf("the samples name %v, want %v (the two users that break the schema); %s", users, want, op.Raw)
	}
	for i, n := range names {
		if after := do("GET", "/v2/"+n, "").Raw; after != before[i] {
			t.Errorf("the check changed user %s:\nbefore %s\nafter  %s", n, before[i], after)
		}
	}

	// The same schema again starts nothing; another one, another check.
	if again := do("PATCH", "/v2/tenants/acme", `{"settings":{"attributesSchema":`+schema+`}}`); again.Body["attributesSchemaCheck"] != check {
		t.Errorf("setting the same schema again: attributesSchemaCheck %v, want %s", again.Body["attributesSchemaCheck"], check)
	}

	// v1 serves the default tenant's imports only: a check there is not
	// found, while an import is.
	imp := do("POST", "/v1/users:import", `{"requestId":"schema-check-import","users":[{"email":"imp@example.com","displayName":"Imp"}]}`)
	imp.wantStatus(t, http.StatusAccepted)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r := do("GET", imp.Header.Get("Location"), "")
		r.wantStatus(t, http.StatusOK)
		if r.Body["done"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("import not done after 20 s: %s", r.Raw)
		}
	}
	def := do("PATCH", "/v2/tenants/default", `{"settings":{"attributesSchema":`+schema+`}}`)
	def.wantStatus(t, http.StatusOK)
	defCheck, _ := def.Body["attributesSchemaCheck"].(string)
	if !strings.HasPrefix(defCheck, "tenants/default/operations/") {
		t.Fatalf("the default tenant's check: %q", defCheck)
	}
	done := awaitCheck(t, do, defCheck)
	if md, _ := done.Body["schemaCheckMetadata"].(map[string]any); md["checked"] != 1.0 || md["violating"] != 1.0 {
		t.Errorf("the default tenant's check: %s; want its one user checked and violating", done.Raw)
	}
	id := defCheck[strings.LastIndex(defCheck, "/")+1:]
	do("GET", "/v2/operations/"+id, "").wantStatus(t, http.StatusOK)
	do("GET", "/v1/operations/"+id, "").wantStatus(t, http.StatusNotFound)
}

// awaitCheck polls v2's GetOperation of the check named name until it is
// done, and returns it.
func awaitCheck(t *testing.T, do func(method, path, body string) response, name string) response {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		op := do("GET", "/v2/"+name, "")
		op.wantStatus(t, http.StatusOK)
		if op.Body["done"] == true {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("check %s not done after 20 s: %s", name, op.Raw)
		}
	}
}
