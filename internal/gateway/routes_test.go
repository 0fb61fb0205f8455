package gateway_test

import (
	"cmp"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
)

// allMethods are the methods sent to every path: the standard ones and
// OPTIONS, which no route takes.
var allMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

const exampleID = "0190a5b4-0000-7000-8000-000000000001"

// routeTable returns the example path of every route of gateway.Routes(),
// and of the OpenAPI documents, with the methods that routes take on it.
// A route takes a path when its template matches it, so the path of one
// route may be taken by others too: GET, PATCH and DELETE
// /v1/users/{id} take /v1/users/{id}:undelete, with an id that is not one.
func routeTable(t *testing.T) map[string][]string {
	t.Helper()
	routes := append(gateway.Routes(),
		gateway.Route{Method: "GET", Template: "/openapi/v1.json"}, gateway.Route{Method: "HEAD", Template: "/openapi/v1.json"},
		gateway.Route{Method: "GET", Template: "/openapi/v2.json"}, gateway.Route{Method: "HEAD", Template: "/openapi/v2.json"})
	table := map[string][]string{}
	versions := map[string]int{}
	for _, r := range routes {
		p := r.Example(exampleID)
		versions[strings.SplitN(p, "/", 3)[1]]++
		table[p] = nil
	}
	// The walk is only as good as the list: both versions, and at least as
	// many routes as the protos had when this test was written.
	if versions["v1"] < 15 || versions["v2"] < 16 {
		t.Fatalf("gateway.Routes() has %v routes per prefix, want both versions with all their routes", versions)
	}
	for p := range table {
		for _, r := range routes {
			if matches(r.Template, p) && !slices.Contains(table[p], r.Method) {
				table[p] = append(table[p], r.Method)
			}
		}
	}
	return table
}

var variable = regexp.MustCompile(`\{[^}=]+(?:=([^}]*))?\}`)

