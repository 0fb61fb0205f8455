package openapidoc

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/usersd/usersd/internal/auth"
)

// operation is what the protos do not say about one RPC's HTTP binding.
type operation struct {
	// success is the status of a successful call; 0 means 200.
	success int
	// errors are the statuses it may answer besides those of every call
	// (400, 401, 403, 429, 503) and 413 for a call with a body.
	errors []int
	// idempotent: it takes an Idempotency-Key header.
	idempotent bool
	// conditional: it takes an If-Match header.
	conditional bool
}

// operations is the table of every RPC with an HTTP binding, in every
// version; Build fails on an RPC it lacks. The gateway sets the success
// statuses (forwardResponse), grpcserver the errors (codeOf).
var operations = map[string]operation{
	"CreateUser":            {success: http.StatusCreated, errors: []int{404, 409}, idempotent: true},
	"GetUser":               {errors: []int{404}},
	"ListUsers":             {errors: []int{404}},
	"UpdateUser":            {errors: []int{404, 409}, conditional: true},
	"DeleteUser":            {errors: []int{404, 409}, conditional: true},
	"UndeleteUser":          {errors: []int{404, 409}, conditional: true},
	"BatchGetUsers":         {errors: []int{404}},
	"LookupUser":            {errors: []int{404}},
	"ImportUsers":           {success: http.StatusAccepted, errors: []int{404, 409}, idempotent: true},
	"GetOperation":          {errors: []int{404}},
	"ListUserEvents":        {errors: []int{404}},
	"CreateWebhook":         {success: http.StatusCreated, errors: []int{404}},
	"GetWebhook":            {errors: []int{404}},
	"ListWebhooks":          {errors: []int{404}},
	"UpdateWebhook":         {errors: []int{404}},
	"DeleteWebhook":         {errors: []int{404}},
	"ListWebhookDeliveries": {errors: []int{404}},
	"CreateTenant":          {success: http.StatusCreated, errors: []int{409}},
	"GetTenant":             {errors: []int{404}},
	"ListTenants":           {},
	"UpdateTenant":          {errors: []int{404, 409}, conditional: true},
	"DeleteTenant":          {errors: []int{404, 409}, conditional: true},
	"UndeleteTenant":        {errors: []int{404, 409}, conditional: true},
	"CreateGroup":           {success: http.StatusCreated, errors: []int{404, 409}},
	"GetGroup":              {errors: []int{404}},
	"ListGroups":            {errors: []int{404}},
	"UpdateGroup":           {errors: []int{404, 409}, conditional: true},
	"DeleteGroup":           {errors: []int{404, 409}, conditional: true},
	"AddGroupMembers":       {errors: []int{404}},
	"RemoveGroupMembers":    {errors: []int{404}},
	"ListGroupMembers":      {errors: []int{404}},
	"ListUserGroups":        {errors: []int{404}},
}

// etagged are the schemas of the answers that carry an ETag header
// (the gateway's forwardResponse).
var etagged = map[string]bool{"#/components/schemas/User": true, "#/components/schemas/Tenant": true, "#/components/schemas/Group": true}

// everyCall are the error statuses any call may answer.
var everyCall = []int{400, 401, 403, 429, 503}

