package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestGoldenHTTP")

// goldenStep is one HTTP exchange of the golden scenario. In path, body and
// header values, {{x}} is the resource path "users/<id>" of the user (or
// "operations/<id>" of the operation) saved as x, {{x.id}} its id,
// {{x.etag}} its etag, {{x.batch}} the batchGet query parameter that names
// it (ids=… in v1, names=… in v2), {{x.token}} the nextPageToken of the
// response saved as x.
type goldenStep struct {
	name, method, path, body string
	header                   map[string]string
	save                     string
	// await, on a step that starts an import, records the progress fields
	// of its operation as placeholders (how far the jobs got by then
	// varies from run to run) and waits until the import is done before
	// the next step.
	await bool
}

// goldenSteps is the scenario: every route of a version, its success and
// each error shape. The same script runs against v1 and v2.
func goldenSteps() []goldenStep {
	return []goldenStep{
		{name: "create-ok", method: "POST", path: "users", body: `{"email":"ada@example.com","displayName":"Ada Lovelace","labels":{"team":"math"}}`, header: map[string]string{"Idempotency-Key": "golden-1"}, save: "ada"},
		{name: "create-replay", method: "POST", path: "users", body: `{"email":"ada@example.com","displayName":"Ada Lovelace","labels":{"team":"math"}}`, header: map[string]string{"Idempotency-Key": "golden-1"}},
		{name: "create-request-id-reused", method: "POST", path: "users", body: `{"email":"ada@example.com","displayName":"Someone Else"}`, header: map[string]string{"Idempotency-Key": "golden-1"}},
		{name: "create-invalid-fields", method: "POST", path: "users", body: `{"email":"not-an-address","displayName":"","labels":{"Bad Key":"v"}}`},
		{name: "create-duplicate-email", method: "POST", path: "users", body: `{"email":"ADA@example.com","displayName":"Ada Again"}`},
		{name: "create-malformed-json", method: "POST", path: "users", body: `{"email":`},
		{name: "create-unknown-field", method: "POST", path: "users", body: `{"email":"x@example.com","dispalyName":"typo"}`},
		{name: "create-second", method: "POST", path: "users", body: `{"email":"grace@example.com","displayName":"Grace Hopper","state":"STATE_SUSPENDED"}`, save: "grace"},
		{name: "get-ok", method: "GET", path: "{{ada}}"},
		{name: "get-not-found", method: "GET", path: "users/0190a5b4-0000-7000-8000-000000000000"},
		{name: "get-invalid", method: "GET", path: "users/not-a-uuid"},
		{name: "list-first-page", method: "GET", path: "users?pageSize=1&orderBy=email", save: "page1"},
		{name: "list-next-page", method: "GET", path: "users?pageSize=1&orderBy=email&pageToken={{page1.token}}"},
		{name: "list-filter", method: "GET", path: "users?filter=" + queryEscape(`state = "SUSPENDED"`)},
		{name: "list-bad-filter", method: "GET", path: "users?filter=" + queryEscape(`name = "x"`)},
		{name: "list-negative-page-size", method: "GET", path: "users?pageSize=-1"},
		{name: "list-foreign-token", method: "GET", path: "users?pageSize=1&orderBy=create_time&pageToken={{page1.token}}"},
		{name: "update-ok", method: "PATCH", path: "{{ada}}", body: `{"displayName":"Ada, Countess of Lovelace"}`, header: map[string]string{"If-Match": `"{{ada.etag}}"`}},
		{name: "update-stale-etag", method: "PATCH", path: "{{ada}}", body: `{"displayName":"Stale"}`, header: map[string]string{"If-Match": `"{{ada.etag}}"`}},
		{name: "update-bad-mask", method: "PATCH", path: "{{ada}}?updateMask=nickname", body: `{"displayName":"X"}`},
		{name: "update-email-taken", method: "PATCH", path: "{{grace}}", body: `{"email":"ada@example.com"}`},
		{name: "update-not-found", method: "PATCH", path: "users/0190a5b4-0000-7000-8000-000000000000", body: `{"displayName":"Nobody"}`},
		{name: "batch-get-ok", method: "GET", path: "users:batchGet?{{grace.batch}}&{{ada.batch}}"},
		{name: "batch-get-not-found", method: "GET", path: "users:batchGet?{{ada.batch}}&{{nobody.batch}}"},
		{name: "delete-ok", method: "DELETE", path: "{{grace}}"},
		{name: "delete-again", method: "DELETE", path: "{{grace}}"},
		{name: "update-deleted", method: "PATCH", path: "{{grace}}", body: `{"displayName":"Ghost"}`},
		{name: "undelete-ok", method: "POST", path: "{{grace}}:undelete", body: `{}`},
		{name: "undelete-active", method: "POST", path: "{{grace}}:undelete", body: `{}`},
		{name: "no-such-route", method: "GET", path: "groups"},
		// Bulk import: the rows that fail do so alone. They are named
		// by index in the operation's response.
		{name: "import-ok", method: "POST", path: "users:import", body: goldenImport, save: "op", await: true},
		{name: "import-replay", method: "POST", path: "users:import", body: goldenImport},
		{name: "import-request-id-reused", method: "POST", path: "users:import", body: `{"requestId":"golden-import","users":[{"email":"other@example.com","displayName":"Other"}]}`},
		{name: "import-invalid", method: "POST", path: "users:import", body: `{"users":[]}`},
		{name: "operation-get-ok", method: "GET", path: "{{op}}"},
		{name: "operation-get-not-found", method: "GET", path: "operations/0190a5b4-0000-7000-8000-000000000000"},
		{name: "operation-get-invalid", method: "GET", path: "operations/not-a-uuid"},
	}
}

