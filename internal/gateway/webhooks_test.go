package gateway_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
)

// TestUserEventsRoute checks GET /v1/userEvents: pages of events in JSON,
// with lowerCamelCase changed paths, and the cursor that resumes them.
func TestUserEventsRoute(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	u, ev := userEventPages(t, h, "v1", func(u map[string]any) string { return "/v1/users/" + u["id"].(string) })
	id := u["id"].(string)
	if ev["type"] != "user.updated" || ev["userId"] != id || !slices.Equal(toStrings(ev["changedPaths"]), []string{"displayName"}) {
		t.Errorf("second page's event = %v, want user.updated of %s changing [displayName]", ev, id)
	}
	if u, _ := ev["user"].(map[string]any); u["displayName"] != "Ada L." {
		t.Errorf("event user = %v, want displayName Ada L.", ev["user"])
	}
}

// userEventPages creates Ada and renames her through the routes of
// version v ("v1" or "v2"), path giving the path of the user created,
// then reads GET /{v}/userEvents a page at a time. It checks the first
// page, Ada's user.created and its cursor, and that a bogus cursor is
// refused naming after; it returns the user created and the event of the
// second page, the rename, for the caller to check in v's terms.
func userEventPages(t *testing.T, h http.Handler, v string, path func(user map[string]any) string) (user, ev map[string]any) {
	t.Helper()
	w := call(t, h, "POST", "/"+v+"/users", `{"email":"ada@example.com","displayName":"Ada"}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /%s/users status = %d, want 201; body %s", v, w.Code, w.Body)
	}
	user = decode(t, w)
	if w := call(t, h, "PATCH", path(user), `{"displayName":"Ada L."}`); w.Code != http.StatusOK {
		t.Fatalf("PATCH %s status = %d, want 200; body %s", path(user), w.Code, w.Body)
	}

	events := "/" + v + "/userEvents"
	w = call(t, h, "GET", events+"?pageSize=1", "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s status = %d, want 200; body %s", events, w.Code, w.Body)
	}
	page := decode(t, w)
	evs, _ := page["events"].([]any)
	if len(evs) != 1 || evs[0].(map[string]any)["type"] != "user.created" {
		t.Fatalf("first page = %s, want Ada's user.created", w.Body)
	}
	next, _ := page["nextCursor"].(string)
	if next == "" || next != evs[0].(map[string]any)["cursor"] {
		t.Errorf("nextCursor = %q, want the cursor of the page's event", next)
	}

	w = call(t, h, "GET", events+"?after="+url.QueryEscape(next), "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s?after= status = %d, want 200; body %s", events, w.Code, w.Body)
	}
	evs, _ = decode(t, w)["events"].([]any)
	if len(evs) != 1 {
		t.Fatalf("second page = %s, want one event", w.Body)
	}

	if w := call(t, h, "GET", events+"?after=bogus", ""); w.Code != http.StatusBadRequest || !slices.Contains(badRequestFields(t, w), "after") {
		t.Errorf("GET %s?after=bogus = %d %s, want 400 naming after", events, w.Code, w.Body)
	}
	return user, evs[0].(map[string]any)
}

func toStrings(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// TestWebhookRoutes checks the HTTP side of webhook administration: 201
// and Location on create, the secret shown only on create and rotation
// (with Cache-Control: no-store), PATCH deriving the mask from the body,
// deliveries and delete.
func TestWebhookRoutes(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	w := call(t, h, "POST", "/v1/webhooks", `{"url":"https://example.com/hooks","eventTypes":["user.created"],"enabled":true}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /v1/webhooks status = %d, want 201; body %s", w.Code, w.Body)
	}
	created := decode(t, w)
	id, _ := created["id"].(string)
	if got, want := w.Header().Get("Location"), "/v1/webhooks/"+id; id == "" || got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") {
		t.Errorf("created secret = %q, want whsec_…", secret)
	}
	if got := w.Header().Get("Cache-Control"); got != "no-store" {
		t.Errorf("create Cache-Control = %q, want no-store", got)
	}

	w = call(t, h, "GET", "/v1/webhooks/"+id, "")
	if w.Code != http.StatusOK {
		t.Fatalf("GET /v1/webhooks/%s status = %d, want 200; body %s", id, w.Code, w.Body)
	}
	if got := decode(t, w); got["secret"] != "" || got["url"] != "https://example.com/hooks" {
		t.Errorf("GET webhook = %s, want the url and an empty secret", w.Body)
	}
	if got := w.Header().Get("Cache-Control"); got != "" {
		t.Errorf("GET Cache-Control = %q, want none", got)
	}

	w = call(t, h, "PATCH", "/v1/webhooks/"+id, `{"enabled":false}`)
	if w.Code != http.StatusOK {
		t.Fatalf("PATCH enabled status = %d, want 200; body %s", w.Code, w.Body)
	}
	if got := decode(t, w); got["enabled"] != false || got["url"] != "https://example.com/hooks" || got["secret"] != "" {
		t.Errorf("PATCH enabled = %s, want disabled, the url kept, no secret", w.Body)
	}

	w = call(t, h, "PATCH", "/v1/webhooks/"+id, `{"secret":""}`)
	if w.Code != http.StatusOK {
		t.Fatalf("PATCH secret status = %d, want 200; body %s", w.Code, w.Body)
	}
	if got, _ := decode(t, w)["secret"].(string); !strings.HasPrefix(got, "whsec_") || got == secret {
		t.Errorf("rotated secret = %q, want a new whsec_ secret", got)
	}

	rotated := w.Body.String()
	w = call(t, h, "PATCH", "/v1/webhooks/"+id+"?updateMask=secret", `{}`)
	if got, _ := decode(t, w)["secret"].(string); w.Code != http.StatusOK || !strings.HasPrefix(got, "whsec_") || strings.Contains(rotated, got) {
		t.Errorf("PATCH ?updateMask=secret = %d %s, want another new secret", w.Code, w.Body)
	}

	w = call(t, h, "GET", "/v1/webhooks", "")
	if hooks, _ := decode(t, w)["webhooks"].([]any); w.Code != http.StatusOK || len(hooks) != 1 {
		t.Errorf("GET /v1/webhooks = %d %s, want one webhook", w.Code, w.Body)
	}
	w = call(t, h, "GET", "/v1/webhooks/"+id+"/deliveries?pageSize=10", "")
	if ds, ok := decode(t, w)["deliveries"].([]any); w.Code != http.StatusOK || !ok || len(ds) != 0 {
		t.Errorf("GET deliveries = %d %s, want 200 and no deliveries", w.Code, w.Body)
	}

	w = call(t, h, "POST", "/v1/webhooks", `{"url":"https://example.com/hooks","eventTypes":["user.renamed"]}`)
	if w.Code != http.StatusBadRequest || !slices.Contains(badRequestFields(t, w), "webhook.event_types[0]") {
		t.Errorf("POST with an unknown event type = %d %s, want 400 naming webhook.event_types[0]", w.Code, w.Body)
	}

	if w := call(t, h, "DELETE", "/v1/webhooks/"+id, ""); w.Code != http.StatusOK {
		t.Errorf("DELETE status = %d, want 200; body %s", w.Code, w.Body)
	}
	if w := call(t, h, "GET", "/v1/webhooks/"+id, ""); w.Code != http.StatusNotFound {
		t.Errorf("GET after DELETE status = %d, want 404; body %s", w.Code, w.Body)
	}
}