// errorResponses are the error statuses, by the name of their response in
// components.responses.
var errorResponses = map[int]struct {
	name, description, example string
	headers                    []string
}{
	400: {"BadRequest", "INVALID_ARGUMENT: a field is missing or wrong; the details hold a google.rpc.BadRequest that names each field. Also FAILED_PRECONDITION: the resource is not in a state that allows the call (e.g. undeleting a user that is not deleted).",
		`{"code":3,"message":"invalid argument: user.email: must be a valid email address","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"user.email","description":"must be a valid email address"}]}]}`, nil},
	401: {"Unauthenticated", "UNAUTHENTICATED: the bearer token is missing, malformed, expired or not signed by a trusted key (only with --auth=jwt).",
		`{"code":16,"message":"missing bearer token","details":[]}`, []string{"WWW-Authenticate"}},
	403: {"PermissionDenied", "PERMISSION_DENIED: the token lacks the scope the call needs.",
		`{"code":7,"message":"the token lacks scope users.write","details":[]}`, nil},
	404: {"NotFound", "NOT_FOUND: no such resource (a soft-deleted user is found, in state DELETED), or no such tenant, or one the caller's token is not bound to.",
		`{"code":5,"message":"not found","details":[]}`, nil},
	409: {"Conflict", "ALREADY_EXISTS: the email address (or id) is taken. ABORTED: the etag is stale, or the call lost a race with a concurrent one; read again and retry.",
		`{"code":6,"message":"email address already in use","details":[]}`, nil},
	413: {"PayloadTooLarge", "The request body is larger than the server's --max-body-bytes.",
		`{"code":3,"message":"request body larger than 1048576 bytes","details":[]}`, nil},
	429: {"TooManyRequests", "RESOURCE_EXHAUSTED: the caller's or the tenant's rate limit is spent; retry after Retry-After seconds. Or the tenant is at its limit of users (settings.max_users): the details hold a google.rpc.QuotaFailure, and there is no Retry-After. Nothing was changed.",
		`{"code":8,"message":"rate limit exceeded; retry later","details":[]}`, []string{"Retry-After"}},
	503: {"Unavailable", "UNAVAILABLE: the database is away, failing over or saturated, or the server is shutting down or overloaded; retry after Retry-After seconds. Nothing was changed.",
		`{"code":14,"message":"the service is unavailable for a moment; retry the request","details":[]}`, []string{"Retry-After"}},
}

// addComponents adds the security scheme, error responses, headers and
// header parameters the operations refer to.
func addComponents(doc *openapi3.T) {
	if doc.Components == nil {
		doc.Components = &openapi3.Components{}
	}
	c := doc.Components
	c.SecuritySchemes = openapi3.SecuritySchemes{
		"bearerAuth": {Value: &openapi3.SecurityScheme{
			Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "A JWT signed by a key of the server's --auth-jwks, with the server's issuer and audience; " +
				"its scope claim lists the scopes (users.read, users.write, users.admin). Needed when the server runs with --auth=jwt.",
		}},
	}
	status := &openapi3.SchemaRef{Ref: "#/components/schemas/Status"}
	c.Headers = openapi3.Headers{
		"Retry-After": header("Seconds to wait before retrying.", "integer"),
		"WWW-Authenticate": header("The Bearer challenge (RFC 6750), with error and error_description "+
			"when a token was sent.", "string"),
		"ETag":     header("The resource's etag, quoted; send it back in If-Match to change only that version.", "string"),
		"Location": header("The path of the created resource, or of the operation to poll.", "string"),
	}
	c.Responses = openapi3.ResponseBodies{}
	for _, e := range errorResponses {
		var example any
		if err := json.Unmarshal([]byte(e.example), &example); err != nil {
			panic(err) // the examples are constants
		}
		r := openapi3.NewResponse().WithDescription(e.description).
			WithContent(openapi3.NewContentWithJSONSchemaRef(status))
		r.Content.Get("application/json").Example = example
		if len(e.headers) > 0 {
			r.Headers = openapi3.Headers{}
			for _, h := range e.headers {
				r.Headers[h] = &openapi3.HeaderRef{Ref: "#/components/headers/" + h}
			}
		}
		c.Responses[e.name] = &openapi3.ResponseRef{Value: r}
	}
	c.Parameters = openapi3.ParametersMap{
		"Idempotency-Key": {Value: &openapi3.Parameter{
			Name: "Idempotency-Key", In: openapi3.ParameterInHeader,
			Description: "The request id (AIP-155), when the body or query has none: replaying it returns the first answer.",
			Schema:      openapi3.NewStringSchema().WithMinLength(1).WithMaxLength(128).NewRef(),
			Example:     "0b9c3c4e-5c1d-4a8e-9a43-d3a1f1b0f6a2",
		}},
		"If-Match": {Value: &openapi3.Parameter{
			Name: "If-Match", In: openapi3.ParameterInHeader,
			Description: "The etag the resource must have (quoted, as ETag gives it), when the request has none; a stale one is a 409.",
			Schema:      openapi3.NewStringSchema().NewRef(),
			Example:     `"07dff3d6975efa09"`,
		}},
	}
}

func header(description, typ string) *openapi3.HeaderRef {
	return &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
		Description: description,
		Schema:      &openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{typ}}},
	}}}
}

