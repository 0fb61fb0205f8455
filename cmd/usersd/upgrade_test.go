package main

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// previousRelease is the commit of the release before this one: what a
// deployment upgrades from. Move it forward when a release is cut.
const previousRelease = "deb074a706bf99f5a50d4c6e6fbb249f1000836b"

// TestUpgradeFromPreviousRelease builds the previous release from the
// repository's history, lets it create a database and write users,
// an import, a webhook subscription and their events through v1, then
// starts the current binary on the same database: it migrates the
// database, and every v1 answer about that data is the same, byte for
// byte. On SQLite and on Postgres.
func TestUpgradeFromPreviousRelease(t *testing.T) {
	old := buildRelease(t, previousRelease)
	cur := buildUsersd(t)
	stores := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "u.db") },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t) },
	}
	for name, newDB := range stores {
		t.Run(name, func(t *testing.T) {
			db := newDB(t)
			before := startUsersd(t, old, "--database-url", db, "--shutdown-delay", "0s")
			ids := seedV1(t, before)
			want := readV1(t, before, ids)
			// A page token handed out before the upgrade.
			token := httpDo(t, before, "GET", "/v1/users?pageSize=1", "").str("nextPageToken")
			secondPage := httpDo(t, before, "GET", "/v1/users?pageSize=1&pageToken="+token, "")
			stopProc(t, before)

			after := startUsersd(t, cur, "--database-url", db, "--shutdown-delay", "0s")
			got := readV1(t, after, ids)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("v1 answers after the upgrade differ from the previous release's (-before +after):\n%s", diff)
			}
			if r := httpDo(t, after, "GET", "/v1/users?pageSize=1&pageToken="+token, ""); token == "" || !cmp.Equal(r.Body, secondPage.Body) {
				t.Errorf("page token %q of the previous release: %d %s, want %s", token, r.Status, r.Raw, secondPage.Raw)
			}
			checkInDefaultTenant(t, after, ids, want)
			// The same idempotency key still finds the same user.
			if id := createV1(t, after, `{"email":"ada@example.com","displayName":"Ada Lovelace"}`, "upgrade-ada"); id != ids.users[0] {
				t.Errorf("replaying the first create after the upgrade made user %s, want %s", id, ids.users[0])
			}
			if r := httpDo(t, after, "GET", "/v2/tenants/default", ""); r.Status != http.StatusOK {
				t.Errorf("GET /v2/tenants/default after the upgrade = %d %s", r.Status, r.Raw)
			}
		})
	}
}

// checkInDefaultTenant checks, through v2, that everything the previous
// release wrote is the default tenant's: its users, import, subscription
// and events.
func checkInDefaultTenant(t *testing.T, p *usersdProc, s seeded, v1 map[string]answer) {
	t.Helper()
	const tenant = "/v2/tenants/default"
	r := httpDo(t, p, "GET", tenant+"/users?showDeleted=true&pageSize=1000", "")
	listed, _ := r.Body["users"].([]any)
	v1Listed, _ := v1["/v1/users?showDeleted=true&pageSize=1000"].Body["users"].([]any)
	if r.Status != http.StatusOK || len(listed) != len(v1Listed) || len(listed) < len(s.users) {
		t.Errorf("GET %s/users = %d, %d users; want the %d of v1", tenant, r.Status, len(listed), len(v1Listed))
	}
	// Migration 00009 gave the users stored before it their search keys:
	// each is found by its address.
	for _, u := range listed {
		email, _ := u.(map[string]any)["email"].(string)
		found := httpDo(t, p, "GET", tenant+"/users?showDeleted=true&query="+url.QueryEscape(email), "")
		if us, _ := found.Body["users"].([]any); found.Status != http.StatusOK || len(us) != 1 {
			t.Errorf("search for %s after the upgrade = %d %s; want the user", email, found.Status, found.Raw)
		}
	}
	for _, path := range []string{tenant + "/users/" + s.users[0], tenant + "/operations/" + s.operation, tenant + "/webhooks/" + s.webhook} {
		if r := httpDo(t, p, "GET", path, ""); r.Status != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, r.Status, r.Raw)
		}
	}
	r = httpDo(t, p, "GET", tenant+"/userEvents?pageSize=1000", "")
	events, _ := r.Body["events"].([]any)
	v1Events, _ := v1["/v1/userEvents?pageSize=1000"].Body["events"].([]any)
	if len(events) == 0 || len(events) != len(v1Events) {
		t.Errorf("the default tenant's feed has %d events, v1's %d; want all of them", len(events), len(v1Events))
	}
	for _, e := range events {
		if tn := e.(map[string]any)["tenant"]; tn != "tenants/default" {
			t.Errorf("an event of %v after the upgrade, want tenants/default", tn)
		}
	}
}

