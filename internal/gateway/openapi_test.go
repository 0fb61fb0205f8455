package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/openapidoc"
	"github.com/usersd/usersd/internal/telemetry"
)

func TestOpenAPIHandler(t *testing.T) {
	srv := httptest.NewServer(gateway.OpenAPIHandler(""))
	defer srv.Close()

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody           string // checked, with the headers, on 200
	}{
		{"v1", http.MethodGet, "/openapi/v1.json", http.StatusOK, usersv1.OpenAPI},
		{"v2", http.MethodGet, "/openapi/v2.json", http.StatusOK, usersv2.OpenAPI},
		{"head", http.MethodHead, "/openapi/v2.json", http.StatusOK, ""},
		{"unknown version", http.MethodGet, "/openapi/v3.json", http.StatusNotFound, ""},
		{"directory", http.MethodGet, "/openapi/", http.StatusNotFound, ""},
		{"api path", http.MethodGet, "/v1/users", http.StatusNotFound, ""},
		{"post", http.MethodPost, "/openapi/v1.json", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s status = %d, want %d", tt.method, tt.path, resp.StatusCode, tt.wantStatus)
			}
			if resp.StatusCode != http.StatusOK {
				return
			}
			for header, want := range map[string]string{
				"Content-Type":  "application/json",
				"Cache-Control": "public, max-age=300",
			} {
				if got := resp.Header.Get(header); got != want {
					t.Errorf("%s %s %s = %q, want %q", tt.method, tt.path, header, got, want)
				}
			}
			if resp.Header.Get("ETag") == "" {
				t.Errorf("%s %s has no ETag", tt.method, tt.path)
			}
			if string(body) != tt.wantBody {
				t.Errorf("%s %s body is %d bytes, want the %d of the committed document", tt.method, tt.path, len(body), len(tt.wantBody))
			}
		})
	}

	t.Run("revalidation", func(t *testing.T) {
		get := func(etag string) *http.Response {
			t.Helper()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/openapi/v1.json", nil)
			if err != nil {
				t.Fatal(err)
			}
			if etag != "" {
				req.Header.Set("If-None-Match", etag)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp
		}
		etag := get("").Header.Get("ETag")
		if got := get(etag).StatusCode; got != http.StatusNotModified {
			t.Errorf("GET with If-None-Match: %s status = %d, want %d", etag, got, http.StatusNotModified)
		}
	})
}

func TestOpenAPIHandlerRecordsRoute(t *testing.T) {
	ctx, call := telemetry.WithCall(t.Context())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/openapi/v2.json", nil)
	gateway.OpenAPIHandler("").ServeHTTP(httptest.NewRecorder(), req)
	if got, want := call.Route(), "/openapi/v2.json"; got != want {
		t.Errorf("Call.Route() = %q, want %q", got, want)
	}
}

// TestOpenAPIRoutes checks that each version's document has exactly the
// HTTP routes of its proto: every google.api.http binding is in "paths", and
// "paths" has nothing else.
//
// Routes are compared as "METHOD path" with each variable segment written
// {}: a binding's variable that matches one segment, {id} or {id=*}, is
// one; a variable with a pattern, {name=users/*}, is its segments,
// users/{}. The documents write resource names out that way
// (/v2/users/{user}), so that clients fill in ids.
func TestOpenAPIRoutes(t *testing.T) {
	tests := []struct {
		name        string
		file        protoreflect.FileDescriptor
		doc         string
		wantMissing []string // routes of the proto not in the document
		wantExtra   []string // routes of the document not in the proto
	}{
		{name: "v1", file: usersv1.File_users_v1_users_proto, doc: usersv1.OpenAPI},
		{name: "v2", file: usersv2.File_users_v2_users_proto, doc: usersv2.OpenAPI},
		// The rows below break a copy of a document, to show the check
		// catches it.
		{
			name: "v1 document lacks a route",
			file: usersv1.File_users_v1_users_proto,
			doc: editDoc(t, usersv1.OpenAPI, func(paths map[string]any) {
				delete(paths["/v1/users/{id}"].(map[string]any), "get")
			}),
			wantMissing: []string{"GET /v1/users/{}"},
		},
		{
			name: "v1 document has a route the proto lacks",
			file: usersv1.File_users_v1_users_proto,
			doc: editDoc(t, usersv1.OpenAPI, func(paths map[string]any) {
				paths["/v1/users/{id}:purge"] = map[string]any{"post": map[string]any{}}
			}),
			wantExtra: []string{"POST /v1/users/{}:purge"},
		},
		{
			name: "v2 document drops a resource name's collection",
			file: usersv2.File_users_v2_users_proto,
			doc: editDoc(t, usersv2.OpenAPI, func(paths map[string]any) {
				item := paths["/v2/users/{user}"].(map[string]any)
				paths["/v2/{user}"] = map[string]any{"get": item["get"]}
				delete(item, "get")
			}),
			wantMissing: []string{"GET /v2/users/{}"},
			wantExtra:   []string{"GET /v2/{}"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bound, documented := protoRoutes(tt.file), docRoutes(t, tt.doc)
			if len(bound) == 0 {
				t.Fatalf("%s has no HTTP bindings", tt.file.Path())
			}
			missing, extra := subtract(bound, documented), subtract(documented, bound)
			if diff := cmp.Diff(tt.wantMissing, missing); diff != "" {
				t.Errorf("routes of %s missing from its OpenAPI document (-want +got):\n%s", tt.file.Path(), diff)
			}
			if diff := cmp.Diff(tt.wantExtra, extra); diff != "" {
				t.Errorf("routes of the OpenAPI document not in %s (-want +got):\n%s", tt.file.Path(), diff)
			}
		})
	}
}

