package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
)

// testAuthn is an Authenticator of fixed tokens: "Bearer <tenant>" has the
// scim scope in that tenant, "Bearer noscope" is the acme tenant's without
// it. It refuses as auth.SCIMAuthenticator does (401, 403, 404).
type testAuthn struct{}

type testAuthError int

func (e testAuthError) Error() string     { return http.StatusText(int(e)) }
func (e testAuthError) StatusCode() int   { return int(e) }
func (e testAuthError) Challenge() string { return `Bearer realm="test"` }

func (testAuthn) Authenticate(r *http.Request, tenant string) (context.Context, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok || tok == "":
		return nil, testAuthError(http.StatusUnauthorized)
	case tok == "noscope":
		return nil, testAuthError(http.StatusForbidden)
	case tok != tenant:
		return nil, testAuthError(http.StatusNotFound)
	}
	return users.BindTenant(r.Context(), tenant), nil
}

// scimServer is a SCIM handler over a users.Service on a fresh SQLite
// database, with the tenants acme and other.
type scimServer struct {
	t   *testing.T
	svc *users.Service
	h   http.Handler
}

func newSCIMServer(t *testing.T) *scimServer {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlite.Open(%s) err = %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("sqlite.Migrate err = %v", err)
	}
	svc := users.NewService(sqlite.NewStore(db), users.Config{})
	for _, id := range []string{"acme", "other"} {
		if _, err := svc.CreateTenant(ctx, id, users.TenantRequest{DisplayName: id}); err != nil {
			t.Fatalf("CreateTenant(%s) err = %v", id, err)
		}
	}
	return &scimServer{t: t, svc: svc, h: NewHandler(svc, testAuthn{}, Options{PublicURL: "https://usersd.example.com"})}
}

// answer is a response, its body decoded.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends a request to the acme tenant's service (path relative to it),
// with acme's token.
func (s *scimServer) do(method, path, body string, header ...string) answer {
	s.t.Helper()
	return s.doAs("acme", "acme", method, path, body, header...)
}

// doAs sends a request to tenant's service with token ("" for none).
func (s *scimServer) doAs(token, tenant, method, path, body string, header ...string) answer {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, Prefix+"/tenants/"+tenant+path, rd)
	if body != "" {
		r.Header.Set("Content-Type", MediaType)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	a := answer{status: w.Code, header: w.Header(), raw: w.Body.String()}
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &a.body); err != nil {
			s.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, w.Body.String(), err)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, MediaType) {
			s.t.Errorf("%s %s: Content-Type %q, want %s", method, path, ct, MediaType)
		}
	}
	return a
}

// want fails unless the answer has the status (and, for an error, is a
// SCIM error with the scimType).
func (a answer) want(t *testing.T, status int, scimType ...string) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.raw)
	}
	if status >= 400 {
		if s, _ := a.body["schemas"].([]any); len(s) != 1 || s[0] != ErrorSchema {
			t.Errorf("error body %s is not a SCIM error", a.raw)
		}
		if a.body["status"] != fmt.Sprint(status) {
			t.Errorf("error status %v, want %q", a.body["status"], fmt.Sprint(status))
		}
		if len(scimType) > 0 && a.body["scimType"] != scimType[0] {
			t.Errorf("scimType %v, want %s; body %s", a.body["scimType"], scimType[0], a.raw)
		}
	}
	return a
}

func (a answer) str(k string) string { s, _ := a.body[k].(string); return s }

func (a answer) total() int {
	n, _ := a.body["totalResults"].(float64)
	return int(n)
}

func (a answer) resources() []map[string]any {
	var out []map[string]any
	rs, _ := a.body["Resources"].([]any)
	for _, r := range rs {
		out = append(out, r.(map[string]any))
	}
	return out
}

// createUser POSTs a user and returns its id.
func (s *scimServer) createUser(body string) string {
	s.t.Helper()
	a := s.do("POST", "/Users", body).want(s.t, http.StatusCreated)
	return a.str("id")
}

func userBody(userName, extra string) string {
	return `{"schemas":["` + UserSchema + `"],"userName":"` + userName + `","name":{"givenName":"Test","familyName":"User"}` + extra + `}`
}

