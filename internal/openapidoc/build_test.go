package openapidoc

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// swagger is a small OpenAPI 2 document of the shape protoc-gen-openapiv2
// writes: GetUser and DeleteUser of users.v2 on "/v2/{name}".
const swagger = `{
  "swagger": "2.0",
  "info": {"title": "users/v2/users.proto", "version": "version not set"},
  "tags": [{"name": "UserService"}],
  "consumes": ["application/json"], "produces": ["application/json"],
  "paths": {
    "/v2/{name}": {
      "get": {
        "operationId": "UserService_GetUser",
        "parameters": [{"name": "name", "in": "path", "required": true, "type": "string", "pattern": "users/[^/]+"}],
        "responses": {
          "200": {"description": "A successful response.", "schema": {"$ref": "#/definitions/User"}},
          "default": {"description": "An unexpected error response.", "schema": {"$ref": "#/definitions/Status"}}
        },
        "tags": ["UserService"]
      },
      "delete": {
        "operationId": "UserService_DeleteUser",
        "parameters": [
          {"name": "name", "in": "path", "required": true, "type": "string", "pattern": "users/[^/]+"},
          {"name": "etag", "in": "query", "required": false, "type": "string"}
        ],
        "responses": {
          "200": {"description": "A successful response.", "schema": {"$ref": "#/definitions/User"}},
          "default": {"description": "An unexpected error response.", "schema": {"$ref": "#/definitions/Status"}}
        },
        "tags": ["UserService"]
      }
    }
  },
  "definitions": {
    "User": {"type": "object", "properties": {
      "name": {"type": "string"},
      "deleteTime": {"type": "string", "format": "date-time"},
      "labels": {"type": "object", "additionalProperties": {"type": "string"}}
    }},
    "Any": {"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": {}},
    "Status": {"type": "object", "properties": {
      "code": {"type": "integer", "format": "int32"}, "message": {"type": "string"},
      "details": {"type": "array", "items": {"$ref": "#/definitions/Any"}}
    }}
  }
}`

func TestBuild(t *testing.T) {
	api := API{File: usersv2.File_users_v2_users_proto, Examples: map[string]Example{
		"GetUser": {Response: `{"name":"users/x","deleteTime":null,"labels":{}}`},
	}}
	out, err := Build(api, []byte(swagger))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(out)
	if err != nil {
		t.Fatalf("Build wrote a document kin-openapi cannot load: %v\n%s", err, out)
	}
	if doc.OpenAPI != "3.1.0" || doc.Info.Version != VersionPlaceholder || doc.Info.Title != "usersd users API v2" {
		t.Errorf("openapi %q, info %q %q", doc.OpenAPI, doc.Info.Title, doc.Info.Version)
	}
	if got := doc.Paths.Keys(); !slices.Equal(got, []string{"/v2/users/{user}"}) {
		t.Fatalf("paths = %q, want the resource name's segments, /v2/users/{user}", got)
	}
	item := doc.Paths.Value("/v2/users/{user}")

	get := item.Get
	if get.OperationID != "GetUser" {
		t.Errorf("operationId = %q", get.OperationID)
	}
	if got := (*get.Security)[0]["bearerAuth"]; !slices.Equal(got, []string{"users.read"}) {
		t.Errorf("GetUser security = %v, want bearerAuth users.read", got)
	}
	if got, want := get.Responses.Keys(), []string{"200", "400", "401", "403", "404", "429", "503", "default"}; !sameSet(got, want) {
		t.Errorf("GetUser responses = %v, want %v", got, want)
	}
	if p := get.Parameters; len(p) != 1 || p[0].Value.Name != "user" || p[0].Value.In != "path" || !p[0].Value.Required {
		t.Errorf("GetUser parameters = %s", mustJSON(t, p))
	}
	if ok := get.Responses.Value("200").Value; ok.Headers["ETag"] == nil || ok.Content.Get("application/json").Example == nil {
		t.Errorf("GetUser 200 = %s, want an ETag header and the example", mustJSON(t, ok))
	}

	del := item.Delete
	var names []string
	for _, p := range del.Parameters {
		names = append(names, cmp.Or(p.Ref, p.Value.In+" "+p.Value.Name))
	}
	if want := []string{"path user", "query etag", "#/components/parameters/If-Match"}; !slices.Equal(names, want) {
		t.Errorf("DeleteUser parameters = %q, want %q", names, want)
	}
	if got := (*del.Security)[0]["bearerAuth"]; !slices.Equal(got, []string{"users.write"}) {
		t.Errorf("DeleteUser security = %v, want bearerAuth users.write", got)
	}
	if del.Responses.Value("409") == nil {
		t.Errorf("DeleteUser has no 409 (stale etag)")
	}

	user := doc.Components.Schemas["User"].Value
	for prop, wantNull := range map[string]bool{"name": false, "labels": false, "deleteTime": true} {
		if got := user.Properties[prop].Value.Type.IncludesNull(); got != wantNull {
			t.Errorf("User.%s may be null: %v, want %v", prop, got, wantNull)
		}
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"].Value; s.Type != "http" || s.Scheme != "bearer" || s.BearerFormat != "JWT" {
		t.Errorf("bearerAuth = %s", mustJSON(t, s))
	}
	if r := doc.Components.Responses["Unavailable"].Value; r.Headers["Retry-After"] == nil {
		t.Errorf("503 has no Retry-After header")
	}
}

