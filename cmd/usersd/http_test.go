package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// response is an HTTP answer with its JSON body decoded.
type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

// do sends one request to the test server and decodes the answer.
func (s *testServer) do(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+s.HTTP+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := response{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.Body); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %q", method, path, raw)
		}
	}
	return out
}

// wantStatus fails the test unless the answer has the status; for errors it
// also checks that every field is named in the BadRequest detail.
func (r response) wantStatus(t *testing.T, status int, fields ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body: %s", r.Status, status, r.Raw)
	}
	named := map[string]bool{}
	details, _ := r.Body["details"].([]any)
	for _, d := range details {
		dm, _ := d.(map[string]any)
		fvs, _ := dm["fieldViolations"].([]any)
		for _, fv := range fvs {
			named[fmt.Sprint(fv.(map[string]any)["field"])] = true
		}
	}
	for _, f := range fields {
		found := named[f]
		for n := range named {
			found = found || strings.HasPrefix(n, f+"[")
		}
		if !found {
			t.Errorf("field %q not named in the error; body: %s", f, r.Raw)
		}
	}
}

func (r response) str(key string) string { s, _ := r.Body[key].(string); return s }

func (r response) reason() string {
	details, _ := r.Body["details"].([]any)
	for _, d := range details {
		if dm, _ := d.(map[string]any); dm["reason"] != nil {
			return fmt.Sprint(dm["reason"])
		}
	}
	return ""
}

func createUser(t *testing.T, s *testServer, email, name string) response {
	t.Helper()
	r := s.do(t, "POST", "/v1/users", fmt.Sprintf(`{"email":%q,"displayName":%q}`, email, name))
	r.wantStatus(t, http.StatusCreated)
	return r
}

func TestHTTPCreateAndGet(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		r := s.do(t, "POST", "/v1/users", `{"email":"Ada@Example.com","displayName":"Ada","labels":{"team":"math"},"state":"STATE_SUSPENDED"}`)
		r.wantStatus(t, http.StatusCreated)
		id := r.str("id")
		if got, want := r.Header.Get("Location"), "/v1/users/"+id; got != want {
			t.Errorf("Location = %q, want %q", got, want)
		}
		if got, want := r.Header.Get("ETag"), `"`+r.str("etag")+`"`; got != want || r.str("etag") == "" {
			t.Errorf("ETag = %q, want %q", got, want)
		}
		for _, k := range []string{"id", "email", "displayName", "state", "labels", "createTime", "updateTime", "deleteTime", "etag"} {
			if _, ok := r.Body[k]; !ok {
				t.Errorf("JSON user lacks %q: %s", k, r.Raw)
			}
		}
		if r.str("state") != "STATE_SUSPENDED" || r.str("email") != "Ada@Example.com" || r.Body["deleteTime"] != nil {
			t.Errorf("created user = %s", r.Raw)
		}

		g := s.do(t, "GET", "/v1/users/"+id, "")
		g.wantStatus(t, http.StatusOK)
		if g.Raw != r.Raw {
			t.Errorf("GET returned\n%s\nwant what POST returned\n%s", g.Raw, r.Raw)
		}
		s.do(t, "GET", "/v1/users/"+strings.ToUpper(id), "").wantStatus(t, http.StatusOK)
		s.do(t, "GET", "/v1/users/0190a5b4-0000-7000-8000-000000000000", "").wantStatus(t, http.StatusNotFound)
		s.do(t, "GET", "/v1/users/not-a-uuid", "").wantStatus(t, http.StatusBadRequest, "id")
	})
}

func TestHTTPCreateIdempotent(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		body := `{"email":"grace@example.com","displayName":"Grace"}`
		first := s.do(t, "POST", "/v1/users", body, "Idempotency-Key", "key-1")
		first.wantStatus(t, http.StatusCreated)
		again := s.do(t, "POST", "/v1/users", body, "Idempotency-Key", "key-1")
		again.wantStatus(t, http.StatusCreated)
		if again.str("id") != first.str("id") {
			t.Errorf("replay id = %s, want %s", again.str("id"), first.str("id"))
		}
		viaQuery := s.do(t, "POST", "/v1/users?requestId=key-1", body)
		viaQuery.wantStatus(t, http.StatusCreated)
		if viaQuery.str("id") != first.str("id") {
			t.Errorf("replay through request_id = %s, want %s", viaQuery.str("id"), first.str("id"))
		}
		other := s.do(t, "POST", "/v1/users", `{"email":"grace@example.com","displayName":"Grace H."}`, "Idempotency-Key", "key-1")
		other.wantStatus(t, http.StatusBadRequest, "request_id")
		if other.reason() != "REQUEST_ID_REUSED" {
			t.Errorf("reason = %q, want REQUEST_ID_REUSED; body %s", other.reason(), other.Raw)
		}
		s.do(t, "POST", "/v1/users?requestId=a", body, "Idempotency-Key", "b").wantStatus(t, http.StatusBadRequest, "request_id")
		list := s.do(t, "GET", "/v1/users", "")
		if n := len(list.Body["users"].([]any)); n != 1 {
			t.Errorf("users after replays = %d, want 1", n)
		}
	})
}

