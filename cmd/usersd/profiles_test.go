package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAttributesSchemaHTTP: a tenant's schema of its users' attributes,
// over HTTP and checked against the contract: a schema that compiles is
// kept, one with a reference is refused; a create that breaks it is 400
// with each failing value named by its JSON pointer; an update that sets
// attributes is checked, one that leaves them alone is not; an import row
// that breaks it fails alone; without a schema nothing is checked.
func TestAttributesSchemaHTTP(t *testing.T) {
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
	const schema = `{"type":"object","required":["level"],"properties":{` +
		`"level":{"type":"integer","minimum":1,"maximum":10},` +
		`"address":{"type":"object","properties":{"zip":{"type":"string","pattern":"^[0-9]{5}$"}}}}}`

	bad := do("POST", "/v2/tenants?tenantId=typed", `{"displayName":"Typed","settings":{"attributesSchema":{"type":"object","$ref":"#/$defs/a","$defs":{"a":{}}}}}`)
	bad.wantStatus(t, http.StatusBadRequest)
	if !strings.Contains(bad.Raw, `"field":"tenant.settings.attributes_schema"`) {
		t.Errorf("a schema with a reference: %s; want 400 on tenant.settings.attributes_schema", bad.Raw)
	}
	do("POST", "/v2/tenants?tenantId=loose", `{"displayName":"Loose"}`).wantStatus(t, http.StatusCreated)
	early := do("POST", "/v2/tenants/loose/users", `{"email":"early@example.com","displayName":"Early","attributes":{"level":99}}`)
	early.wantStatus(t, http.StatusCreated)

	created := do("POST", "/v2/tenants?tenantId=typed", `{"displayName":"Typed","settings":{"attributesSchema":`+schema+`}}`)
	created.wantStatus(t, http.StatusCreated)
	if !strings.Contains(created.Raw, `"pattern":"^[0-9]{5}$"`) {
		t.Errorf("the tenant's schema does not read back: %s", created.Raw)
	}

	broken := do("POST", "/v2/tenants/typed/users", `{"email":"a@example.com","displayName":"A","attributes":{"level":11,"address":{"zip":"1234x"}}}`)
	broken.wantStatus(t, http.StatusBadRequest)
	for _, field := range []string{`"field":"user.attributes/level"`, `"field":"user.attributes/address/zip"`} {
		if !strings.Contains(broken.Raw, field) {
			t.Errorf("a create that breaks the schema: %s; want a violation with %s", broken.Raw, field)
		}
	}
	missing := do("POST", "/v2/tenants/typed/users", `{"email":"a@example.com","displayName":"A"}`)
	missing.wantStatus(t, http.StatusBadRequest)
	if !strings.Contains(missing.Raw, `"field":"user.attributes"`) || !strings.Contains(missing.Raw, "level") {
		t.Errorf("a create without the required attribute: %s; want a violation on user.attributes naming level", missing.Raw)
	}
	ok := do("POST", "/v2/tenants/typed/users", `{"email":"a@example.com","displayName":"A","attributes":{"level":3}}`)
	ok.wantStatus(t, http.StatusCreated)
	name, _ := ok.Body["name"].(string)

	do("PATCH", "/v2/"+name, `{"attributes":{"level":0}}`).wantStatus(t, http.StatusBadRequest)
	do("PATCH", "/v2/"+name, `{"displayName":"A. N. Other"}`).wantStatus(t, http.StatusOK)
	do("PATCH", "/v2/"+name, `{"attributes":{"level":4,"address":{"zip":"12345"}}}`).wantStatus(t, http.StatusOK)

	imp := do("POST", "/v2/tenants/typed/users:import", `{"requestId":"typed-import","users":[`+
		`{"email":"b@example.com","displayName":"B","attributes":{"level":2}},`+
		`{"email":"c@example.com","displayName":"C","attributes":{"level":"two"}}]}`)
	imp.wantStatus(t, http.StatusAccepted)
	var op response
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if op = do("GET", imp.Header.Get("Location"), ""); op.Body["done"] == true || time.Now().After(deadline) {
			break
		}
	}
	if md, _ := op.Body["metadata"].(map[string]any); md["imported"] != 1.0 || md["failed"] != 1.0 || !strings.Contains(op.Raw, "attributes/level") {
		t.Errorf("an import with a row that breaks the schema: %s; want one imported, one failed on attributes/level", op.Raw)
	}

	// A schema set on a tenant whose users break it: they stay, and a
	// change that leaves their attributes alone goes through.
	do("PATCH", "/v2/tenants/loose", `{"settings":{"attributesSchema":`+schema+`}}`).wantStatus(t, http.StatusOK)
	earlyName, _ := early.Body["name"].(string)
	do("PATCH", "/v2/"+earlyName, `{"displayName":"Still early"}`).wantStatus(t, http.StatusOK)
	do("PATCH", "/v2/"+earlyName, `{"attributes":{"level":98}}`).wantStatus(t, http.StatusBadRequest)

	// Removing the schema: anything goes again.
	do("PATCH", "/v2/tenants/typed?updateMask=settings.attributesSchema", `{"settings":{}}`).wantStatus(t, http.StatusOK)
	do("POST", "/v2/tenants/typed/users", `{"email":"d@example.com","displayName":"D","attributes":{"level":"any"}}`).wantStatus(t, http.StatusCreated)
}