// completePaths moves each operation to a path that keeps its resource
// names' segments, and completes it: operation id, security, statuses,
// headers and examples.
func completePaths(doc *openapi3.T, a API) error {
	paths := openapi3.NewPaths()
	for _, path := range doc.Paths.InMatchingOrder() {
		for method, op := range doc.Paths.Value(path).Operations() {
			newPath, err := resourcePath(path, op)
			if err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			if err := complete(op, a); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			item := paths.Value(newPath)
			if item == nil {
				item = &openapi3.PathItem{}
				paths.Set(newPath, item)
			}
			if item.GetOperation(method) != nil {
				return fmt.Errorf("%s %s: two operations", method, newPath)
			}
			item.SetOperation(method, op)
		}
	}
	doc.Paths = paths
	return nil
}

// resourceWildcard is one variable segment in the pattern of a path
// parameter, "users/[^/]+".
const resourceWildcard = "[^/]+"

// resourcePath returns path with each variable that holds a resource name,
// "/v2/{name}" with the pattern "users/[^/]+", written out as the segments
// of that name, "/v2/users/{user}", and changes op's parameters to match:
// one per variable segment, named after the singular of the collection
// before it. The gateway builds the name back from the segments, so a
// client fills in ids and never escapes a slash.
func resourcePath(path string, op *openapi3.Operation) (string, error) {
	var params openapi3.Parameters
	var rewriteErr error
	newPath := pathVariable.ReplaceAllStringFunc(path, func(v string) string {
		name := strings.Trim(v, "{}")
		var p *openapi3.Parameter
		for _, ref := range op.Parameters {
			if ref.Value.In == openapi3.ParameterInPath && ref.Value.Name == name {
				p = ref.Value
			}
		}
		if p == nil {
			rewriteErr = fmt.Errorf("no parameter for path variable %s", v)
			return v
		}
		pattern := ""
		if p.Schema != nil && p.Schema.Value != nil {
			pattern = p.Schema.Value.Pattern
		}
		if pattern == "" {
			// v1's PATCH /v1/users/{user.id} is the path of GET
			// /v1/users/{id}: the field's own name is enough.
			p.Name = p.Name[strings.LastIndex(p.Name, ".")+1:]
			params = append(params, &openapi3.ParameterRef{Value: p})
			return "{" + p.Name + "}"
		}
		segments := strings.Split(strings.ReplaceAll(pattern, resourceWildcard, "*"), "/")
		for i, s := range segments {
			if s != "*" {
				if strings.ContainsAny(s, "*[]().+?^$|\\") {
					rewriteErr = fmt.Errorf("pattern %q of %s: segment %q is neither a collection nor one variable segment", pattern, name, s)
					return v
				}
				continue
			}
			if i == 0 || segments[i-1] == "*" {
				rewriteErr = fmt.Errorf("pattern %q of %s: a variable segment follows no collection", pattern, name)
				return v
			}
			id := singular(segments[i-1])
			segments[i] = "{" + id + "}"
			params = append(params, &openapi3.ParameterRef{Value: &openapi3.Parameter{
				Name: id, In: openapi3.ParameterInPath, Required: true,
				Description: fmt.Sprintf("The %s's id: the last segment of its resource name, %s.", id, strings.Join(segments[:i+1], "/")),
				Schema:      openapi3.NewStringSchema().WithMinLength(1).NewRef(),
			}})
		}
		return strings.Join(segments, "/")
	})
	if rewriteErr != nil {
		return "", rewriteErr
	}
	for _, ref := range op.Parameters {
		if ref.Value.In != openapi3.ParameterInPath {
			params = append(params, ref)
		}
	}
	seen := map[string]bool{}
	for _, p := range params {
		key := p.Value.In + " " + p.Value.Name
		if seen[key] {
			return "", fmt.Errorf("two %s parameters named %s", p.Value.In, p.Value.Name)
		}
		seen[key] = true
	}
	op.Parameters = params
	return newPath, nil
}

var pathVariable = regexp.MustCompile(`\{[^}]+\}`)

// singular returns the singular of an AIP-122 collection id: "users" is
// "user", "deliveries" "delivery".
func singular(collection string) string {
	switch {
	case strings.HasSuffix(collection, "ies"):
		return strings.TrimSuffix(collection, "ies") + "y"
	case strings.HasSuffix(collection, "s"):
		return strings.TrimSuffix(collection, "s")
	}
	return collection
}