func TestHTTPErrors(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		createUser(t, s, "taken@example.com", "Taken")
		tests := []struct {
			name, method, path, body string
			status                   int
			fields                   []string
		}{
			{"bad email", "POST", "/v1/users", `{"email":"nope","displayName":"X"}`, 400, []string{"user.email"}},
			{"no display name", "POST", "/v1/users", `{"email":"a@example.com"}`, 400, []string{"user.display_name"}},
			{"long display name", "POST", "/v1/users", `{"email":"a@example.com","displayName":"` + strings.Repeat("é", 201) + `"}`, 400, []string{"user.display_name"}},
			{"bad label key", "POST", "/v1/users", `{"email":"a@example.com","displayName":"A","labels":{"Bad Key":"v"}}`, 400, []string{"user.labels"}},
			{"deleted state", "POST", "/v1/users", `{"email":"a@example.com","displayName":"A","state":"STATE_DELETED"}`, 400, []string{"user.state"}},
			{"unknown state", "POST", "/v1/users", `{"email":"a@example.com","displayName":"A","state":"STATE_SLEEPING"}`, 400, nil},
			{"duplicate email", "POST", "/v1/users", `{"email":"TAKEN@example.com","displayName":"Again"}`, 409, nil},
			{"malformed JSON", "POST", "/v1/users", `{"email":`, 400, nil},
			{"wrong type", "POST", "/v1/users", `{"email":"a@example.com","displayName":5}`, 400, nil},
			{"unknown field", "POST", "/v1/users", `{"email":"a@example.com","dispalyName":"typo"}`, 400, nil},
			{"negative page size", "GET", "/v1/users?pageSize=-1", "", 400, []string{"page_size"}},
			{"page size not a number", "GET", "/v1/users?pageSize=many", "", 400, nil},
			{"bad filter", "GET", "/v1/users?filter=" + url.QueryEscape(`name = "x"`), "", 400, []string{"filter"}},
			{"bad order", "GET", "/v1/users?orderBy=display_name", "", 400, []string{"order_by"}},
			{"garbage token", "GET", "/v1/users?pageToken=garbage", "", 400, []string{"page_token"}},
			{"batch bad id", "GET", "/v1/users:batchGet?ids=nope", "", 400, []string{"ids"}},
			{"batch unknown id", "GET", "/v1/users:batchGet?ids=0190a5b4-0000-7000-8000-000000000000", "", 404, nil},
			{"delete unknown", "DELETE", "/v1/users/0190a5b4-0000-7000-8000-000000000000", "", 404, nil},
			{"undelete bad id", "POST", "/v1/users/x:undelete", "{}", 400, []string{"id"}},
			{"update unknown", "PATCH", "/v1/users/0190a5b4-0000-7000-8000-000000000000", `{"displayName":"X"}`, 404, nil},
			{"no such route", "GET", "/v1/groups", "", 404, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := s.do(t, tt.method, tt.path, tt.body)
				r.wantStatus(t, tt.status, tt.fields...)
				if r.Body["message"] == nil || r.Body["code"] == nil {
					t.Errorf("error body lacks code or message: %s", r.Raw)
				}
			})
		}
	})
}

func TestHTTPBodyLimit(t *testing.T) {
	s := startServer(t, "--max-body-bytes", "1024")
	big := `{"email":"a@example.com","displayName":"` + strings.Repeat("x", 2000) + `"}`
	s.do(t, "POST", "/v1/users", big).wantStatus(t, http.StatusRequestEntityTooLarge)

	// Without Content-Length the limit is found while reading.
	req, _ := http.NewRequest("POST", "http://"+s.HTTP+"/v1/users", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked oversized body: status %d, want 413", res.StatusCode)
	}
	// At the limit is fine.
	fit := `{"email":"a@example.com","displayName":"` + strings.Repeat("x", 100) + `"}`
	fit += strings.Repeat(" ", 1024-len(fit))
	s.do(t, "POST", "/v1/users", fit).wantStatus(t, http.StatusCreated)
}