// matches reports whether a path template of the API matches path as
// grpc-gateway matches it: segment by segment, "*" any one segment; a
// template with a verb ("/v1/users:batchGet") needs the path to end with
// it; in one without, the last segment may hold a colon.
func matches(template, path string) bool {
	template = variable.ReplaceAllStringFunc(template, func(v string) string {
		return cmp.Or(variable.FindStringSubmatch(v)[1], "*")
	})
	last := template[strings.LastIndex(template, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		verb := last[i:]
		if !strings.HasSuffix(path, verb) {
			return false
		}
		template, path = strings.TrimSuffix(template, verb), strings.TrimSuffix(path, verb)
	}
	ts, ps := strings.Split(template, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i := range ts {
		if ts[i] != ps[i] && (ts[i] != "*" || ps[i] == "") {
			return false
		}
	}
	return true
}

// wantRoutingError fails the test unless w is the status with a
// google.rpc.Status body of the code.
func wantRoutingError(t *testing.T, w *httptest.ResponseRecorder, status int, code float64) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	body := decode(t, w)
	if body["code"] != code || body["message"] == "" || body["message"] == nil {
		t.Errorf("body = %s, want a google.rpc.Status with code %v and a message", w.Body, code)
	}
	if _, ok := body["details"].([]any); !ok {
		t.Errorf("body = %s, want details", w.Body)
	}
}

// TestRoutingErrors walks every route of both versions, derived from the
// protos' google.api.http annotations, and the OpenAPI documents, with
// every method: a method no route of the path takes is a 405 with an Allow
// header that lists the ones that do, and a google.rpc.Status body; the
// methods in Allow are routed. Unknown paths are 404 with the same body.
// Never a 501.
func TestRoutingErrors(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	for path, allowed := range routeTable(t) {
		slices.Sort(allowed)
		for _, method := range allMethods {
			t.Run(method+" "+path, func(t *testing.T) {
				w := call(t, h, method, path, "{}")
				if slices.Contains(allowed, method) {
					if w.Code == http.StatusMethodNotAllowed || w.Code == http.StatusNotImplemented {
						t.Fatalf("status = %d, want the route's answer; body %s", w.Code, w.Body)
					}
					return
				}
				wantRoutingError(t, w, http.StatusMethodNotAllowed, 12)
				got := strings.Split(w.Header().Get("Allow"), ", ")
				slices.Sort(got)
				if diff := gocmp.Diff(allowed, got); diff != "" {
					t.Errorf("Allow = %q (-want +got):\n%s", w.Header().Get("Allow"), diff)
				}
			})
		}
	}
}

// TestRoutingErrorsUnversioned: the unversioned paths answer as the
// version the Accept header chooses, routing errors included.
func TestRoutingErrorsUnversioned(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	for _, tt := range []struct {
		accept, method, path string
		status               int
		allow                string
	}{
		{v1, "PUT", "/users", 405, "GET, POST"},
		{v2, "PUT", "/users", 405, "GET, POST"},
		{"", "DELETE", "/users:batchGet", 405, "GET"},
		{v1, "PUT", "/users/" + exampleID, 405, "GET, PATCH, DELETE"},
		{v2, "PUT", "/users/" + exampleID + ":undelete", 405, "GET, POST, PATCH, DELETE"},
		{v1, "POST", "/operations/" + exampleID, 405, "GET"},
		{v2, "GET", "/users/" + exampleID + "/teams", 404, ""},
		{v1, "GET", "/users:frobnicate", 404, ""},
	} {
		t.Run(tt.accept+" "+tt.method+" "+tt.path, func(t *testing.T) {
			w := call(t, h, tt.method, tt.path, "", "Accept", tt.accept)
			code := map[int]float64{404: 5, 405: 12}[tt.status]
			wantRoutingError(t, w, tt.status, code)
			if got := w.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if want := map[string]string{v1: v1, v2: v2, "": v1}[tt.accept]; w.Header().Get("Content-Type") != want {
				t.Errorf("Content-Type = %q, want %q", w.Header().Get("Content-Type"), want)
			}
		})
	}
}

// TestNotFound: a path that no route has is a 404 with a google.rpc.Status
// body, whatever the method.
func TestNotFound(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	for _, path := range []string{
		"/", "/nope", "/v1", "/v1/", "/v1/groups", "/v2/teams/x", "/v3/users",
		"/v1/users/" + exampleID + "/groups", "/v2/users/" + exampleID + "/x/y",
		"/v1/users:frobnicate", "/openapi/", "/openapi/v3.json", "/openapi/v1.json/x",
	} {
		for _, method := range allMethods {
			t.Run(method+" "+path, func(t *testing.T) {
				w := call(t, h, method, path, "")
				wantRoutingError(t, w, http.StatusNotFound, 5)
				if a := w.Header().Get("Allow"); a != "" {
					t.Errorf("Allow = %q on a 404", a)
				}
			})
		}
	}
}

// TestNoMethodOverride: a form-encoded POST is not served by a GET route
// (grpc-gateway's path-length fallback), nor turned into another method by
// X-HTTP-Method-Override.
func TestNoMethodOverride(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	created := call(t, h, "POST", "/v1/users", `{"email":"ada@example.com","displayName":"Ada"}`)
	if created.Code != http.StatusCreated {
		t.Fatalf("create status = %d; body %s", created.Code, created.Body)
	}
	id, _ := decode(t, created)["id"].(string)
	form := "application/x-www-form-urlencoded"
	w := call(t, h, "POST", "/v1/users/"+id, "", "Content-Type", form)
	wantRoutingError(t, w, http.StatusMethodNotAllowed, 12)
	w = call(t, h, "POST", "/v1/users/"+id, "", "Content-Type", form, "X-HTTP-Method-Override", "DELETE")
	wantRoutingError(t, w, http.StatusMethodNotAllowed, 12)
	got := call(t, h, "GET", "/v1/users/"+id, "")
	if state, _ := decode(t, got)["state"].(string); got.Code != http.StatusOK || state != "STATE_ACTIVE" {
		t.Errorf("GET after the overrides = %d %s, want the user still active", got.Code, got.Body)
	}
}

// TestRoutesStartWithTheirVersion checks what NewHandler's dispatch by
// version relies on: every route's template starts with the literal
// segment of its API version (users.v1 routes with /v1/, users.v2 with
// /v2/), so no route of one version can take a path of the other.
func TestRoutesStartWithTheirVersion(t *testing.T) {
	for _, r := range gateway.Routes() {
		var want string
		switch {
		case strings.HasPrefix(r.RPC, "/users.v1."):
			want = "/v1/"
		case strings.HasPrefix(r.RPC, "/users.v2."):
			want = "/v2/"
		default:
			t.Errorf("route %s %s of %s: of no known version", r.Method, r.Template, r.RPC)
			continue
		}
		if !strings.HasPrefix(r.Template, want) {
			t.Errorf("route %s %s of %s does not start with %s", r.Method, r.Template, r.RPC, want)
		}
	}
}