// complete sets what op needs besides its path, from the operations table,
// the auth rules and a's examples.
func complete(op *openapi3.Operation, a API) error {
	service, rpc, ok := strings.Cut(op.OperationID, "_")
	if !ok {
		return fmt.Errorf("operation id %q is not Service_Method", op.OperationID)
	}
	// protoc-gen-openapiv2 numbers the additional bindings of an RPC
	// (GetUser2): in v2 they are the paths without a tenant, which act on
	// the default tenant.
	opID := rpc
	if base := strings.TrimRight(rpc, "0123456789"); base != rpc {
		rpc, opID = base, base+"InDefaultTenant"
		// The tenant is the path's: these paths have none.
		op.Parameters = slices.DeleteFunc(op.Parameters, func(p *openapi3.ParameterRef) bool {
			return p.Value != nil && p.Value.In == openapi3.ParameterInQuery && p.Value.Name == "parent"
		})
	}
	o, ok := operations[rpc]
	if !ok {
		return fmt.Errorf("RPC %s is not in openapidoc's operations table", rpc)
	}
	op.OperationID = opID
	method := "/" + string(a.File.Package()) + "." + service + "/" + rpc
	scope, ok := auth.Scope(method)
	if !ok {
		return fmt.Errorf("%s has no rule in internal/auth", method)
	}
	op.Security = &openapi3.SecurityRequirements{{"bearerAuth": {scope}}}
	if o.idempotent {
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Ref: "#/components/parameters/Idempotency-Key"})
	}
	if o.conditional {
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Ref: "#/components/parameters/If-Match"})
	}

	ok200 := op.Responses.Value("200")
	if ok200 == nil || ok200.Value == nil {
		return fmt.Errorf("%s has no 200 response", rpc)
	}
	resp := ok200.Value
	success := o.success
	if success == 0 {
		success = http.StatusOK
	}
	resp.Description = ptr(map[int]string{
		http.StatusOK:       "OK.",
		http.StatusCreated:  "Created: the Location header gives its path.",
		http.StatusAccepted: "Accepted: the import has started; poll the operation the Location header gives until done.",
	}[success])
	if success != http.StatusOK {
		resp.Headers = openapi3.Headers{"Location": {Ref: "#/components/headers/Location"}}
	}
	if mt := resp.Content.Get("application/json"); mt != nil && mt.Schema != nil && etagged[mt.Schema.Ref] {
		if resp.Headers == nil {
			resp.Headers = openapi3.Headers{}
		}
		resp.Headers["ETag"] = &openapi3.HeaderRef{Ref: "#/components/headers/ETag"}
	}
	statuses := map[string]*openapi3.ResponseRef{strconv.Itoa(success): ok200}
	errs := slices.Concat(everyCall, o.errors)
	if op.RequestBody != nil {
		errs = append(errs, http.StatusRequestEntityTooLarge)
	}
	for _, code := range errs {
		statuses[strconv.Itoa(code)] = &openapi3.ResponseRef{Ref: "#/components/responses/" + errorResponses[code].name}
	}
	if d := op.Responses.Default(); d != nil && d.Value != nil {
		d.Value.Description = ptr("Any other error, with a google.rpc.Status body: 499 when the client went away, 504 when the call's deadline passed, 500 for a bug.")
		statuses["default"] = d
	}
	op.Responses = openapi3.NewResponses()
	for _, code := range slices.Sorted(maps.Keys(statuses)) {
		op.Responses.Set(code, statuses[code])
	}

	if ex, ok := a.Examples[rpc]; ok {
		if err := addExamples(op, resp, ex); err != nil {
			return fmt.Errorf("examples of %s: %w", rpc, err)
		}
	}
	return nil
}

func addExamples(op *openapi3.Operation, resp *openapi3.Response, ex Example) error {
	set := func(content openapi3.Content, raw string) error {
		if raw == "" {
			return nil
		}
		mt := content.Get("application/json")
		if mt == nil {
			return fmt.Errorf("no application/json content for %s", raw)
		}
		var v any
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return err
		}
		mt.Example = v
		return nil
	}
	if ex.Request != "" {
		if op.RequestBody == nil || op.RequestBody.Value == nil {
			return fmt.Errorf("a request example but no request body")
		}
		if err := set(op.RequestBody.Value.Content, ex.Request); err != nil {
			return err
		}
	}
	return set(resp.Content, ex.Response)
}

func ptr[T any](v T) *T { return &v }