// TestBuildRefuses: what Build cannot describe truthfully is an error that
// stops `make generate`, not a document that lies.
func TestBuildRefuses(t *testing.T) {
	api := API{File: usersv2.File_users_v2_users_proto}
	for name, tt := range map[string]struct{ old, new, want string }{
		"an RPC the operations table lacks": {`"UserService_GetUser"`, `"UserService_Frobnicate"`, "not in openapidoc's operations table"},
		"a schema of no message":            {`"Any": {`, `"Person": {"type": "object"}, "Any": {`, "Person is no message"},
		"a property of no field":            {`"name": {"type": "string"}`, `"nickname": {"type": "string"}`, "nickname is no field"},
		"a pattern that is no resource name": {`"pattern": "users/[^/]+"}],
        "responses"`, `"pattern": "users/.+"}],
        "responses"`, "neither a collection nor one variable segment"},
		"a variable segment after another": {`"pattern": "users/[^/]+"}],
        "responses"`, `"pattern": "[^/]+/[^/]+"}],
        "responses"`, "follows no collection"},
	} {
		t.Run(name, func(t *testing.T) {
			in := strings.Replace(swagger, tt.old, tt.new, 1)
			if in == swagger {
				t.Fatalf("%q is not in the test document", tt.old)
			}
			_, err := Build(api, []byte(in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSingular(t *testing.T) {
	for in, want := range map[string]string{"users": "user", "operations": "operation", "deliveries": "delivery", "webhooks": "webhook", "tenants": "tenant"} {
		if got := singular(in); got != want {
			t.Errorf("singular(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAPIsCoverEveryBinding: every RPC of every version with an HTTP
// binding has a row in the operations table, so Build describes it.
func TestAPIsCoverEveryBinding(t *testing.T) {
	for v, api := range APIs {
		services := api.File.Services()
		for i := range services.Len() {
			methods := services.Get(i).Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				if m.IsStreamingServer() || m.IsStreamingClient() {
					continue
				}
				if _, ok := operations[string(m.Name())]; !ok {
					t.Errorf("%s: %s is not in the operations table", v, m.FullName())
				}
			}
		}
		for rpc := range api.Examples {
			if _, ok := operations[rpc]; !ok {
				t.Errorf("%s: an example for %s, which is no operation", v, rpc)
			}
		}
	}
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
