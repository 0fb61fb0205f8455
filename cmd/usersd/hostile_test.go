package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/gateway"
)

// TestHTTPControlCharacters: a control character (C0 with NUL, TAB and
// line feed, DEL, C1) or a byte that is not UTF-8 in any text field is a
// 400 that names the field, on both stores and both API versions, and
// never a 500; an import fails only the row that holds one.
func TestHTTPControlCharacters(t *testing.T) {
	// JSON escapes of the hostile values; a query string takes the
	// characters themselves.
	values := []struct{ name, json, raw string }{
		{"NUL", `\u0000nul`, "\x00nul"},
		{"TAB", `tab\there`, "tab\there"},
		{"LF", `line\nfeed`, "line\nfeed"},
		{"ESC", `\u001b[2J`, "\x1b[2J"},
		{"DEL", `del\u007f`, "del\x7f"},
		{"C1 NEL", `next\u0085line`, "next\u0085line"},
		{"C1 APC", `apc\u009f`, "apc\u009f"},
	}
	runOnStores(t, func(t *testing.T, s *testServer) {
		v1 := createUser(t, s, "ada@example.com", "Ada").str("id")
		v2 := s.do(t, "POST", "/v2/users", `{"email":"grace@example.com","displayName":"Grace"}`)
		v2.wantStatus(t, http.StatusCreated)
		v2name := v2.str("name")

		for _, v := range values {
			t.Run(v.name, func(t *testing.T) {
				tests := []struct {
					name, method, path, body, field string
				}{
					{"v1 create display name", "POST", "/v1/users", `{"email":"x@example.com","displayName":"` + v.json + `"}`, "user.display_name"},
					{"v1 create label", "POST", "/v1/users", `{"email":"x@example.com","displayName":"X","labels":{"team":"` + v.json + `"}}`, "user.labels"},
					{"v1 create email", "POST", "/v1/users", `{"email":"x` + v.json + `@example.com","displayName":"X"}`, "user.email"},
					{"v1 update display name", "PATCH", "/v1/users/" + v1, `{"displayName":"` + v.json + `"}`, "user.display_name"},
					{"v1 update label", "PATCH", "/v1/users/" + v1 + "?updateMask=labels", `{"labels":{"team":"` + v.json + `"}}`, "user.labels"},
					{"v1 filter", "GET", "/v1/users?filter=" + url.QueryEscape(`display_name = "`+v.raw+`"`), "", "filter"},
					{"v1 webhook url", "POST", "/v1/webhooks", `{"url":"https://example.com/` + v.json + `"}`, "webhook.url"},
					{"v2 create display name", "POST", "/v2/users", `{"email":"x@example.com","displayName":"` + v.json + `"}`, "user.display_name"},
					{"v2 create label", "POST", "/v2/users", `{"email":"x@example.com","displayName":"X","labels":{"team":"` + v.json + `"}}`, "user.labels"},
					{"v2 update display name", "PATCH", "/v2/" + v2name + "?updateMask=displayName", `{"displayName":"` + v.json + `"}`, "user.display_name"},
					{"v2 filter", "GET", "/v2/users?filter=" + url.QueryEscape(`display_name = "`+v.raw+`"`), "", "filter"},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						s.do(t, tt.method, tt.path, tt.body).wantStatus(t, http.StatusBadRequest, tt.field)
					})
				}
			})
		}
		t.Run("filter not UTF-8", func(t *testing.T) {
			for _, version := range []string{"v1", "v2"} {
				s.do(t, "GET", "/"+version+"/users?filter="+url.QueryEscape("display_name = \"\xff\""), "").wantStatus(t, http.StatusBadRequest, "filter")
			}
		})

		for _, version := range []string{"v1", "v2"} {
			t.Run(version+" import", func(t *testing.T) {
				rows := []string{fmt.Sprintf(`{"email":"valid-%s@example.com","displayName":"Valid"}`, version)}
				for i, v := range values {
					rows = append(rows,
						fmt.Sprintf(`{"email":"n%d-%s@example.com","displayName":"%s"}`, i, version, v.json),
						fmt.Sprintf(`{"email":"l%d-%s@example.com","displayName":"L","labels":{"team":"%s"}}`, i, version, v.json))
				}
				r := s.do(t, "POST", "/"+version+"/users:import", fmt.Sprintf(`{"requestId":"hostile-%s","users":[%s]}`, version, strings.Join(rows, ",")))
				r.wantStatus(t, http.StatusAccepted)
				op := waitOperation(t, s, "/"+version+"/"+r.str("name"))
				meta, _ := op.Body["metadata"].(map[string]any)
				if meta["imported"] != 1.0 || meta["failed"] != float64(len(rows)-1) {
					t.Fatalf("import finished with %v, want 1 imported and %d failed", op.Raw, len(rows)-1)
				}
				res, _ := op.Body["response"].(map[string]any)
				failures, _ := res["failures"].([]any)
				for _, f := range failures {
					f := f.(map[string]any)
					want := "display_name: "
					if int(f["index"].(float64))%2 == 0 {
						want = "labels: "
					}
					if reason := fmt.Sprint(f["reason"]); !strings.HasPrefix(reason, want) || strings.ContainsRune(reason, 0) {
						t.Errorf("row %v failed with %q, want a reason that starts with %q", f["index"], reason, want)
					}
				}
			})
		}

		list := s.do(t, "GET", "/v2/users?orderBy=email", "")
		list.wantStatus(t, http.StatusOK)
		var emails []string
		for _, u := range list.Body["users"].([]any) {
			emails = append(emails, fmt.Sprint(u.(map[string]any)["email"]))
		}
		if got, want := strings.Join(emails, " "), "ada@example.com grace@example.com valid-v1@example.com valid-v2@example.com"; got != want {
			t.Errorf("users stored: %s, want %s", got, want)
		}
		if logs := s.logs.String(); strings.Contains(logs, `"status":500`) {
			t.Errorf("a request answered 500:\n%s", logs)
		}
	})
}

