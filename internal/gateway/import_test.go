package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
)

// TestImportRoutes checks the HTTP side of ImportUsers and GetOperation in
// both versions, by path and negotiated: 202 Accepted with the operation's
// Location, which GetOperation answers. No job runs here, so the
// operations stay not done.
func TestImportRoutes(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	const rows = `"users":[{"email":"ada@example.com","displayName":"Ada"},{"email":"not an address","displayName":"X"}]`

	tests := []struct {
		name, path, accept string
		body               string
		wantType           string // Content-Type
		wantPrefix         string // of Location; the operation's path follows
		wantName           string // the operation's name, but its id
	}{
		{"v1", "/v1/users:import", "", `{"requestId":"v1",` + rows + `}`, "application/json", "/v1/", "operations/"},
		{"v2", "/v2/users:import", "", `{"requestId":"v2",` + rows + `}`, "application/json", "/v2/", "tenants/default/operations/"},
		{"negotiated v1", "/users:import", "", `{"requestId":"n1",` + rows + `}`, v1, "/v1/", "operations/"},
		{"negotiated v2", "/users:import", v2, `{"requestId":"n2",` + rows + `}`, v2, "/v2/", "tenants/default/operations/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := call(t, h, "POST", tc.path, tc.body, "Accept", tc.accept)
			if w.Code != http.StatusAccepted {
				t.Fatalf("POST %s status = %d, want 202; body %s", tc.path, w.Code, w.Body)
			}
			if got := w.Header().Get("Content-Type"); got != tc.wantType {
				t.Errorf("POST %s Content-Type = %q, want %q", tc.path, got, tc.wantType)
			}
			op := decode(t, w)
			name, _ := op["name"].(string)
			// v2 names the operation in its tenant; v1 has no tenants.
			id, ok := strings.CutPrefix(name, tc.wantName)
			if _, err := uuid.Parse(id); !ok || err != nil {
				t.Fatalf("POST %s name = %q, want %s{UUID}; body %s", tc.path, name, tc.wantName, w.Body)
			}
			location := w.Header().Get("Location")
			if want := tc.wantPrefix + name; location != want {
				t.Errorf("POST %s Location = %q, want %q", tc.path, location, want)
			}
			if md, _ := op["metadata"].(map[string]any); md["total"] != 2.0 {
				t.Errorf("POST %s metadata = %v, want total 2", tc.path, op["metadata"])
			}
			if _, set := op["done"]; !set {
				t.Errorf("POST %s body has no done: %s", tc.path, w.Body)
			}

			// The Location answers, and so does the unversioned path of
			// the operation, the default tenant's, in the same version.
			accept := tc.accept
			if tc.wantPrefix == "/v2/" {
				accept = v2
			}
			for _, get := range []struct{ path, accept string }{
				{location, ""},
				{"/operations/" + id, accept},
			} {
				w := call(t, h, "GET", get.path, "", "Accept", get.accept)
				if w.Code != http.StatusOK {
					t.Fatalf("GET %s (Accept %q) status = %d, want 200; body %s", get.path, get.accept, w.Code, w.Body)
				}
				if got := decode(t, w)["name"]; got != name {
					t.Errorf("GET %s name = %v, want %q", get.path, got, name)
				}
			}

			// A replay answers the same.
			again := call(t, h, "POST", tc.path, tc.body, "Accept", tc.accept)
			if again.Code != http.StatusAccepted || again.Header().Get("Location") != location {
				t.Errorf("POST %s replay = %d, Location %q; want 202, %q", tc.path, again.Code, again.Header().Get("Location"), location)
			}
		})
	}
}

func TestImportRouteErrors(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	unknown := uuid.NewString()
	one := `"users":[{"email":"ada@example.com","displayName":"Ada"}]`

	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantField                string // named by the BadRequest; "" for none
	}{
		{"v1 no users", "POST", "/v1/users:import", `{"requestId":"r"}`, 400, "users"},
		{"v1 no request id", "POST", "/v1/users:import", `{` + one + `}`, 400, "request_id"},
		{"v1 unknown field", "POST", "/v1/users:import", `{"requestId":"r","user":{}}`, 400, ""},
		{"v1 unknown field in a row", "POST", "/v1/users:import", `{"requestId":"r","users":[{"mail":"x"}]}`, 400, ""},
		{"v1 request id reused", "POST", "/v1/users:import", `{"requestId":"r","users":[{"email":"grace@example.com","displayName":"Grace"}]}`, 400, "request_id"},
		{"v1 operation id not a UUID", "GET", "/v1/operations/nope", "", 400, "id"},
		{"v1 unknown operation", "GET", "/v1/operations/" + unknown, "", 404, ""},
		{"v2 no users", "POST", "/v2/users:import", `{"requestId":"r2"}`, 400, "users"},
		{"v2 operation id not a UUID", "GET", "/v2/operations/nope", "", 400, "name"},
		{"v2 unknown operation", "GET", "/v2/operations/" + unknown, "", 404, ""},
	}
	if w := call(t, h, "POST", "/v1/users:import", `{"requestId":"r",`+one+`}`); w.Code != http.StatusAccepted {
		t.Fatalf("POST /v1/users:import status = %d, want 202; body %s", w.Code, w.Body)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := call(t, h, tc.method, tc.path, tc.body)
			if w.Code != tc.wantStatus {
				t.Fatalf("%s %s status = %d, want %d; body %s", tc.method, tc.path, w.Code, tc.wantStatus, w.Body)
			}
			if loc := w.Header().Get("Location"); loc != "" {
				t.Errorf("%s %s Location = %q, want none on an error", tc.method, tc.path, loc)
			}
			if tc.wantField != "" && !slices.Contains(badRequestFields(t, w), tc.wantField) {
				t.Errorf("%s %s BadRequest names no field %q: %s", tc.method, tc.path, tc.wantField, w.Body)
			}
		})
	}
}

// badRequestFields returns the fields named by the BadRequest detail of an
// error response.
func badRequestFields(t *testing.T, w *httptest.ResponseRecorder) []string {
	t.Helper()
	var st struct {
		Details []struct {
			FieldViolations []struct{ Field string }
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatalf("error body: %v: %s", err, w.Body)
	}
	var fields []string
	for _, d := range st.Details {
		for _, v := range d.FieldViolations {
			fields = append(fields, v.Field)
		}
	}
	return fields
}
