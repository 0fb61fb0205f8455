package gateway_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

const (
	v1 = gateway.MediaTypeV1
	v2 = gateway.MediaTypeV2
)

// TestNegotiate is the negotiation table of docs/api.md: each row is an
// Accept header (its fields) and the version it gets, 0 for 406.
func TestNegotiate(t *testing.T) {
	tests := []struct {
		name   string
		accept []string
		want   int
	}{
		// Nothing named: the default version.
		{"no Accept", nil, 1},
		{"empty Accept", []string{""}, 1},
		{"only empty list elements", []string{" , ,"}, 1},
		{"any type", []string{"*/*"}, 1},
		{"any application type", []string{"application/*"}, 1},
		{"application/json", []string{"application/json"}, 1},
		{"application/json with charset", []string{"application/json; charset=utf-8"}, 1},
		{"axios", []string{"application/json, text/plain, */*"}, 1},
		{"browser", []string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, 1},
		{"old Java, with a bare * and q=.2", []string{"text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"}, 1},

		// A version named.
		{"v1", []string{v1}, 1},
		{"v2", []string{v2}, 2},
		{"v2 in other letter case", []string{"Application/VND.usersd.V2+JSON"}, 2},
		{"v2 with parameters", []string{v2 + "; charset=utf-8"}, 2},
		{"v2 among other types", []string{"text/html, " + v2 + ";q=0.5"}, 2},
		{"unsupported v3, then v2", []string{"application/vnd.usersd.v3+json, " + v2 + ";q=0.1"}, 2},

		// q-values.
		{"v1 preferred by q", []string{v1 + ", " + v2 + ";q=0.9"}, 1},
		{"v2 preferred by q", []string{v1 + ";q=0.5, " + v2}, 2},
		{"three decimals", []string{v1 + ";q=0.001, " + v2 + ";q=0.002"}, 2},
		{"upper-case Q", []string{v2 + ";Q=0, */*"}, 1},
		{"application/json preferred over v2 by q", []string{"application/json, " + v2 + ";q=0.5"}, 1},
		{"v2 named, but */* higher", []string{v2 + ";q=0.5, */*"}, 1},
		{"v2 refused, anything else", []string{v2 + ";q=0, */*"}, 1},
		{"v1 refused, anything else", []string{v1 + ";q=0, */*"}, 2},
		{"application/json refused, anything else", []string{"application/json;q=0, */*"}, 2},
		{"application/json below */*", []string{"application/json;q=0.5, */*"}, 2},
		{"application/* above application/json", []string{"application/*;q=0.5, application/json;q=0.2"}, 2},
		{"repeated range: the most accepting counts", []string{v2 + ";q=0, " + v2 + ";q=0.5, " + v1 + ";q=0.4"}, 2},
		{"several Accept fields", []string{v1 + ";q=0.5", v2}, 2},

		// Ties.
		{"v1 and v2 named: the higher", []string{v1 + ", " + v2}, 2},
		{"v1 and v2 named, reversed", []string{v2 + ", " + v1}, 2},
		{"v1 named beats v2 by */*", []string{v1 + ", */*"}, 1},
		{"v2 named beats v1 by */*", []string{"*/*, " + v2}, 2},
		{"v2 named beats application/json", []string{"application/json, " + v2}, 2},
		{"application/json and */*: the default", []string{"application/json, */*"}, 1},

		// Malformed elements are ignored.
		{"malformed element, then v2", []string{"garbage, " + v2}, 2},
		{"quoted comma in a parameter", []string{v2 + `; ext="a,b"`}, 2},
		{"q above 1 ignored", []string{v2 + ";q=2, " + v1 + ";q=0.1"}, 1},
		{"q not a number ignored", []string{v2 + ";q=high, " + v1 + ";q=0.1"}, 1},
		{"q negative ignored", []string{v2 + ";q=-1, " + v1 + ";q=0.1"}, 1},
		{"*/json ignored", []string{"*/json, " + v2 + ";q=0.3"}, 2},

		// 406.
		{"text/html", []string{"text/html"}, 0},
		{"text/*", []string{"text/*"}, 0},
		{"unsupported v3", []string{"application/vnd.usersd.v3+json"}, 0},
		{"*/* refused", []string{"*/*;q=0"}, 0},
		{"both versions refused", []string{v1 + ";q=0, " + v2 + ";q=0, */*"}, 0},
		{"v1 refused, application/json (the default) asked", []string{v1 + ";q=0, application/json"}, 0},
		{"only malformed", []string{"garbage"}, 0},
		{"only a bad q", []string{v2 + ";q=high"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := gateway.Negotiate(tc.accept)
			if !ok {
				got = 0
			}
			if got != tc.want {
				t.Errorf("Negotiate(%q) = %d, %v; want %d (0: not acceptable)", tc.accept, got, ok, tc.want)
			}
		})
	}
}