// waitOperation polls the operation at path until it is done.
func waitOperation(t *testing.T, s *testServer, path string) response {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		op := s.do(t, "GET", path, "")
		op.wantStatus(t, http.StatusOK)
		if op.Body["done"] == true {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %s not done after 30s: %s", path, op.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHTTPRoutingErrors walks every route of both versions, from the
// protos' annotations (gateway.Routes), on serve and on the standalone
// gateway: no route takes PUT or OPTIONS, so both are a 405 on every
// route's path, with an Allow header that lists at least the route's
// method and a google.rpc.Status body; each route's own method is routed;
// unknown paths are 404 with the same body; nothing is ever a 501.
func TestHTTPRoutingErrors(t *testing.T) {
	replica := startServer(t)
	gw, _ := startGateway(t, nil, "static:///"+replica.GRPC)
	const id = "0190a5b4-0000-7000-8000-000000000001"
	for name, s := range map[string]*testServer{"serve": replica, "gateway": gw} {
		t.Run(name, func(t *testing.T) {
			routes := append(gateway.Routes(),
				gateway.Route{Method: "GET", Template: "/openapi/v1.json"},
				gateway.Route{Method: "HEAD", Template: "/openapi/v2.json"})
			wantStatusBody := func(t *testing.T, r response, status int, code float64) {
				t.Helper()
				r.wantStatus(t, status)
				if _, ok := r.Body["details"].([]any); r.Body["code"] != code || r.str("message") == "" || !ok {
					t.Errorf("body = %s, want a google.rpc.Status with code %v", r.Raw, code)
				}
			}
			for _, route := range routes {
				path := route.Example(id)
				t.Run(route.Method+" "+route.Template, func(t *testing.T) {
					if r := s.do(t, route.Method, path, "{}"); r.Status == http.StatusMethodNotAllowed || r.Status == http.StatusNotImplemented {
						t.Errorf("%s %s = %d, want the route's answer; body %s", route.Method, path, r.Status, r.Raw)
					}
					for _, method := range []string{"PUT", "OPTIONS"} {
						r := s.do(t, method, path, "{}")
						wantStatusBody(t, r, http.StatusMethodNotAllowed, 12)
						allow := strings.Split(r.Header.Get("Allow"), ", ")
						if !slices.Contains(allow, route.Method) || slices.Contains(allow, method) {
							t.Errorf("%s %s: Allow = %q, want it to list %s and not %s", method, path, r.Header.Get("Allow"), route.Method, method)
						}
					}
				})
			}
			for _, path := range []string{"/nope", "/v1/groups", "/v2/teams", "/v3/users", "/v1/users/" + id + "/x", "/openapi/v3.json"} {
				for _, method := range []string{"GET", "PUT", "POST"} {
					wantStatusBody(t, s.do(t, method, path, ""), http.StatusNotFound, 5)
				}
			}
		})
	}
}