// protoRoutes returns the HTTP routes of every RPC in file, additional
// bindings included, with path variables by their JSON names as in the
// documents.
func protoRoutes(file protoreflect.FileDescriptor) []string {
	var routes []string
	var add func(rule *annotations.HttpRule)
	add = func(rule *annotations.HttpRule) {
		var method, path string
		switch p := rule.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			method, path = http.MethodGet, p.Get
		case *annotations.HttpRule_Put:
			method, path = http.MethodPut, p.Put
		case *annotations.HttpRule_Post:
			method, path = http.MethodPost, p.Post
		case *annotations.HttpRule_Delete:
			method, path = http.MethodDelete, p.Delete
		case *annotations.HttpRule_Patch:
			method, path = http.MethodPatch, p.Patch
		case *annotations.HttpRule_Custom:
			method, path = strings.ToUpper(p.Custom.GetKind()), p.Custom.GetPath()
		}
		path = pathVariable.ReplaceAllStringFunc(path, func(v string) string {
			_, pattern, ok := strings.Cut(strings.Trim(v, "{}"), "=")
			if !ok {
				return "{}"
			}
			return strings.ReplaceAll(pattern, "*", "{}")
		})
		routes = append(routes, method+" "+path)
		for _, b := range rule.GetAdditionalBindings() {
			add(b)
		}
	}
	for i := range file.Services().Len() {
		methods := file.Services().Get(i).Methods()
		for j := range methods.Len() {
			if rule, ok := proto.GetExtension(methods.Get(j).Options(), annotations.E_Http).(*annotations.HttpRule); ok && rule != nil {
				add(rule)
			}
		}
	}
	slices.Sort(routes)
	return routes
}

var pathVariable = regexp.MustCompile(`\{([^}]+)\}`)

// docRoutes returns the routes in the "paths" of an OpenAPI document.
func docRoutes(t *testing.T, doc string) []string {
	t.Helper()
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	var routes []string
	for path, item := range d.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "options", "head", "patch":
			default:
				continue // path-level parameters or an extension
			}
			routes = append(routes, strings.ToUpper(method)+" "+pathVariable.ReplaceAllString(path, "{}"))
		}
	}
	slices.Sort(routes)
	return routes
}

// subtract returns the elements of a that b lacks; both are sorted.
func subtract(a, b []string) []string {
	var d []string
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			d = append(d, s)
		}
	}
	return d
}

// editDoc returns doc with its "paths" changed by edit.
func editDoc(t *testing.T, doc string, edit func(paths map[string]any)) string {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	edit(d["paths"].(map[string]any))
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOpenAPIVersion: the documents are served with the server's version
// in info.version, where the committed ones hold openapidoc's placeholder.
func TestOpenAPIVersion(t *testing.T) {
	for _, doc := range []string{usersv1.OpenAPI, usersv2.OpenAPI} {
		if got := infoVersion(t, doc); got != openapidoc.VersionPlaceholder {
			t.Errorf("committed info.version = %q, want %q", got, openapidoc.VersionPlaceholder)
		}
	}
	for _, version := range []string{"v1.4.2", `odd "quoted" \ build`} {
		for _, path := range []string{"/openapi/v1.json", "/openapi/v2.json"} {
			w := httptest.NewRecorder()
			gateway.OpenAPIHandler(version).ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
			if got := infoVersion(t, w.Body.String()); got != version {
				t.Errorf("%s served with version %q: info.version = %q", path, version, got)
			}
		}
	}
}

func infoVersion(t *testing.T, doc string) string {
	t.Helper()
	var d struct {
		Info struct{ Version string }
	}
	if err := json.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatal(err)
	}
	return d.Info.Version
}