// newAPIGateway returns the gateway on a fresh SQLite database, reaching the
// v1 and v2 servers in-process through the interceptors of chain, as
// serve.go does. Imports are queued but never run: the gateway's tests look
// at HTTP, and their operations stay not done.
func newAPIGateway(t *testing.T, opts gateway.Options, chain grpcserver.ChainConfig) http.Handler {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatal(err)
	}
	svc := users.NewService(sqlite.NewStore(db, sqlite.WithJobs(&userstest.Queue[*sql.Tx]{})), users.Config{})
	chain.Log = zerolog.Nop()
	ics := grpcserver.Interceptors(chain)
	ch := inproc.New(grpcserver.Chain(ics...))
	usersv1.RegisterUserServiceServer(ch, grpcserver.New(svc))
	usersv2.RegisterUserServiceServer(ch, grpcserver.NewV2(svc))
	usersv2.RegisterTenantServiceServer(ch, grpcserver.NewTenantsV2(svc))
	h, err := gateway.NewHandler(ctx, ch, opts)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// call serves one request on h; header holds name/value pairs.
func call(t *testing.T, h http.Handler, method, path, body string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// decode returns the JSON object of a response body.
func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, w.Body)
	}
	return m
}

func TestNegotiatedRoutes(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})

	// A v2 create on the unversioned path, with a vendor-typed body.
	w := call(t, h, "POST", "/users", `{"email":"ada@example.com","displayName":"Ada"}`, "Accept", v2, "Content-Type", v2)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /users (v2) status = %d, want 201; body %s", w.Code, w.Body)
	}
	created := decode(t, w)
	name, _ := created["name"].(string)
	if !strings.HasPrefix(name, "tenants/default/users/") {
		t.Fatalf("POST /users (v2) gave name %q, want tenants/default/users/{id}; body %s", name, w.Body)
	}
	id := strings.TrimPrefix(name, "tenants/default/users/")
	if got, want := w.Header().Get("Location"), "/v2/"+name; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got, want := w.Header().Get("ETag"), `"`+created["etag"].(string)+`"`; got != want {
		t.Errorf("ETag = %q, want %q", got, want)
	}

	tests := []struct {
		name, method, path, accept string
		status                     int
		contentType                string
		vary                       bool
		key                        string // a field of the body the version is known by
	}{
		{"default version", "GET", "/users/" + id, "", 200, v1, true, "id"},
		{"v1", "GET", "/users/" + id, v1, 200, v1, true, "id"},
		{"v2", "GET", "/users/" + id, v2, 200, v2, true, "name"},
		{"v2 by q", "GET", "/users/" + id, v1 + ";q=0.5, " + v2 + ";q=0.9", 200, v2, true, "name"},
		{"v2 list", "GET", "/users", v2, 200, v2, true, "users"},
		{"v2 batch", "GET", "/users:batchGet?names=" + name, v2, 200, v2, true, "users"},
		{"v1 batch", "GET", "/users:batchGet?ids=" + id, "", 200, v1, true, "users"},
		{"v2 error", "GET", "/users/not-a-uuid", v2, 400, v2, true, "code"},
		{"v1 unknown route", "GET", "/users/" + id + "/friends", v1, 404, v1, true, "code"},
		{"not acceptable", "GET", "/users/" + id, "text/html", 406, "application/json", true, "code"},
		{"path wins over Accept", "GET", "/v1/users/" + id, v2, 200, "application/json", false, "id"},
		{"v2 path", "GET", "/v2/users/" + id, "", 200, "application/json", false, "name"},
		{"other paths are not negotiated", "GET", "/usersx", "text/html", 404, "application/json", false, "code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := call(t, h, tc.method, tc.path, "", "Accept", tc.accept)
			if w.Code != tc.status {
				t.Fatalf("%s %s (Accept %q) status = %d, want %d; body %s", tc.method, tc.path, tc.accept, w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := w.Header().Get("Vary") == "Accept"; got != tc.vary {
				t.Errorf("Vary = %q, want Accept: %v", w.Header().Get("Vary"), tc.vary)
			}
			if body := decode(t, w); body[tc.key] == nil {
				t.Errorf("body has no %q: %s", tc.key, w.Body)
			}
		})
	}
}

func TestNotAcceptableBody(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	w := call(t, h, "GET", "/users", "", "Accept", "application/vnd.usersd.v3+json")
	if w.Code != http.StatusNotAcceptable {
		t.Fatalf("status = %d, want 406; body %s", w.Code, w.Body)
	}
	var got struct {
		Code    int
		Message string
		Details []struct {
			Type     string `json:"@type"`
			Reason   string
			Domain   string
			Metadata map[string]string
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	list := strings.Join(gateway.SupportedMediaTypes, ", ")
	if got.Code != 3 || got.Message != "not acceptable: supported media types are "+list {
		t.Errorf("code, message = %d, %q; want 3, the supported media types", got.Code, got.Message)
	}
	if len(got.Details) != 1 || got.Details[0].Type != "type.googleapis.com/google.rpc.ErrorInfo" ||
		got.Details[0].Reason != "NOT_ACCEPTABLE" || got.Details[0].Domain != grpcserver.ErrorDomain ||
		got.Details[0].Metadata["supportedMediaTypes"] != list {
		t.Errorf("details = %+v, want an ErrorInfo NOT_ACCEPTABLE listing %s", got.Details, list)
	}
	if want := []string{v1, v2, "application/json"}; strings.Join(gateway.SupportedMediaTypes, ",") != strings.Join(want, ",") {
		t.Errorf("SupportedMediaTypes = %q, want %q", gateway.SupportedMediaTypes, want)
	}
}