// goldenImport imports a new user and three rows that fail: an invalid
// address, a missing display name, and the address of a user that exists.
const goldenImport = `{"requestId":"golden-import","users":[` +
	`{"email":"lin@example.com","displayName":"Lin Wei","labels":{"team":"ops"}},` +
	`{"email":"not-an-address","displayName":"X"},` +
	`{"email":"noname@example.com"},` +
	`{"email":"ADA@example.com","displayName":"Ada Again"}]}`

// awaitOperation polls the operation at url, its canonical path, until it
// is done.
func awaitOperation(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		var op struct{ Done bool }
		err = json.NewDecoder(res.Body).Decode(&op)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, %v", url, res.StatusCode, err)
		}
		if op.Done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: not done after 30s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// progressPlaceholders replaces the fields of an operation that depend on
// how far its jobs got: done, the counts and the response.
func progressPlaceholders(body any) {
	op, _ := body.(map[string]any)
	if op == nil {
		return
	}
	op["done"], op["response"] = "<done>", "<response, when done>"
	if md, ok := op["metadata"].(map[string]any); ok {
		md["imported"], md["failed"] = "<count>", "<count>"
	}
}

func queryEscape(s string) string {
	return strings.NewReplacer(" ", "%20", `"`, "%22", "=", "%3D").Replace(s)
}

var (
	uuidRE  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE  = regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"`)
	etagRE  = regexp.MustCompile(`\b[0-9a-f]{16}\b`) // etags are the only 16-hex-digit words left once ids are replaced
	tokenRE = regexp.MustCompile(`("nextPageToken":\s*"|pageToken=)[A-Za-z0-9_-]{20,}`)
)

// normalize replaces what changes from run to run: ids (numbered by first
// appearance), times, etags and page tokens; and the non-breaking space
// protobuf-go puts in some of its messages at random, on purpose.
func normalize(s string) string {
	s = strings.ReplaceAll(s, "\u00a0", " ")
	var seen []string
	s = uuidRE.ReplaceAllStringFunc(s, func(id string) string {
		if id == "0190a5b4-0000-7000-8000-000000000000" {
			return id // the fixed unknown id of the script
		}
		i := slices.Index(seen, id)
		if i < 0 {
			seen = append(seen, id)
			i = len(seen) - 1
		}
		return fmt.Sprintf("<id%d>", i+1)
	})
	s = timeRE.ReplaceAllString(s, `"<time>"`)
	s = etagRE.ReplaceAllString(s, "<etag>")
	return tokenRE.ReplaceAllString(s, "${1}<token>")
}

// goldenHeaders are the response headers that belong to the contract.
var goldenHeaders = []string{"Content-Type", "Location", "ETag", "Vary", "Retry-After", "Deprecation", "Sunset", "Link"}

type savedUser struct{ id, ref, etag string }

