package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// contract checks answers against a version's OpenAPI document: the
// status is one the operation lists (not just "default"), and the body
// and headers match its schemas. TestGoldenHTTP checks every exchange of
// its scenario with it.
type contract struct {
	doc    *openapi3.T
	routes []contractRoute
}

type contractRoute struct {
	match *regexp.Regexp
	names []string
	route routers.Route
}

func newContract(t *testing.T, version string) *contract {
	t.Helper()
	raw := map[string]string{"v1": usersv1.OpenAPI, "v2": usersv2.OpenAPI}[version]
	doc, err := openapi3.NewLoader().LoadFromData([]byte(raw))
	if err != nil {
		t.Fatalf("OpenAPI document of %s: %v", version, err)
	}
	c := &contract{doc: doc}
	// kin-openapi's routers take a segment such as {user}:undelete for
	// no match, so templates are matched here: a variable is one segment.
	variable := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range doc.Paths.Map() {
		var names []string
		expr, last := "^", 0
		for _, loc := range variable.FindAllStringSubmatchIndex(path, -1) {
			expr += regexp.QuoteMeta(path[last:loc[0]]) + "([^/]+)"
			names = append(names, path[loc[2]:loc[3]])
			last = loc[1]
		}
		expr += regexp.QuoteMeta(path[last:]) + "$"
		for method, op := range item.Operations() {
			c.routes = append(c.routes, contractRoute{
				match: regexp.MustCompile(expr), names: names,
				route: routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op},
			})
		}
	}
	return c
}

// check checks one exchange; a request no operation of the document takes
// (a routing error) has nothing to check.
func (c *contract) check(req *http.Request, status int, header http.Header, body []byte) error {
	for _, r := range c.routes {
		m := r.match.FindStringSubmatch(req.URL.Path)
		if m == nil || r.route.Method != req.Method {
			continue
		}
		if r.route.Operation.Responses.Value(strconv.Itoa(status)) == nil {
			return fmt.Errorf("%s %s answered %d, which the OpenAPI document does not list for %s",
				req.Method, req.URL.Path, status, r.route.Operation.OperationID)
		}
		params := map[string]string{}
		for i, name := range r.names {
			params[name] = m[i+1]
		}
		route := r.route
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: &route},
			Status:                 status,
			Header:                 header,
			Body:                   io.NopCloser(bytes.NewReader(body)),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
			return fmt.Errorf("%s %s answered %d, not as the OpenAPI document says: %w\n%s", req.Method, req.URL.Path, status, err, body)
		}
		return nil
	}
	return nil
}

// TestContractCatches: the check of TestGoldenHTTP fails answers that
// break the document.
func TestContractCatches(t *testing.T) {
	c := newContract(t, "v2")
	get := httptest.NewRequest(http.MethodGet, "/v2/users/0190a5b4-0000-7000-8000-000000000000", nil)
	undelete := httptest.NewRequest(http.MethodPost, "/v2/users/0190a5b4-0000-7000-8000-000000000000:undelete", nil)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	user := `{"name":"users/0190a5b4-0000-7000-8000-000000000000","email":"a@example.com","displayName":"A",` +
		`"state":"STATE_ACTIVE","labels":{},"createTime":"2026-12-07T02:08:44Z","updateTime":"2026-12-07T02:08:44Z",` +
		`"deleteTime":null,"etag":"07dff3d6975efa09"}`
	for _, tt := range []struct {
		name   string
		req    *http.Request
		status int
		body   string
		ok     bool
	}{
		{"a user", get, 200, user, true},
		{"undeleted", undelete, 200, user, true},
		{"an error", get, 404, `{"code":5,"message":"not found","details":[]}`, true},
		{"a status not listed", get, 201, user, false},
		{"a status not listed on a verb route", undelete, 202, user, false},
		{"a timestamp that is a number", get, 200, strings.Replace(user, `"createTime":"2026-12-07T02:08:44Z"`, `"createTime":5`, 1), false},
		{"null where null is not allowed", get, 200, strings.Replace(user, `"email":"a@example.com"`, `"email":null`, 1), false},
		{"an unknown enum value", get, 200, strings.Replace(user, `STATE_ACTIVE`, `STATE_GONE`, 1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.check(tt.req, tt.status, jsonHeader, []byte(tt.body))
			if (err == nil) != tt.ok {
				t.Errorf("check = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