func q(filter string) string {
	return "?filter=" + strings.NewReplacer(" ", "%20", `"`, "%22").Replace(filter)
}

// TestOktaSCIMSpec follows Okta's SCIM 2.0 spec tests (Runscope's "Okta
// SCIM 2.0 Spec Test" collection, developer.okta.com/docs/guides/scim-provisioning-integration-prepare),
// step by step.
func TestOktaSCIMSpec(t *testing.T) {
	s := newSCIMServer(t)
	id := s.createUser(userBody("okta.user@example.com", `,"emails":[{"primary":true,"value":"okta.user@example.com","type":"work"}],"active":true,"password":"1mz050nq","groups":[]`))

	// Required Test: Test Users endpoint: GET /Users?count=1&startIndex=1.
	a := s.do("GET", "/Users?startIndex=1&count=100", "").want(t, http.StatusOK)
	if a.total() != 1 || len(a.resources()) != 1 || a.body["startIndex"] != 1.0 || a.body["itemsPerPage"] != 1.0 {
		t.Errorf("list: %s", a.raw)
	}
	if s, _ := a.body["schemas"].([]any); len(s) != 1 || s[0] != ListResponseSchema {
		t.Errorf("list schemas: %s", a.raw)
	}

	// Required Test: Get Users/{{id}}.
	a = s.do("GET", "/Users/"+id, "").want(t, http.StatusOK)
	if a.str("id") != id || a.str("userName") != "okta.user@example.com" {
		t.Errorf("get: %s", a.raw)
	}
	if et := a.header.Get("ETag"); !strings.HasPrefix(et, `W/"`) {
		t.Errorf("ETag %q", et)
	}

	// Required Test: Test invalid User by username: filter=userName eq "<random>".
	a = s.do("GET", "/Users"+q(`userName eq "not.there@example.com"`), "").want(t, http.StatusOK)
	if a.total() != 0 || len(a.resources()) != 0 {
		t.Errorf("unknown userName: %s", a.raw)
	}
	if _, ok := a.body["Resources"].([]any); !ok {
		t.Errorf("Resources must be an empty array: %s", a.raw)
	}

	// Required Test: Test invalid User by ID: 404 as a SCIM error.
	s.do("GET", "/Users/010010ab-0000-7000-8000-000000000000", "").want(t, http.StatusNotFound)
	s.do("GET", "/Users/not-a-uuid", "").want(t, http.StatusNotFound)

	// Required Test: Make sure random user doesn't exist, then create it: 201.
	a = s.do("POST", "/Users", userBody("Random.User@example.com", "")).want(t, http.StatusCreated)
	rid := a.str("id")
	if a.header.Get("Location") != "https://usersd.example.com/scim/v2/tenants/acme/Users/"+rid || a.header.Get("ETag") == "" {
		t.Errorf("create headers: %v", a.header)
	}
	// Required Test: Check the Username is case-insensitive.
	a = s.do("GET", "/Users"+q(`userName eq "random.user@EXAMPLE.com"`), "").want(t, http.StatusOK)
	if a.total() != 1 || a.resources()[0]["id"] != rid {
		t.Errorf("case-insensitive userName: %s", a.raw)
	}
	// Required Test: Create the same user twice: 409 uniqueness.
	s.do("POST", "/Users", userBody("random.user@example.com", "")).want(t, http.StatusConflict, TypeUniqueness)
	// A userName that is not an address is unique too.
	s.createUser(userBody("okta_login_1", `,"emails":[{"value":"login1@example.com","primary":true}]`))
	s.do("POST", "/Users", userBody("OKTA_LOGIN_1", `,"emails":[{"value":"login2@example.com","primary":true}]`)).want(t, http.StatusConflict, TypeUniqueness)

	// Okta's requests carry a token: without one, 401 with a challenge.
	a = s.doAs("", "acme", "GET", "/Users", "").want(t, http.StatusUnauthorized)
	if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
	}

	// Group push: create, get, list.
	a = s.do("POST", "/Groups", `{"schemas":["`+GroupSchema+`"],"displayName":"Okta Group","members":[{"value":"`+id+`","display":"okta.user@example.com"}]}`).want(t, http.StatusCreated)
	gid := a.str("id")
	if m, _ := a.body["members"].([]any); len(m) != 1 {
		t.Errorf("created group's members: %s", a.raw)
	}
	a = s.do("GET", "/Groups/"+gid, "").want(t, http.StatusOK)
	if a.str("displayName") != "Okta Group" || a.header.Get("ETag") == "" {
		t.Errorf("get group: %s", a.raw)
	}
	a = s.do("GET", "/Groups?startIndex=1&count=100", "").want(t, http.StatusOK)
	if a.total() != 1 || a.resources()[0]["id"] != gid {
		t.Errorf("list groups: %s", a.raw)
	}
	a = s.do("GET", "/Groups"+q(`displayName eq "okta group"`), "").want(t, http.StatusOK)
	if a.total() != 1 {
		t.Errorf("groups by displayName: %s", a.raw)
	}
}