func TestHTTPList(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		var ids []string
		for i := range 7 {
			ids = append(ids, createUser(t, s, fmt.Sprintf("u%d@example.com", 9-i), fmt.Sprintf("U%d", i)).str("id"))
		}
		// Page through in create order, two at a time.
		var got []string
		token := ""
		for range 10 {
			r := s.do(t, "GET", "/v1/users?pageSize=2&pageToken="+url.QueryEscape(token), "")
			r.wantStatus(t, http.StatusOK)
			for _, u := range r.Body["users"].([]any) {
				got = append(got, u.(map[string]any)["id"].(string))
			}
			if token = r.str("nextPageToken"); token == "" {
				break
			}
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("paged ids = %v, want %v", got, ids)
		}

		// A token is bound to its query.
		r := s.do(t, "GET", "/v1/users?pageSize=2&orderBy=email", "")
		tok := r.str("nextPageToken")
		s.do(t, "GET", "/v1/users?pageSize=2&orderBy=email%20desc&pageToken="+tok, "").wantStatus(t, http.StatusBadRequest, "page_token")
		tampered := []byte(tok)
		tampered[5] ^= 0x01
		s.do(t, "GET", "/v1/users?pageSize=2&orderBy=email&pageToken="+string(tampered), "").wantStatus(t, http.StatusBadRequest, "page_token")
		first := r.Body["users"].([]any)[0].(map[string]any)
		if first["email"] != "u3@example.com" {
			t.Errorf("first by email = %v, want u3@example.com", first["email"])
		}

		// Filter, snake_case parameters, show_deleted.
		s.do(t, "DELETE", "/v1/users/"+ids[0], "").wantStatus(t, http.StatusOK)
		f := url.QueryEscape(`state = "ACTIVE" AND email != "u8@example.com"`)
		r = s.do(t, "GET", "/v1/users?page_size=100&filter="+f, "")
		r.wantStatus(t, http.StatusOK)
		if n := len(r.Body["users"].([]any)); n != 5 {
			t.Errorf("filtered users = %d, want 5: %s", n, r.Raw)
		}
		r = s.do(t, "GET", "/v1/users?showDeleted=true&filter="+url.QueryEscape(`state = "DELETED"`), "")
		if n := len(r.Body["users"].([]any)); n != 1 {
			t.Errorf("deleted users shown = %d, want 1: %s", n, r.Raw)
		}
		s.do(t, "GET", "/v1/users?pageSize=5000", "").wantStatus(t, http.StatusOK)
	})
}

func TestHTTPUpdate(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		u := createUser(t, s, "lin@example.com", "Lin")
		createUser(t, s, "taken@example.com", "Taken")
		id, etag := u.str("id"), u.str("etag")

		// The gateway derives the mask from the body: only displayName changes.
		r := s.do(t, "PATCH", "/v1/users/"+id, `{"displayName":"Lin Y."}`, "If-Match", `"`+etag+`"`)
		r.wantStatus(t, http.StatusOK)
		if r.str("displayName") != "Lin Y." || r.str("email") != "lin@example.com" || r.str("etag") == etag {
			t.Errorf("after PATCH: %s", r.Raw)
		}
		// A stale etag, in the header or the body, is ABORTED: 409.
		s.do(t, "PATCH", "/v1/users/"+id, `{"displayName":"Again"}`, "If-Match", `"`+etag+`"`).wantStatus(t, http.StatusConflict)
		s.do(t, "PATCH", "/v1/users/"+id, `{"displayName":"Again","etag":"`+etag+`"}`).wantStatus(t, http.StatusConflict)
		// An explicit mask clears labels.
		s.do(t, "PATCH", "/v1/users/"+id, `{"labels":{"a":"b"}}`).wantStatus(t, http.StatusOK)
		r = s.do(t, "PATCH", "/v1/users/"+id+"?updateMask=labels", `{}`)
		r.wantStatus(t, http.StatusOK)
		if l, _ := r.Body["labels"].(map[string]any); len(l) != 0 {
			t.Errorf("labels after clearing = %v", l)
		}
		s.do(t, "PATCH", "/v1/users/"+id+"?updateMask=nickname", `{"displayName":"X"}`).wantStatus(t, http.StatusBadRequest, "update_mask")
		s.do(t, "PATCH", "/v1/users/"+id, `{"email":"TAKEN@example.com"}`).wantStatus(t, http.StatusConflict)
		s.do(t, "PATCH", "/v1/users/"+id, `{"state":"STATE_DELETED"}`).wantStatus(t, http.StatusBadRequest, "user.state")
		s.do(t, "PATCH", "/v1/users/"+id, `{"state":"STATE_SUSPENDED"}`).wantStatus(t, http.StatusOK)
	})
}