// TestProfilesHTTP: the profile fields, lookup, search, counts and the
// filter additions over HTTP, checked against the contract; and v1, which
// neither shows nor changes the profile fields.
func TestProfilesHTTP(t *testing.T) {
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
	wantField := func(r response, status int, field string) {
		t.Helper()
		r.wantStatus(t, status)
		if !strings.Contains(r.Raw, `"field":"`+field+`"`) {
			t.Errorf("%s: want a violation of %s", r.Raw, field)
		}
	}
	zoe := do("POST", "/v2/users", `{"email":"zoe@example.com","displayName":"Zoë Ångström","givenName":"Zoë",`+
		`"familyName":"Ångström","externalId":"emp-1","phoneNumber":"+44 20 7946 0958","emailVerified":true,`+
		`"locale":"en-gb","timeZone":"Europe/London","attributes":{"level":7,"tags":["a"]}}`)
	zoe.wantStatus(t, http.StatusCreated)
	for k, v := range map[string]any{"phoneNumber": "+442079460958", "locale": "en-GB", "externalId": "emp-1", "emailVerified": true} {
		if zoe.Body[k] != v {
			t.Errorf("created user's %s = %v, want %v", k, zoe.Body[k], v)
		}
	}
	do("POST", "/v2/users", `{"email":"zed@example.com","displayName":"Zed","externalId":"emp-2","attributes":{"level":2}}`).wantStatus(t, http.StatusCreated)

	do("POST", "/v2/users", `{"email":"other@example.com","displayName":"Other","externalId":"emp-1"}`).wantStatus(t, http.StatusConflict)
	wantField(do("POST", "/v2/users", `{"email":"p@example.com","displayName":"P","phoneNumber":"555-0100"}`), http.StatusBadRequest, "user.phone_number")
	wantField(do("POST", "/v2/users", `{"email":"p@example.com","displayName":"P","timeZone":"Mars/Olympus"}`), http.StatusBadRequest, "user.time_zone")
	wantField(do("POST", "/v2/users", `{"email":"p@example.com","displayName":"P","locale":"xx-!!"}`), http.StatusBadRequest, "user.locale")

	if r := do("GET", "/v2/users:lookup?externalId=emp-1", ""); r.Status != http.StatusOK || r.Body["name"] != zoe.Body["name"] {
		t.Errorf("lookup emp-1 = %d %s, want %s", r.Status, r.Raw, zoe.Body["name"])
	}
	do("GET", "/v2/users:lookup?externalId=emp-404", "").wantStatus(t, http.StatusNotFound)
	wantField(do("GET", "/v2/users:lookup", ""), http.StatusBadRequest, "external_id")

	names := func(r response) []string {
		t.Helper()
		r.wantStatus(t, http.StatusOK)
		us, _ := r.Body["users"].([]any)
		var out []string
		for _, u := range us {
			out = append(out, u.(map[string]any)["email"].(string))
		}
		return out
	}
	if got := names(do("GET", "/v2/users?query=ANGS", "")); len(got) != 1 || got[0] != "zoe@example.com" {
		t.Errorf("query ANGS = %v, want zoe", got)
	}
	if got := names(do("GET", "/v2/users?query=emp-", "")); len(got) != 2 {
		t.Errorf("query emp- = %v, want both users", got)
	}
	wantField(do("GET", "/v2/users?query=ab", ""), http.StatusBadRequest, "query")
	wantField(do("GET", "/v2/users?query=zoe&orderBy=email", ""), http.StatusBadRequest, "order_by")
	if got := names(do("GET", "/v2/users?filter="+urlQuery(`attributes.level >= 5 AND email_verified = true`), "")); len(got) != 1 || got[0] != "zoe@example.com" {
		t.Errorf("filter on attributes.level = %v, want zoe", got)
	}
	wantField(do("GET", "/v2/users?filter="+urlQuery(`attributes.level > true`), ""), http.StatusBadRequest, "filter")
	counted := do("GET", "/v2/users?showTotalSize=true&pageSize=1&filter="+urlQuery(`external_id:*`), "")
	if counted.Body["totalSize"] != 2.0 || counted.Body["totalSizeEstimated"] != false || counted.Body["nextPageToken"] == "" {
		t.Errorf("showTotalSize: %s; want totalSize 2, exact, and a next page", counted.Raw)
	}

	// v1 shows no profile field, cannot filter or mask by one, and its "*"
	// leaves them alone.
	id := strings.TrimPrefix(zoe.Body["name"].(string), "tenants/default/users/")
	v1 := s.do(t, "GET", "/v1/users/"+id, "")
	if strings.Contains(v1.Raw, "externalId") || strings.Contains(v1.Raw, "attributes") {
		t.Errorf("v1 shows profile fields: %s", v1.Raw)
	}
	s.do(t, "GET", "/v1/users?filter="+urlQuery(`given_name = "Zoë"`), "").wantStatus(t, http.StatusBadRequest)
	s.do(t, "PATCH", "/v1/users/"+id+"?updateMask=given_name", `{"displayName":"Z"}`).wantStatus(t, http.StatusBadRequest)
	s.do(t, "PATCH", "/v1/users/"+id+"?updateMask=*", `{"email":"zoe@example.com","displayName":"Zoë A.","state":"STATE_ACTIVE"}`).wantStatus(t, http.StatusOK)
	// A change of a profile field alone reads in v1's feed as an update
	// that names no field of v1's user.
	do("PATCH", "/v2/users/"+id, `{"givenName":"Zoé"}`).wantStatus(t, http.StatusOK)
	feed := s.do(t, "GET", "/v1/userEvents?pageSize=1000", "")
	evs, _ := feed.Body["events"].([]any)
	if len(evs) == 0 {
		t.Fatalf("v1 feed: %s", feed.Raw)
	}
	if last := evs[len(evs)-1].(map[string]any); last["userId"] != id || len(last["changedPaths"].([]any)) != 0 {
		t.Errorf("v1's event of a given name change: %v; want changedPaths []", last)
	}
	after := do("GET", "/v2/users/"+id, "")
	if after.Body["externalId"] != "emp-1" || after.Body["phoneNumber"] != "+442079460958" || after.Body["displayName"] != "Zoë A." {
		t.Errorf("after v1's update with mask *: %s; want the profile kept", after.Raw)
	}
}

// urlQuery escapes s for a URL's query.
func urlQuery(s string) string { return url.QueryEscape(s) }