// TestV2UserEventsRoute checks GET /v2/userEvents: events named
// userEvents/{id}, their user by name, its snapshot, and the cursor.
func TestV2UserEventsRoute(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	u, ev := userEventPages(t, h, "v2", func(u map[string]any) string { return "/v2/" + u["name"].(string) })
	name := u["name"].(string)
	if ev["type"] != "user.updated" || ev["user"] != name || !slices.Equal(toStrings(ev["changedPaths"]), []string{"displayName"}) {
		t.Errorf("second page's event = %v, want user.updated of %s changing [displayName]", ev, name)
	}
	if evName, _ := ev["name"].(string); !strings.HasPrefix(evName, "userEvents/") {
		t.Errorf("event name = %q, want userEvents/{id}", evName)
	}
	if u, _ := ev["snapshot"].(map[string]any); u["displayName"] != "Ada L." || u["name"] != name {
		t.Errorf("event snapshot = %v, want %s with displayName Ada L.", ev["snapshot"], name)
	}
	if _, ok := ev["createTime"]; !ok {
		t.Errorf("event = %v, want a createTime", ev)
	}
}

// TestV2WebhookRoutes checks webhook administration through users.v2:
// names, 201 and Location on create, the secret only on create and
// rotation, PATCH by name, deliveries under the parent, delete, and the
// fields errors name.
func TestV2WebhookRoutes(t *testing.T) {
	h := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})
	w := call(t, h, "POST", "/v2/webhooks", `{"url":"https://example.com/hooks","eventTypes":["user.created"],"enabled":true}`)
	if w.Code != http.StatusCreated {
		t.Fatalf("POST /v2/webhooks status = %d, want 201; body %s", w.Code, w.Body)
	}
	created := decode(t, w)
	name, _ := created["name"].(string)
	if !strings.HasPrefix(name, "tenants/default/webhooks/") {
		t.Fatalf("created name = %q, want tenants/default/webhooks/{id}", name)
	}
	if got, want := w.Header().Get("Location"), "/v2/"+name; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	secret, _ := created["secret"].(string)
	if !strings.HasPrefix(secret, "whsec_") || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("create: secret %q, Cache-Control %q; want whsec_… and no-store", secret, w.Header().Get("Cache-Control"))
	}

	w = call(t, h, "GET", "/v2/"+name, "")
	if got := decode(t, w); w.Code != http.StatusOK || got["secret"] != "" || got["name"] != name || w.Header().Get("Cache-Control") != "" {
		t.Errorf("GET /v2/%s = %d %s, want the webhook without its secret", name, w.Code, w.Body)
	}

	w = call(t, h, "PATCH", "/v2/"+name, `{"enabled":false}`)
	if got := decode(t, w); w.Code != http.StatusOK || got["enabled"] != false || got["url"] != "https://example.com/hooks" || got["secret"] != "" {
		t.Errorf("PATCH enabled = %d %s, want disabled, the url kept, no secret", w.Code, w.Body)
	}
	w = call(t, h, "PATCH", "/v2/"+name, `{"secret":""}`)
	if got, _ := decode(t, w)["secret"].(string); w.Code != http.StatusOK || !strings.HasPrefix(got, "whsec_") || got == secret {
		t.Errorf("PATCH secret = %d %s, want a new whsec_ secret", w.Code, w.Body)
	}

	w = call(t, h, "GET", "/v2/webhooks", "")
	if hooks, _ := decode(t, w)["webhooks"].([]any); w.Code != http.StatusOK || len(hooks) != 1 {
		t.Errorf("GET /v2/webhooks = %d %s, want one webhook", w.Code, w.Body)
	}
	w = call(t, h, "GET", "/v2/"+name+"/deliveries?pageSize=10", "")
	if ds, ok := decode(t, w)["deliveries"].([]any); w.Code != http.StatusOK || !ok || len(ds) != 0 {
		t.Errorf("GET deliveries = %d %s, want 200 and no deliveries", w.Code, w.Body)
	}

	for _, tc := range []struct {
		method, path, body string
		code               int
		field              string
	}{
		{"POST", "/v2/webhooks", `{"url":"https://example.com/hooks","eventTypes":["user.renamed"]}`, http.StatusBadRequest, "webhook.event_types[0]"},
		{"GET", "/v2/webhooks/nope", "", http.StatusBadRequest, "name"},
		{"PATCH", "/v2/webhooks/nope", `{"enabled":true}`, http.StatusBadRequest, "webhook.name"},
		{"GET", "/v2/webhooks/nope/deliveries", "", http.StatusBadRequest, "parent"},
		{"GET", "/v2/" + name + "/deliveries?pageSize=-1", "", http.StatusBadRequest, "page_size"},
		{"GET", "/v2/webhooks/" + exampleID, "", http.StatusNotFound, ""},
	} {
		w := call(t, h, tc.method, tc.path, tc.body)
		if w.Code != tc.code || (tc.field != "" && !slices.Contains(badRequestFields(t, w), tc.field)) {
			t.Errorf("%s %s = %d %s, want %d naming %q", tc.method, tc.path, w.Code, w.Body, tc.code, tc.field)
		}
	}

	if w := call(t, h, "DELETE", "/v2/"+name, ""); w.Code != http.StatusOK {
		t.Errorf("DELETE status = %d, want 200; body %s", w.Code, w.Body)
	}
	if w := call(t, h, "GET", "/v2/"+name, ""); w.Code != http.StatusNotFound {
		t.Errorf("GET after DELETE status = %d, want 404; body %s", w.Code, w.Body)
	}
}
