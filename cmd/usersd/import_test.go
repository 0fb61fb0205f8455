package main

// Bulk import on the real binary: kill -9 in the middle of an import, start
// again, and the import completes with every valid row stored exactly once.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/sqlite"
)

// importRow is one row of an import request, as JSON.
type importRow struct {
	Email       string `json:"email"`
	DisplayName string `json:"displayName"`
}

// importCase is an import request and what it must end with.
type importCase struct {
	body       string
	valid      map[string]bool // emails that must exist once, when done
	failed     map[int]string  // index → what the reason must mention
	total      int
	imported   int
	failedRows int
}

// newImport returns an import of n rows with request id id: rows that
// protovalidate rejects (a bad address), rows that repeat the address of the
// row before (the first wins), and the rest valid. Emails start with prefix.
func newImport(t *testing.T, id, prefix string, n int) importCase {
	c := importCase{valid: map[string]bool{}, failed: map[int]string{}, total: n}
	rows := make([]importRow, n)
	for i := range rows {
		email := fmt.Sprintf("%s%05d@example.com", prefix, i)
		switch {
		case i%97 == 13:
			email = fmt.Sprintf("not-an-address-%d", i)
			c.failed[i] = "email"
		case i%250 == 249 && !strings.HasPrefix(rows[i-1].Email, "not-"):
			email = rows[i-1].Email
			c.failed[i] = "already in use"
		default:
			c.valid[email] = true
		}
		rows[i] = importRow{Email: email, DisplayName: fmt.Sprintf("Imported %d", i)}
	}
	c.imported, c.failedRows = len(c.valid), len(c.failed)
	body, err := json.Marshal(map[string]any{"users": rows, "requestId": id})
	if err != nil {
		t.Fatal(err)
	}
	c.body = string(body)
	return c
}

// operation is the JSON of an Operation.
type operation struct {
	Name     string `json:"name"`
	Done     bool   `json:"done"`
	Metadata struct {
		Total    int `json:"total"`
		Imported int `json:"imported"`
		Failed   int `json:"failed"`
	} `json:"metadata"`
	Response struct {
		Failures []struct {
			Index  int    `json:"index"`
			Reason string `json:"reason"`
		} `json:"failures"`
	} `json:"response"`
}

// call sends a request to p's HTTP API and decodes the answer into out.
func call(ctx context.Context, c *http.Client, p *usersdProc, method, path, body string, want int, out any) error {
	m, err := httpCall(ctx, c, method, "http://"+p.HTTP+path, body, want)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	raw, _ := json.Marshal(m)
	return json.Unmarshal(raw, out)
}

// startImport posts the import and returns its operation name.
func startImport(t *testing.T, c *http.Client, p *usersdProc, ic importCase) string {
	t.Helper()
	var op operation
	if err := call(t.Context(), c, p, "POST", "/v1/users:import", ic.body, http.StatusAccepted, &op); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(op.Name, "operations/") || op.Metadata.Total != ic.total {
		t.Fatalf("import answered %+v, want operations/… with total %d", op, ic.total)
	}
	return op.Name
}

