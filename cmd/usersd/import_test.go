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
// make test-faults runs the same with the default job settings
// (TestFaultsKill9Import) and with two replicas.
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
	// Small chunks make the import long enough to kill in the middle; idle
	// workers look for jobs often.
	c := newHTTPClient(t)
	k := killMidImport(t, bin, dbURL, 60*time.Second, "--import-chunk-size", "50", "--job-poll-interval", "100ms")
	p2 := k.restarted

	// Replaying the request returns the same operation.
	var again operation
	if err := call(t.Context(), c, p2, "POST", "/v1/users:import", k.ic.body, http.StatusAccepted, &again); err != nil {
		t.Fatal(err)
	}
	if again.Name != k.name || !again.Done || again.Metadata.Imported != k.ic.imported {
		t.Errorf("replayed import answered %s (done %v, imported %d), want %s, done, %d", again.Name, again.Done, again.Metadata.Imported, k.name, k.ic.imported)
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

// killed is what killMidImport did and measured.
type killed struct {
	restarted *usersdProc
	name      string
	ic        importCase
}

// killMidImport starts usersd on dbURL with args, starts an import of
// 10,000 rows, kills the process with SIGKILL once 1,000 are in, and starts
// it again with the same args. Within limit of the restart the import must
// be done, with exact counts and every valid row exactly once, and no job
// may be left to run; the restarted process must have rescued exactly the
// jobs the killed one left running. It logs the recovery times.
func killMidImport(t *testing.T, bin, dbURL string, limit time.Duration, args ...string) killed {
	t.Helper()
	args = append([]string{"--database-url", dbURL}, args...)
	c := newHTTPClient(t)
	p := startUsersd(t, bin, args...)
	ic := newImport(t, "kill-9-import", "k", 10000)
	name := startImport(t, c, p, ic)
	atKill := waitImported(t, c, p, name, 1000)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	killedAt := time.Now()
	running := countJobs(t, dbURL, "state = 'running'")
	chunksAtKill := queryInts(t, dbURL, "SELECT id FROM river_job WHERE kind = 'import_users_chunk' AND state = 'running'")
	if len(chunksAtKill) == 0 {
		t.Fatal("no import chunk was running at the kill: nothing to recover")
	}

	restartedAt := time.Now()
	p2 := startUsersd(t, bin, args...)
	readyAt := time.Now()
	back := recovered(t, dbURL, chunksAtKill, limit)
	op := waitDone(t, c, p2, name, limit-time.Since(restartedAt))
	done := time.Now()
	// The restarted process rescued the jobs the killed one left running
	// (at start on SQLite, once the killed one's liveness lock was seen
	// free for a few seconds on Postgres); the chunks whose transaction had
	// committed before the kill change nothing the second time.
	settled := waitNoPendingChunks(t, dbURL, restartedAt, limit, "the restart", p2)
	checkImported(t, c, p2, ic, op)
	rescued, deadFor := rescuedJobs(p2)
	if rescued != running {
		t.Errorf("%d jobs were left running by the killed process but %d were rescued\n%s", running, rescued, p2.output())
	}
	t.Logf("killed with %d of %d rows imported, %d jobs running (%d import chunks); restarted %v after the kill, ready in %v; "+
		"%d jobs rescued (seen dead for %v); the chunks running at the kill finished %v after the restart; "+
		"import done %v after the restart (%v after the kill), no chunk pending %v after the kill",
		atKill.Metadata.Imported, ic.total, running, len(chunksAtKill), restartedAt.Sub(killedAt).Round(time.Millisecond),
		readyAt.Sub(restartedAt).Round(time.Millisecond), rescued, deadFor.Round(time.Millisecond), back.Sub(restartedAt).Round(10*time.Millisecond),
		done.Sub(restartedAt).Round(10*time.Millisecond), done.Sub(killedAt).Round(10*time.Millisecond), settled.Sub(killedAt).Round(10*time.Millisecond))
	return killed{restarted: p2, name: name, ic: ic}
}

// waitImported polls the operation until n rows are imported and returns
// it; the import must not be done yet.
func waitImported(t *testing.T, c *http.Client, p *usersdProc, name string, n int) operation {
	t.Helper()
	for {
		var op operation
		if err := call(t.Context(), c, p, "GET", "/v1/"+name, "", http.StatusOK, &op); err != nil {
			t.Fatal(err)
		}
		if op.Done {
			t.Fatalf("the import finished before it could be killed: %+v", op.Metadata)
		}
		if op.Metadata.Imported >= n {
			return op
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rescueMsg is the log line of a batch of jobs rescued from a dead process.
const rescueMsg = "jobs rescued from a dead process"

// rescuedJobs sums the jobs p logged as rescued from dead processes, and
// returns the longest time one of those was seen dead first.
func rescuedJobs(p *usersdProc) (int, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, deadFor := 0, time.Duration(0)
	for _, e := range p.events {
		if e.Msg == rescueMsg {
			jobs, _ := e.Fields["jobs"].(float64)
			n += int(jobs)
			deadFor = max(deadFor, e.durMS("dead_for"))
		}
	}
	return n, deadFor
}

// countJobs counts the jobs in the database that match where (SQL, the
// same on both stores).
func countJobs(t *testing.T, dbURL, where string) int {
	t.Helper()
	return int(queryInts(t, dbURL, "SELECT count(*) FROM river_job WHERE "+where)[0])
}

// waitNoPendingChunks waits until no import chunk is pending (see
// pendingChunks), failing the test when that takes longer than limit from
// since (what names the moment, p the process whose output to show), and
// returns when it was so.
func waitNoPendingChunks(t *testing.T, dbURL string, since time.Time, limit time.Duration, what string, p *usersdProc) time.Time {
	t.Helper()
	for countJobs(t, dbURL, pendingChunks) > 0 {
		if time.Since(since) > limit {
			t.Fatalf("jobs still pending %v after %s\n%s", limit, what, p.output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Now()
}

// pendingChunks matches the import chunk jobs still to run or running.
const pendingChunks = "kind = 'import_users_chunk' AND state IN ('running', 'available', 'scheduled', 'retryable')"

// recovered waits until every job of ids is finalized, or limit passes,
// and returns when it saw so.
func recovered(t *testing.T, dbURL string, ids []int64, limit time.Duration) time.Time {
	t.Helper()
	list := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ids)), ","), "[]")
	deadline := time.Now().Add(limit)
	for countJobs(t, dbURL, "finalized_at IS NULL AND id IN ("+list+")") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the jobs %v, running at the kill, not finished within %v", ids, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Now()
}

// queryInts runs q on the database and returns the first column of its
// rows, which must be integers.
func queryInts(t *testing.T, dbURL, q string) []int64 {
	t.Helper()
	var out []int64
	if path, ok := strings.CutPrefix(dbURL, "sqlite:"); ok {
		db, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Writer().QueryContext(t.Context(), q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rows.Close()
		for rows.Next() {
			var n int64
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(t.Context(), q)
	out, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}