// TestGoldenHTTP runs the golden scenario against each API version and
// compares every exchange with testdata/golden/<version>/NN-<step>.json.
// Run with -update to rewrite them after an intended change.
func TestGoldenHTTP(t *testing.T) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			s := startServer(t)
			spec := newContract(t, version)
			dir := filepath.Join("testdata", "golden", version)
			saved := map[string]savedUser{"nobody": {id: "0190a5b4-0000-7000-8000-000000000001", ref: "users/0190a5b4-0000-7000-8000-000000000001"}}
			tokens := map[string]string{}
			expand := func(in string) string {
				return regexp.MustCompile(`\{\{(\w+)(\.\w+)?\}\}`).ReplaceAllStringFunc(in, func(m string) string {
					parts := regexp.MustCompile(`\{\{(\w+)(\.\w+)?\}\}`).FindStringSubmatch(m)
					u := saved[parts[1]]
					switch parts[2] {
					case "":
						return u.ref
					case ".id":
						return u.id
					case ".etag":
						return u.etag
					case ".token":
						return tokens[parts[1]]
					case ".batch":
						if version == "v1" {
							return "ids=" + u.id
						}
						return "names=" + u.ref
					}
					t.Fatalf("bad template %s", m)
					return ""
				})
			}
			var files []string
			for i, st := range goldenSteps() {
				path := "/" + version + "/" + expand(st.path)
				body := expand(st.body)
				req, err := http.NewRequest(st.method, "http://"+s.HTTP+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				reqHeader := map[string]string{}
				for k, v := range st.header {
					req.Header.Set(k, expand(v))
					reqHeader[k] = expand(v)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if err := spec.check(req, res.StatusCode, res.Header, raw); err != nil {
					t.Errorf("%s: %v", st.name, err)
				}

				var resBody any
				if len(raw) > 0 {
					if err := json.Unmarshal(raw, &resBody); err != nil {
						t.Fatalf("%s: response is not JSON: %q", st.name, raw)
					}
				}
				if st.save != "" {
					m, _ := resBody.(map[string]any)
					if tok, ok := m["nextPageToken"].(string); ok {
						tokens[st.save] = tok
					}
					if id, ok := m["id"].(string); ok {
						saved[st.save] = savedUser{id: id, ref: "users/" + id, etag: fmt.Sprint(m["etag"])}
					} else if name, ok := m["name"].(string); ok {
						saved[st.save] = savedUser{id: name[strings.LastIndex(name, "/")+1:], ref: name, etag: fmt.Sprint(m["etag"])}
					}
				}
				if st.await {
					progressPlaceholders(resBody)
					awaitOperation(t, "http://"+s.HTTP+res.Header.Get("Location"))
				}
				// A user's etag moves on with each change the script makes.
				for k, u := range saved {
					if m, ok := resBody.(map[string]any); ok && res.StatusCode == 200 && (m["id"] == u.id || m["name"] == u.ref) {
						u.etag = fmt.Sprint(m["etag"])
						if st.name != "update-ok" { // keep the stale etag for update-stale-etag
							saved[k] = u
						}
					}
				}

				headers := map[string]string{}
				for _, h := range goldenHeaders {
					if v := res.Header.Get(h); v != "" {
						headers[h] = v
					}
				}
				var reqBody any
				if body != "" {
					if json.Unmarshal([]byte(body), &reqBody) != nil {
						reqBody = body // malformed on purpose
					}
				}
				exchange := map[string]any{
					"request":  map[string]any{"method": st.method, "path": path, "headers": reqHeader, "body": reqBody},
					"response": map[string]any{"status": res.StatusCode, "headers": headers, "body": resBody},
				}
				out, _ := json.MarshalIndent(exchange, "", "  ")
				got := normalize(string(out)) + "\n"
				if st.await {
					// The placeholders, as the other normalized values.
					got = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(got)
				}

				file := filepath.Join(dir, fmt.Sprintf("%02d-%s.json", i+1, st.name))
				files = append(files, filepath.Base(file))
				if *update {
					if err := os.MkdirAll(dir, 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Errorf("%s: %v (run go test ./cmd/usersd -run TestGoldenHTTP -update)", st.name, err)
					continue
				}
				if string(want) != got {
					t.Errorf("%s: the exchange changed (run with -update if intended)\n--- want\n%s\n--- got\n%s", file, want, got)
				}
			}
			// No stale golden files.
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if !slices.Contains(files, e.Name()) {
					t.Errorf("%s/%s belongs to no step; delete it", dir, e.Name())
				}
			}
		})
	}
}