// waitDone polls the operation until it is done or limit passes.
func waitDone(t *testing.T, c *http.Client, p *usersdProc, name string, limit time.Duration) operation {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var op operation
		if err := call(t.Context(), c, p, "GET", "/v1/"+name, "", http.StatusOK, &op); err != nil {
			t.Fatal(err)
		}
		if op.Done {
			return op
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not done after %v: %+v\n%s", name, limit, op.Metadata, p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkImported checks the finished operation against the case, and that
// the users in the database are exactly its valid rows, each once.
func checkImported(t *testing.T, c *http.Client, p *usersdProc, ic importCase, op operation) {
	t.Helper()
	md := op.Metadata
	if md.Total != ic.total || md.Imported != ic.imported || md.Failed != ic.failedRows {
		t.Errorf("operation counts total %d, imported %d, failed %d; want %d, %d, %d", md.Total, md.Imported, md.Failed, ic.total, ic.imported, ic.failedRows)
	}
	seen := map[int]bool{}
	for _, f := range op.Response.Failures {
		want, ok := ic.failed[f.Index]
		switch {
		case !ok:
			t.Errorf("row %d reported failed (%s), but it is valid", f.Index, f.Reason)
		case seen[f.Index]:
			t.Errorf("row %d reported failed twice", f.Index)
		case !strings.Contains(f.Reason, want):
			t.Errorf("row %d failed with %q, want a reason about %q", f.Index, f.Reason, want)
		}
		seen[f.Index] = true
	}
	if len(seen) != len(ic.failed) {
		t.Errorf("%d rows reported failed, want %d", len(seen), len(ic.failed))
	}

	// Every user of the database, page by page.
	count := map[string]int{}
	token := ""
	for {
		var page struct {
			Users []struct {
				Email string `json:"email"`
			} `json:"users"`
			NextPageToken string `json:"nextPageToken"`
		}
		if err := call(t.Context(), c, p, "GET", "/v1/users?pageSize=1000&pageToken="+url.QueryEscape(token), "", http.StatusOK, &page); err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Users {
			count[u.Email]++
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	missing, extra := 0, 0
	for email := range ic.valid {
		if count[email] != 1 {
			missing++
		}
	}
	for email, n := range count {
		if !ic.valid[email] || n != 1 {
			extra++
		}
	}
	if missing > 0 || extra > 0 || len(count) != ic.imported {
		t.Errorf("database holds %d users: %d valid rows missing or repeated, %d users that should not be there; want exactly the %d valid rows", len(count), missing, extra, ic.imported)
	}
}

// TestImportSurvivesKill9 starts an import of 10,000 users, kills the
// process with SIGKILL in the middle, and starts it again on the same
// database: the operation completes, and every valid row exists exactly
// once. Then it times an uninterrupted import with the default settings.
func TestImportSurvivesKill9(t *testing.T) {
	bin := buildUsersd(t)
	t.Run("sqlite", func(t *testing.T) {
		testImportSurvivesKill9(t, bin, "sqlite:"+filepath.Join(t.TempDir(), "import.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		testImportSurvivesKill9(t, bin, pgtest.NewDatabase(t))
	})
}

func testImportSurvivesKill9(t *testing.T, bin, dbURL string) {
	// Small chunks make the import long enough to kill in the middle; a
	// short lease gets the killed process's jobs running again soon.
	args := []string{"--database-url", dbURL, "--import-chunk-size", "50", "--job-lease", "4s", "--job-poll-interval", "100ms"}
	c := newHTTPClient(t)
	p := startUsersd(t, bin, args...)
	ic := newImport(t, "kill-9-import", "k", 10000)
	name := startImport(t, c, p, ic)

	var atKill operation
	for {
		if err := call(t.Context(), c, p, "GET", "/v1/"+name, "", http.StatusOK, &atKill); err != nil {
			t.Fatal(err)
		}
		if atKill.Done {
			t.Fatalf("the import finished before it could be killed: %+v", atKill.Metadata)
		}
		if atKill.Metadata.Imported >= 1000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	killedAt := time.Now()
	running := countJobs(t, dbURL, "'running'")

	p2 := startUsersd(t, bin, args...)
	op := waitDone(t, c, p2, name, 90*time.Second)
	t.Logf("killed with %d of %d rows imported; the restarted process finished the import %v after the kill",
		atKill.Metadata.Imported, ic.total, time.Since(killedAt).Round(10*time.Millisecond))
	checkImported(t, c, p2, ic, op)
	// The jobs the killed process was running stay "running" until their
	// lease runs out; then River's rescuer schedules them again, and they
	// run again: the chunks whose transaction had committed before the
	// kill change nothing the second time.
	deadline := time.Now().Add(60 * time.Second)
	for countJobs(t, dbURL, "'running', 'available', 'scheduled', 'retryable'") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("jobs still pending 60s after the import finished\n%s", p2.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	rescued := 0
	for _, l := range strings.Split(p2.stdout.String(), "\n") {
		var e struct {
			Message string `json:"message"`
			N       int    `json:"num_jobs_retry_scheduled"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && strings.HasSuffix(e.Message, "JobRescuer: Ran successfully") {
			rescued += e.N
		}
	}
	t.Logf("jobs left running by the killed process: %d; rescued after their lease by the restarted one: %d, %v after the kill", running, rescued, time.Since(killedAt).Round(10*time.Millisecond))
	if rescued != running {
		t.Errorf("%d jobs were left running by the killed process but %d were rescued", running, rescued)
	}
	checkImported(t, c, p2, ic, waitDone(t, c, p2, name, time.Second))

	// Replaying the request returns the same operation.
	var again operation
	if err := call(t.Context(), c, p2, "POST", "/v1/users:import", ic.body, http.StatusAccepted, &again); err != nil {
		t.Fatal(err)
	}
	if again.Name != name || !again.Done || again.Metadata.Imported != ic.imported {
		t.Errorf("replayed import answered %s (done %v, imported %d), want %s, done, %d", again.Name, again.Done, again.Metadata.Imported, name, ic.imported)
	}
	p2.signal(t, syscall.SIGTERM)
	if code, _ := p2.waitExit(t, time.Now().Add(testShutdownDelay+testShutdownTimeout+5*time.Second)); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, p2.output())
	}

	// Throughput with the default chunk size and workers.
	p3 := startUsersd(t, bin, "--database-url", dbURL)
	ic3 := newImport(t, "timed-import", "t", 10000)
	start := time.Now()
	name3 := startImport(t, c, p3, ic3)
	op3 := waitDone(t, c, p3, name3, 90*time.Second)
	took := time.Since(start)
	if op3.Metadata.Imported != ic3.imported {
		t.Errorf("timed import imported %d, want %d", op3.Metadata.Imported, ic3.imported)
	}
	t.Logf("uninterrupted import of %d rows (%d valid) with the defaults: %v, %.0f users/s",
		ic3.total, ic3.imported, took.Round(time.Millisecond), float64(ic3.imported)/took.Seconds())
}

// countJobs counts the jobs in the database whose state is one of states
// (quoted, comma-separated).
func countJobs(t *testing.T, dbURL, states string) int {
	t.Helper()
	q := "SELECT count(*) FROM river_job WHERE state IN (" + states + ")"
	var n int
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Writer().QueryRowContext(t.Context(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(t.Context(), q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