// TestEntraValidator follows Microsoft Entra ID's SCIM provisioning
// validator (learn.microsoft.com/entra/identity/app-provisioning/scim-validator-tutorial,
// and use-scim-to-provision-users-and-groups: "User Operations", "Group
// Operations"), step by step.
func TestEntraValidator(t *testing.T) {
	s := newSCIMServer(t)
	// Create User.
	body := `{"schemas":["` + UserSchema + `","` + EnterpriseSchema + `"],"externalId":"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",` +
		`"userName":"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com","active":true,` +
		`"emails":[{"primary":true,"type":"work","value":"Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],` +
		`"meta":{"resourceType":"User"},"name":{"formatted":"givenName familyName","familyName":"familyName","givenName":"givenName"},` +
		`"roles":[],"title":"Manager","preferredLanguage":"en-US",` + `"` + EnterpriseSchema + `":{"department":"Tour Operations"}}`
	a := s.do("POST", "/Users", body).want(t, http.StatusCreated)
	id := a.str("id")

	// Get User by query - userName eq.
	a = s.do("GET", "/Users"+q(`userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com"`), "").want(t, http.StatusOK)
	if a.total() != 1 || a.resources()[0]["id"] != id {
		t.Errorf("userName eq: %s", a.raw)
	}
	// Get User by query - externalId eq.
	a = s.do("GET", "/Users"+q(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`), "").want(t, http.StatusOK)
	if a.total() != 1 || a.resources()[0]["id"] != id {
		t.Errorf("externalId eq: %s", a.raw)
	}
	// Entra's query with excludedAttributes=members style projection on users.
	a = s.do("GET", "/Users/"+id+"?attributes=userName,name.givenName", "").want(t, http.StatusOK)
	if _, ok := a.body["emails"]; ok || a.str("userName") == "" || a.str("id") != id {
		t.Errorf("attributes projection: %s", a.raw)
	}
	if n, _ := a.body["name"].(map[string]any); len(n) != 1 || n["givenName"] != "givenName" {
		t.Errorf("attributes name.givenName: %s", a.raw)
	}

	// Update User [Multi-valued properties] and [Single-valued properties]: PATCH replace.
	a = s.do("PATCH", "/Users/"+id, `{"schemas":["`+PatchOpSchema+`"],"Operations":[`+
		`{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},`+
		`{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},`+
		`{"op":"replace","value":{"displayName":"Updated Name","`+EnterpriseSchema+`:department":"Marketing"}}]}`).want(t, http.StatusOK)
	if a.str("displayName") != "Updated Name" {
		t.Errorf("patch replace: %s", a.raw)
	}
	if n, _ := a.body["name"].(map[string]any); n["familyName"] != "updatedFamilyName" {
		t.Errorf("patch name.familyName: %s", a.raw)
	}
	if e, _ := a.body[EnterpriseSchema].(map[string]any); e["department"] != "Marketing" {
		t.Errorf("patch department: %s", a.raw)
	}

	// Disable User: active false, and as Entra sends it, "False".
	for _, v := range []string{`false`, `"False"`} {
		s.do("PATCH", "/Users/"+id, `{"schemas":["`+PatchOpSchema+`"],"Operations":[{"op":"Replace","path":"active","value":true}]}`).want(t, http.StatusOK)
		a = s.do("PATCH", "/Users/"+id, `{"schemas":["`+PatchOpSchema+`"],"Operations":[{"op":"Replace","path":"active","value":`+v+`}]}`).want(t, http.StatusOK)
		if a.body["active"] != false {
			t.Errorf("active %s: %s", v, a.raw)
		}
		u, err := s.svc.Get(users.BindTenant(context.Background(), "acme"), "acme", id)
		if err != nil || u.State != users.StateSuspended {
			t.Errorf("active %s: state %v err %v, want SUSPENDED", v, u.State, err)
		}
	}
	// PATCH with empty and null values removes them.
	a = s.do("PATCH", "/Users/"+id, `{"schemas":["`+PatchOpSchema+`"],"Operations":[`+
		`{"op":"Replace","path":"name.givenName","value":""},{"op":"Replace","path":"`+EnterpriseSchema+`:department","value":null}]}`).want(t, http.StatusOK)
	if n, _ := a.body["name"].(map[string]any); n["givenName"] != nil {
		t.Errorf("empty givenName kept: %s", a.raw)
	}
	if e, _ := a.body[EnterpriseSchema].(map[string]any); e["department"] != nil {
		t.Errorf("null department kept: %s", a.raw)
	}

	// Create Group, add and remove members.
	m1 := s.createUser(userBody("member1@example.com", ""))
	m2 := s.createUser(userBody("member2@example.com", ""))
	a = s.do("POST", "/Groups", `{"schemas":["`+GroupSchema+`"],"externalId":"8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159","displayName":"displayName","meta":{"resourceType":"Group"}}`).want(t, http.StatusCreated)
	gid := a.str("id")
	s.do("PATCH", "/Groups/"+gid, `{"schemas":["`+PatchOpSchema+`"],"Operations":[{"op":"Add","path":"members","value":[{"value":"`+m1+`"},{"value":"`+m2+`"}]}]}`).want(t, http.StatusNoContent)
	a = s.do("GET", "/Groups"+q(`members.value eq "`+m1+`"`), "").want(t, http.StatusOK)
	if a.total() != 1 || a.resources()[0]["id"] != gid {
		t.Errorf("members.value eq: %s", a.raw)
	}
	s.do("PATCH", "/Groups/"+gid, `{"schemas":["`+PatchOpSchema+`"],"Operations":[{"op":"Remove","path":"members","value":[{"value":"`+m1+`"}]}]}`).want(t, http.StatusNoContent)
	a = s.do("GET", "/Groups/"+gid, "").want(t, http.StatusOK)
	if m, _ := a.body["members"].([]any); len(m) != 1 || m[0].(map[string]any)["value"] != m2 {
		t.Errorf("members after remove: %s", a.raw)
	}
	a = s.do("GET", "/Groups/"+gid+"?excludedAttributes=members", "").want(t, http.StatusOK)
	if _, ok := a.body["members"]; ok {
		t.Errorf("excludedAttributes=members: %s", a.raw)
	}
	a = s.do("GET", "/Groups"+q(`externalId eq "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"`)+"&excludedAttributes=members", "").want(t, http.StatusOK)
	if a.total() != 1 {
		t.Errorf("group externalId eq: %s", a.raw)
	}
	// Group PATCH with an empty displayName is refused (required); a
	// replace of displayName works.
	s.do("PATCH", "/Groups/"+gid, `{"schemas":["`+PatchOpSchema+`"],"Operations":[{"op":"Replace","path":"displayName","value":"renamed"}]}`).want(t, http.StatusNoContent)
	s.do("PATCH", "/Groups/"+gid, `{"schemas":["`+PatchOpSchema+`"],"Operations":[{"op":"Replace","path":"displayName","value":null}]}`).want(t, http.StatusBadRequest)

	// Delete User: soft, then a 404.
	s.do("DELETE", "/Users/"+m1, "").want(t, http.StatusNoContent)
	s.do("GET", "/Users/"+m1, "").want(t, http.StatusNotFound)
	s.do("DELETE", "/Users/"+m1, "").want(t, http.StatusNotFound)
	if u, err := s.svc.Get(users.BindTenant(context.Background(), "acme"), "acme", m1); err != nil || u.State != users.StateDeleted {
		t.Errorf("deleted user: %v %v", u, err)
	}
	s.do("DELETE", "/Groups/"+gid, "").want(t, http.StatusNoContent)
	s.do("GET", "/Groups/"+gid, "").want(t, http.StatusNotFound)
}

// TestEntraPaging pages over the users with count=5 (Entra's validator
// lists with startIndex and count), and over a filter the index does not
// answer exactly.
func TestEntraPaging(t *testing.T) {
	s := newSCIMServer(t)
	var ids []string
	for i := range 12 {
		ids = append(ids, s.createUser(userBody(fmt.Sprintf("pager%02d@example.com", i), "")))
	}
	for _, filter := range []string{"", q(`userName sw "pager" or userName eq "x"`)} {
		sep := "?"
		if filter != "" {
			sep = filter + "&"
		}
		var got []string
		for start := 1; start <= 12; start += 5 {
			a := s.do("GET", "/Users"+sep+fmt.Sprintf("startIndex=%d&count=5", start), "").want(t, http.StatusOK)
			if a.total() != 12 || a.body["startIndex"] != float64(start) {
				t.Fatalf("filter %q page %d: %s", filter, start, a.raw)
			}
			for _, r := range a.resources() {
				got = append(got, r["id"].(string))
			}
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("filter %q: paged %v, want %v", filter, got, ids)
		}
		a := s.do("GET", "/Users"+sep+"count=0", "").want(t, http.StatusOK)
		if a.total() != 12 || len(a.resources()) != 0 {
			t.Errorf("count=0: %s", a.raw)
		}
	}
	// POST .search pages the same.
	a := s.do("POST", "/Users/.search", `{"schemas":["`+SearchRequestSchema+`"],"startIndex":6,"count":5,"attributes":["userName"]}`).want(t, http.StatusOK)
	if a.total() != 12 || len(a.resources()) != 5 || a.resources()[0]["id"] != ids[5] || a.resources()[0]["name"] != nil {
		t.Errorf(".search: %s", a.raw)
	}
	// Beyond the scan bound: 400 tooMany.
	s.do("GET", fmt.Sprintf("/Users?startIndex=%d&count=10", MaxScan), "").want(t, http.StatusBadRequest, TypeTooMany)
}

// TestHandlerErrors covers the HTTP rules: If-Match, bodies, tenants and
// authentication.
func TestHandlerErrors(t *testing.T) {
	s := newSCIMServer(t)
	a := s.do("POST", "/Users", userBody("etag@example.com", "")).want(t, http.StatusCreated)
	id, etag := a.str("id"), a.header.Get("ETag")

	t.Run("If-Match", func(t *testing.T) {
		patch := `{"schemas":["` + PatchOpSchema + `"],"Operations":[{"op":"replace","path":"displayName","value":"E"}]}`
		s.do("PATCH", "/Users/"+id, patch, "If-Match", `W/"0000000000000000"`).want(t, http.StatusPreconditionFailed)
		s.do("PUT", "/Users/"+id, userBody("etag@example.com", ""), "If-Match", `W/"0000000000000000"`).want(t, http.StatusPreconditionFailed)
		s.do("DELETE", "/Users/"+id, "", "If-Match", `W/"0000000000000000"`).want(t, http.StatusPreconditionFailed)
		a := s.do("PATCH", "/Users/"+id, patch, "If-Match", etag).want(t, http.StatusOK)
		if a.header.Get("ETag") == etag {
			t.Errorf("ETag did not change")
		}
		// The old version is now a 412.
		s.do("PATCH", "/Users/"+id, patch, "If-Match", etag).want(t, http.StatusPreconditionFailed)
		a = s.do("PUT", "/Users/"+id, userBody("etag@example.com", `,"displayName":"Put"`), "If-Match", a.header.Get("ETag")).want(t, http.StatusOK)
		if a.str("displayName") != "Put" {
			t.Errorf("PUT: %s", a.raw)
		}
	})
	t.Run("body too large", func(t *testing.T) {
		s.do("POST", "/Users", `{"userName":"`+strings.Repeat("x", MaxBodyBytes)+`"}`).want(t, http.StatusRequestEntityTooLarge)
	})
	t.Run("malformed JSON", func(t *testing.T) {
		s.do("POST", "/Users", `{"userName":`).want(t, http.StatusBadRequest, TypeInvalidSyntax)
		s.do("PATCH", "/Users/"+id, `{"Operations":[`).want(t, http.StatusBadRequest)
	})
	t.Run("bad filter", func(t *testing.T) {
		s.do("GET", "/Users"+q(`userName eq`), "").want(t, http.StatusBadRequest, TypeInvalidFilter)
	})
	t.Run("unknown tenant", func(t *testing.T) {
		s.doAs("nosuch", "nosuch", "GET", "/Users", "").want(t, http.StatusNotFound)
	})
	t.Run("wrong-tenant token", func(t *testing.T) {
		s.doAs("other", "acme", "GET", "/Users/"+id, "").want(t, http.StatusNotFound)
		// And the other tenant does not see acme's user.
		s.doAs("other", "other", "GET", "/Users/"+id, "").want(t, http.StatusNotFound)
	})
	t.Run("missing scope", func(t *testing.T) {
		a := s.doAs("noscope", "acme", "GET", "/Users", "").want(t, http.StatusForbidden)
		if a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("403 without a challenge")
		}
	})
	t.Run("unknown endpoint", func(t *testing.T) {
		s.do("GET", "/Nope", "").want(t, http.StatusNotFound)
		s.do("POST", "/Users/"+id, "{}").want(t, http.StatusNotFound)
	})
	t.Run("media type", func(t *testing.T) {
		s.do("POST", "/Users", userBody("json@example.com", ""), "Content-Type", "application/json").want(t, http.StatusCreated)
		s.do("POST", "/Users", userBody("xml@example.com", ""), "Content-Type", "text/xml").want(t, http.StatusUnsupportedMediaType)
	})
}

// TestDiscovery reads the discovery endpoints.
func TestDiscovery(t *testing.T) {
	s := newSCIMServer(t)
	a := s.do("GET", "/ServiceProviderConfig", "").want(t, http.StatusOK)
	for k, want := range map[string]any{"patch": true, "bulk": false, "filter": true, "changePassword": false, "sort": false, "etag": true} {
		if m, _ := a.body[k].(map[string]any); m["supported"] != want {
			t.Errorf("%s.supported = %v, want %v", k, m["supported"], want)
		}
	}
	if f, _ := a.body["filter"].(map[string]any); f["maxResults"] != float64(MaxCount) {
		t.Errorf("filter.maxResults: %s", a.raw)
	}
	if a := s.do("GET", "/ResourceTypes", "").want(t, http.StatusOK); a.total() != 2 {
		t.Errorf("ResourceTypes: %s", a.raw)
	}
	if a := s.do("GET", "/ResourceTypes/User", "").want(t, http.StatusOK); a.str("schema") != UserSchema {
		t.Errorf("ResourceTypes/User: %s", a.raw)
	}
	if a := s.do("GET", "/Schemas", "").want(t, http.StatusOK); a.total() != 3 {
		t.Errorf("Schemas: %s", a.raw)
	}
	a = s.do("GET", "/Schemas/"+EnterpriseSchema, "").want(t, http.StatusOK)
	if a.str("id") != EnterpriseSchema || !strings.Contains(a.raw, `"department"`) {
		t.Errorf("enterprise schema: %s", a.raw)
	}
	a = s.do("GET", "/Schemas/"+UserSchema, "").want(t, http.StatusOK)
	if strings.Contains(a.raw, `"nickName"`) || !strings.Contains(a.raw, `"userName"`) {
		t.Errorf("user schema lists what usersd does not keep, or misses userName: %s", a.raw)
	}
	s.do("GET", "/Schemas/urn:nope", "").want(t, http.StatusNotFound)
}

// TestPanicIsA500: a panic in an endpoint is an error with its stack, a
// SCIM 500, not a dropped connection.
func TestPanicIsA500(t *testing.T) {
	err := run(func(*request) error { panic("boom") }, &request{})
	if err == nil || !strings.Contains(err.Error(), "panic: boom") || !strings.Contains(err.Error(), "handler.go") {
		t.Fatalf("run(panicking) = %v, want the panic with its stack", err)
	}
	if e := FromError(err); e.Status != http.StatusInternalServerError {
		t.Errorf("FromError(panic).Status = %d, want 500", e.Status)
	}
}