// buildRelease builds ./cmd/usersd of commit from the repository's
// history into a directory removed when t ends.
func buildRelease(t *testing.T, commit string) string {
	t.Helper()
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	repo := strings.TrimSpace(string(top))
	if exec.Command("git", "-C", repo, "cat-file", "-e", commit+"^{commit}").Run() != nil {
		// A shallow clone: fetch the commit from where it was cloned.
		if out, err := exec.Command("git", "-C", repo, "fetch", "--quiet", "--depth=1", "origin", commit).CombinedOutput(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the previous release %s is not in the history and cannot be fetched: %v\n%s", commit, err, out)
			}
			t.Skipf("the previous release %s is not in the history and cannot be fetched: %v\n%s", commit, err, out)
		}
	}
	src := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", repo, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("extracting the previous release %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(t.TempDir(), "usersd-previous")
	start := time.Now()
	build := exec.Command("go", "build", "-o", bin, "./cmd/usersd")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the previous release: %v\n%s", err, out)
	}
	t.Logf("built the previous release %.12s in %v", commit, time.Since(start).Round(time.Millisecond))
	return bin
}

// stopProc stops p with SIGTERM and waits for it to exit.
func stopProc(t *testing.T, p *usersdProc) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	if code, _ := p.waitExit(t, time.Now().Add(30*time.Second)); code != 0 {
		t.Fatalf("usersd exited with %d\n%s", code, p.output())
	}
}

// httpDo sends one request to p, as testServer.do does.
func httpDo(t *testing.T, p *usersdProc, method, path, body string, header ...string) response {
	t.Helper()
	return (&testServer{HTTP: p.HTTP}).do(t, method, path, body, header...)
}

// createV1 creates a user through v1 under an idempotency key and returns
// its id.
func createV1(t *testing.T, p *usersdProc, body, key string) string {
	t.Helper()
	r := httpDo(t, p, "POST", "/v1/users", body, "Idempotency-Key", key)
	if r.str("id") == "" || (r.Status != http.StatusCreated && r.Status != http.StatusOK) {
		t.Fatalf("POST /v1/users = %d %s", r.Status, r.Raw)
	}
	return r.str("id")
}

// seeded are the ids of what seedV1 wrote.
type seeded struct {
	users     []string
	operation string
	webhook   string
}

// seedV1 writes, through v1: three users (one updated, one deleted), an
// import with a failed row, finished, and a disabled webhook subscription.
func seedV1(t *testing.T, p *usersdProc) seeded {
	t.Helper()
	var s seeded
	for i, body := range []string{
		`{"email":"ada@example.com","displayName":"Ada Lovelace"}`,
		`{"email":"grace@example.com","displayName":"Grace Hopper","labels":{"team":"navy"}}`,
		`{"email":"lin@example.com","displayName":"Lin Wei","state":"STATE_SUSPENDED"}`,
	} {
		key := []string{"upgrade-ada", "upgrade-grace", "upgrade-lin"}[i]
		s.users = append(s.users, createV1(t, p, body, key))
	}
	if r := httpDo(t, p, "PATCH", "/v1/users/"+s.users[1], `{"displayName":"Rear Admiral Grace Hopper"}`); r.Status != http.StatusOK {
		t.Fatalf("PATCH = %d %s", r.Status, r.Body)
	}
	if r := httpDo(t, p, "DELETE", "/v1/users/"+s.users[2], ""); r.Status != http.StatusOK {
		t.Fatalf("DELETE = %d %s", r.Status, r.Body)
	}
	r := httpDo(t, p, "POST", "/v1/users:import",
		`{"requestId":"upgrade-import","users":[{"email":"alan@example.com","displayName":"Alan Turing"},{"email":"bad","displayName":"X"}]}`)
	if r.Status != http.StatusAccepted {
		t.Fatalf("POST /v1/users:import = %d %s", r.Status, r.Raw)
	}
	s.operation = strings.TrimPrefix(r.str("name"), "operations/")
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := httpDo(t, p, "GET", "/v1/operations/"+s.operation, "")
		if r.Body["done"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the import is not done within 30 s: %s", r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r = httpDo(t, p, "POST", "/v1/webhooks", `{"url":"https://hooks.example.com/usersd","eventTypes":["user.created"],"enabled":false}`)
	if s.webhook = r.str("id"); s.webhook == "" {
		t.Fatalf("POST /v1/webhooks = %d %s", r.Status, r.Raw)
	}
	return s
}

// answer is what readV1 keeps of one answer: the body as a JSON value,
// since protojson varies its whitespace from build to build on purpose.
type answer struct {
	Status int
	Body   map[string]any
}

// readV1 returns v1's answers about what seedV1 wrote, by request.
func readV1(t *testing.T, p *usersdProc, s seeded) map[string]answer {
	t.Helper()
	paths := []string{
		"/v1/users?showDeleted=true&pageSize=1000",
		"/v1/users?filter=" + strings.ReplaceAll(`state = "ACTIVE"`, " ", "%20") + "&orderBy=email",
		"/v1/users:batchGet?ids=" + strings.Join(s.users, "&ids="),
		"/v1/operations/" + s.operation,
		"/v1/userEvents?pageSize=1000",
		"/v1/webhooks",
		"/v1/webhooks/" + s.webhook,
	}
	for _, id := range s.users {
		paths = append(paths, "/v1/users/"+id)
	}
	out := map[string]answer{}
	for _, path := range paths {
		r := httpDo(t, p, "GET", path, "")
		if r.Status != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, r.Status, r.Raw)
		}
		out[path] = answer{Status: r.Status, Body: r.Body}
	}
	if len(out) != len(paths) {
		t.Fatalf("%d answers for %d paths", len(out), len(paths))
	}
	return out
}