func TestHTTPDeleteUndelete(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		u := createUser(t, s, "mae@example.com", "Mae")
		id := u.str("id")
		s.do(t, "DELETE", "/v1/users/"+id+"?etag=stale", "").wantStatus(t, http.StatusConflict)
		d := s.do(t, "DELETE", "/v1/users/"+id, "")
		d.wantStatus(t, http.StatusOK)
		if d.str("state") != "STATE_DELETED" || d.Body["deleteTime"] == nil {
			t.Errorf("deleted user: %s", d.Raw)
		}
		s.do(t, "DELETE", "/v1/users/"+id, "").wantStatus(t, http.StatusBadRequest) // FAILED_PRECONDITION
		s.do(t, "PATCH", "/v1/users/"+id, `{"displayName":"Ghost"}`).wantStatus(t, http.StatusBadRequest)
		if n := len(s.do(t, "GET", "/v1/users", "").Body["users"].([]any)); n != 0 {
			t.Errorf("deleted user listed: %d users", n)
		}
		s.do(t, "GET", "/v1/users/"+id, "").wantStatus(t, http.StatusOK) // still readable

		// While deleted, the address is free; undelete then conflicts.
		other := createUser(t, s, "MAE@example.com", "Other Mae")
		s.do(t, "POST", "/v1/users/"+id+":undelete", "{}").wantStatus(t, http.StatusConflict)
		s.do(t, "DELETE", "/v1/users/"+other.str("id"), "").wantStatus(t, http.StatusOK)
		r := s.do(t, "POST", "/v1/users/"+id+":undelete", "{}")
		r.wantStatus(t, http.StatusOK)
		if r.str("state") != "STATE_ACTIVE" || r.Body["deleteTime"] != nil {
			t.Errorf("undeleted user: %s", r.Raw)
		}
		s.do(t, "POST", "/v1/users/"+id+":undelete", "{}").wantStatus(t, http.StatusBadRequest)
	})
}

func TestHTTPBatchGet(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		a := createUser(t, s, "a@example.com", "A").str("id")
		b := createUser(t, s, "b@example.com", "B").str("id")
		r := s.do(t, "GET", "/v1/users:batchGet?ids="+b+"&ids="+a+"&ids="+b, "")
		r.wantStatus(t, http.StatusOK)
		var got []string
		for _, u := range r.Body["users"].([]any) {
			got = append(got, u.(map[string]any)["id"].(string))
		}
		if want := []string{b, a, b}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("batch ids = %v, want %v", got, want)
		}
		var q bytes.Buffer
		for i := range 1001 {
			fmt.Fprintf(&q, "&ids=0190a5b4-0000-7000-8000-%012d", i)
		}
		s.do(t, "GET", "/v1/users:batchGet?"+q.String()[1:], "").wantStatus(t, http.StatusBadRequest, "ids")
	})
}

func TestAdminEndpoints(t *testing.T) {
	s := startServer(t)
	// pprof is on the admin address only.
	if r := s.do(t, "GET", "/debug/pprof/", ""); r.Status != http.StatusNotFound {
		t.Errorf("public GET /debug/pprof/ = %d, want 404", r.Status)
	}
	for _, v := range []string{"v1", "v2"} {
		r := s.do(t, "GET", "/openapi/"+v+".json", "")
		info, _ := r.Body["info"].(map[string]any)
		if r.Status != http.StatusOK || r.Body["openapi"] != "3.1.0" || info["version"] != version {
			t.Errorf("GET /openapi/%s.json = %d %.80s, want OpenAPI 3.1.0 with info.version %q", v, r.Status, r.Raw, version)
		}
	}
	for _, p := range []string{"/livez", "/readyz", "/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/metrics"} {
		res, err := http.Get("http://" + s.Admin + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, res.StatusCode)
		}
	}
}
