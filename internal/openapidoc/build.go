// Package openapidoc builds the OpenAPI 3.1 description of each major
// version of the HTTP/JSON API. It starts from what protoc-gen-openapiv2
// derives from the protos (schemas, parameters, comments), converts it with
// kin-openapi's openapi2conv, and completes it with what the protos do not
// say and clients need: paths that keep the segments of resource names,
// the success status of each call, the errors and their google.rpc.Status
// body, the bearer token and each call's scope, the headers, which fields
// may be null, and examples. `make generate` runs it (cmd/openapidoc); the
// gateway serves the result at /openapi/{version}.json.
package openapidoc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// VersionPlaceholder is info.version in the committed documents. A server
// replaces it with its build's version as it serves them (see
// gateway.Options.Version).
const VersionPlaceholder = "0.0.0-dev"

// API is one major version of the HTTP/JSON API.
type API struct {
	// File is the proto file that declares the version's service.
	File protoreflect.FileDescriptor
	// Examples are request and response bodies of its main operations, by
	// RPC name; each is checked against its schema by the lint.
	Examples map[string]Example
}

// Example is a request and a success response of one operation, as JSON.
type Example struct {
	Request, Response string
}

// version returns the major version of a, "v2", the last element of its
// proto package (users.v2); it is also the first segment of its paths.
func (a API) version() string {
	pkg := string(a.File.Package())
	return pkg[strings.LastIndex(pkg, ".")+1:]
}

// Build returns the OpenAPI 3.1 document of a from the OpenAPI 2 document
// that protoc-gen-openapiv2 wrote for a.File, as indented JSON.
func Build(a API, swagger []byte) ([]byte, error) {
	var v2 openapi2.T
	if err := json.Unmarshal(swagger, &v2); err != nil {
		return nil, fmt.Errorf("reading the OpenAPI 2 document: %w", err)
	}
	doc, err := openapi2conv.ToV3(&v2)
	if err != nil {
		return nil, fmt.Errorf("converting to OpenAPI 3: %w", err)
	}
	doc.OpenAPI = "3.1.0"
	describe(doc, a)
	addComponents(doc)
	if err := completePaths(doc, a); err != nil {
		return nil, err
	}
	if err := markNullable(doc, a.File); err != nil {
		return nil, err
	}
	if err := openapi3.NewLoader().ResolveRefsIn(doc, nil); err != nil {
		return nil, fmt.Errorf("the OpenAPI 3.1 document: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("the OpenAPI 3.1 document is not valid: %w", err)
	}
	compact, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, compact, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// describe sets the document's info, servers and tags.
func describe(doc *openapi3.T, a API) {
	v := a.version()
	doc.Info = &openapi3.Info{
		Title:   "usersd users API " + v,
		Version: VersionPlaceholder,
		Description: strings.ReplaceAll(intro, "{v}", v) + map[string]string{
			"v1": v1Note, "v2": v2Note,
		}[v],
		Contact: &openapi3.Contact{Name: "usersd", URL: "https://github.com/usersd/usersd"},
		License: &openapi3.License{Name: license, URL: "https://github.com/usersd/usersd"},
	}
	doc.Servers = openapi3.Servers{
		{URL: "http://localhost:8080", Description: "usersd started with `go run ./cmd/usersd`"},
		{
			URL:         "{scheme}://{host}",
			Description: "A deployment: the address of its HTTP/JSON API (deploy/k8s names the Service usersd-http, port 8080).",
			Variables: map[string]*openapi3.ServerVariable{
				"scheme": {Enum: []string{"https", "http"}, Default: "https"},
				"host":   {Default: "usersd-http:8080", Description: "Host and port."},
			},
		},
	}
	for _, t := range doc.Tags {
		if t.Description == "" {
			t.Description = "The users service."
		}
	}
}

// license is info.license.name: the repository has not chosen a licence
// yet; the URL points at it.
const license = "Not licensed yet: see the repository"

const intro = `The HTTP/JSON API of usersd, a users service. Every call is also a gRPC
method of the same name (package users.{v}), which takes the same fields.

**Authentication.** A server started with --auth=jwt takes a bearer JWT
on every call and lists, on each operation, the scope it needs
(users.read, users.write or users.admin; a user may read and change its
own profile without one). A server started with --auth=none, for local
development, ignores the header.

**Errors** have a google.rpc.Status body. A field that is wrong is a 400
whose details hold a google.rpc.BadRequest naming the field. 429 and 503
carry Retry-After; the call changed nothing and may be retried. 500 means
a bug.

**Writes.** Creates and imports take an Idempotency-Key header (or
requestId): a replay returns the first answer. Updates and deletes take
the user's etag (If-Match or etag): a stale one is a 409.

**Lists** are keyset-paged: pass nextPageToken back as pageToken with the
same filter and order; an empty nextPageToken is the last page.
`

const v1Note = `
v1 is frozen: it changes no more and new capabilities land in v2 only.
`

const v2Note = `
Resources are named by their AIP-122 resource names ("users/{user}",
"operations/{operation}", "webhooks/{webhook}"); a path parameter holds
the last segment, the id.
`
