package main

// Faults of the database under load, on real Postgres processes that the
// tests build and run themselves in a temporary directory (never the
// machine's own cluster): a restart with `pg_ctl restart -m immediate`, and
// a failover from a primary to its promoted synchronous standby, with the
// real usersd binary on the two-host URL.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/client"
)

// The settings of the fault tests. usersd answers every request within
// faultRequestTimeout (its --request-timeout); the load's clients give up
// at faultClientGuard, so a request they abandon is one usersd let hang
// past its own deadline.
const (
	faultRequestTimeout = 5 * time.Second
	faultClientGuard    = 15 * time.Second
	// faultSlack is how late after its deadline an answer may come: the
	// deadline interceptor's own answer, the gateway and the scheduler of a
	// busy two-core machine.
	faultSlack   = 2 * time.Second
	faultWriters = 8
	faultPace    = 10 * time.Millisecond
	// The bounds, measured on a two-core machine shared with other builds
	// (docs/operations.md gives the figures): from the restart command to
	// the first successful write, and from `pg_ctl promote` to the first
	// successful write, with the old primary stopped or frozen. Measured:
	// restart 1.8–3.6 s; stopped 0.27–0.5 s; frozen 2.8 s in some runs and
	// 17–24 s in others, as pool slots stay held by connections dying on
	// the frozen host (docs/operations.md, "Failover to a standby").
	restartRecoveryBound        = 10 * time.Second
	failoverRecoveryBound       = 10 * time.Second
	frozenFailoverRecoveryBound = 30 * time.Second
)

// skipUnlessFaultTests skips t unless USERSD_TEST_FAULTS=1 (make
// test-faults): the fault tests take minutes and run Postgres processes.
func skipUnlessFaultTests(t *testing.T) {
	t.Helper()
	if os.Getenv("USERSD_TEST_FAULTS") != "1" {
		t.Skip("fault test with its own Postgres processes: set USERSD_TEST_FAULTS=1 (make test-faults)")
	}
}

// pgBinDir returns the bin directory of the newest Postgres installed under
// /usr/lib/postgresql (Debian's layout).
func pgBinDir(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir("/usr/lib/postgresql")
	if err != nil {
		t.Fatalf("the fault tests need Postgres's server binaries under /usr/lib/postgresql: %v", err)
	}
	var versions []float64
	for _, e := range entries {
		v, err := strconv.ParseFloat(e.Name(), 64)
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join("/usr/lib/postgresql", e.Name(), "bin", "initdb")); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		t.Fatal("no /usr/lib/postgresql/*/bin/initdb: install Debian's postgresql package")
	}
	slices.Sort(versions)
	return filepath.Join("/usr/lib/postgresql", strconv.FormatFloat(versions[len(versions)-1], 'f', -1, 64), "bin")
}

// pgHost is where the fault tests' clusters run: a temporary directory
// owned by the user the servers run as, removed when the test ends, and
// the commands to run them.
type pgHost struct {
	bin  string // Postgres's bin directory
	root string // owned by the postgres user when the test runs as root
	asPG bool   // run the server commands through runuser -u postgres
}

// newPGHost makes the directory. Postgres refuses to run as root, so as
// root the commands run as the postgres user and the directory is theirs.
func newPGHost(t *testing.T) *pgHost {
	t.Helper()
	h := &pgHost{bin: pgBinDir(t)}
	root, err := os.MkdirTemp("", "usersd-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	h.root = root
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, the Postgres servers need the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
		h.asPG = true
	}
	return h
}

// run runs a Postgres command (initdb, pg_ctl, …) and returns its output.
func (h *pgHost) run(ctx context.Context, name string, args ...string) (string, error) {
	path := filepath.Join(h.bin, name)
	var cmd *exec.Cmd
	if h.asPG {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = h.root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "PGTZ=UTC"}
	// pg_ctl's server sends its output to the -l file; if some child kept
	// the pipes open, give up on them rather than hang.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pgCluster is one Postgres server of a pgHost.
type pgCluster struct {
	h          *pgHost
	name, dir  string
	logFile    string
	port       int
	t          *testing.T
	registered bool // its stop is registered with t.Cleanup
}

// newPGCluster runs initdb for a new cluster with conf appended to its
// postgresql.conf (after the settings every cluster has).
func (h *pgHost) newPGCluster(t *testing.T, name string, conf string) *pgCluster {
	t.Helper()
	c := &pgCluster{h: h, name: name, dir: filepath.Join(h.root, name), logFile: filepath.Join(h.root, name+".log"), port: freePort(t), t: t}
	if _, err := h.run(t.Context(), "initdb", "-D", c.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	c.appendConf(t, c.baseConf()+conf)
	return c
}

// baseConf are the settings of every cluster: loopback only, its socket in
// the test's directory, WAL for a streaming standby.
func (c *pgCluster) baseConf() string {
	return fmt.Sprintf(`
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
wal_level = replica
max_wal_senders = 5
hot_standby = on
shared_buffers = 32MB
log_line_prefix = '%%m [%%p] %%a '
`, c.port, c.h.root)
}

// appendConf appends to postgresql.conf; later lines win.
func (c *pgCluster) appendConf(t *testing.T, conf string) {
	t.Helper()
	// The file belongs to the postgres user; root may still append.
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(conf); err != nil {
		t.Fatal(err)
	}
}

// pgCtl runs pg_ctl on the cluster; the server logs to c.logFile.
func (c *pgCluster) pgCtl(ctx context.Context, args ...string) error {
	_, err := c.h.run(ctx, "pg_ctl", append([]string{"-D", c.dir, "-l", c.logFile, "-w", "-t", "60"}, args...)...)
	return err
}

// start starts the server and waits until it accepts connections. The
// first start registers an immediate stop when the test ends.
func (c *pgCluster) start(t *testing.T) {
	t.Helper()
	if !c.registered {
		c.registered = true
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// Already stopped is fine: that answers an error.
			c.pgCtl(ctx, "-m", "immediate", "stop")
		})
	}
	if err := c.pgCtl(t.Context(), "start"); err != nil {
		t.Fatalf("%v\n%s", err, c.log())
	}
}

// log is the server's log, for failure messages.
func (c *pgCluster) log() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return fmt.Sprintf("(no log of %s: %v)", c.name, err)
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return fmt.Sprintf("--- log of Postgres %s (last 3000 bytes):\n%s", c.name, b)
}

// url is a URL of the database db on this server alone.
func (c *pgCluster) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// hostPort is the server's address, for multi-host URLs.
func (c *pgCluster) hostPort() string { return fmt.Sprintf("127.0.0.1:%d", c.port) }

// query runs one query on the server and hands each row to scan.
func (c *pgCluster) query(ctx context.Context, db, sql string, args []any, scan func(pgx.Rows) error) error {
	conn, err := pgx.Connect(ctx, c.url(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// exec runs one statement on the server.
func (c *pgCluster) exec(t *testing.T, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.url(db))
	if err != nil {
		t.Fatalf("connecting to %s: %v", c.name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s on %s: %v", sql, c.name, err)
	}
}

// migrateUsersd creates the database usersd on c and migrates it with the
// binary.
func migrateUsersd(t *testing.T, bin string, c *pgCluster) {
	t.Helper()
	c.exec(t, "postgres", "CREATE DATABASE usersd")
	mig := exec.Command(bin, "migrate", "--database-url", c.url("usersd"))
	mig.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if out, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("usersd migrate: %v\n%s", err, out)
	}
}

// faultResult is one request of the load.
type faultResult struct {
	transport  string // "http" or "grpc"
	reqID      string
	userID     string // of an acknowledged create
	outcome    string // "http 201", "grpc Unavailable", "client: …"
	ok         bool
	sent, done time.Time
	err        string // a failure's detail, for samples
}

// faultLoad is faultWriters creators, half over HTTP and half over gRPC
// (one connection each, no client-side retries), every create with its
// own request id, until stop.
type faultLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	results []faultResult
}

// startFaultLoad starts the creators against p; each request id starts
// with prefix.
func startFaultLoad(t *testing.T, p *usersdProc, prefix string) *faultLoad {
	l := &faultLoad{stop: make(chan struct{})}
	hc := newHTTPClient(t)
	hc.Timeout = 0 // each request has its context's guard
	grpcUsers := usersv1.NewUserServiceClient(newGRPCConn(t, p.GRPC))
	for w := range faultWriters {
		transport := "http"
		if w%2 == 1 {
			transport = "grpc"
		}
		l.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%s-%d-%d", prefix, transport, w, n)
				email := id + "@example.com"
				r := faultResult{transport: transport, reqID: id, sent: time.Now()}
				// No deadline goes with the request: usersd applies its
				// own (--request-timeout), which is what is tested. The
				// client gives up at the guard.
				ctx, cancel := context.WithCancel(context.Background())
				guard := time.AfterFunc(faultClientGuard, cancel)
				if transport == "http" {
					r.outcome, r.userID, r.err = httpCreateOutcome(ctx, hc, "http://"+p.HTTP+"/v1/users",
						`{"email":"`+email+`","displayName":"Fault"}`, id)
					r.ok = r.outcome == "http 201"
				} else {
					u, err := grpcUsers.CreateUser(ctx, &usersv1.CreateUserRequest{
						User: &usersv1.User{Email: email, DisplayName: "Fault"}, RequestId: id})
					switch st, isStatus := status.FromError(err); {
					case err == nil:
						r.outcome, r.ok, r.userID = "grpc OK", true, u.GetId()
					case ctx.Err() != nil:
						r.outcome, r.err = "client: gave up after "+faultClientGuard.String(), err.Error()
					case isStatus:
						r.outcome, r.err = "grpc "+st.Code().String(), st.Message()
					default:
						r.outcome, r.err = "client: "+errKind(err), err.Error()
					}
				}
				guard.Stop()
				cancel()
				r.done = time.Now()
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				time.Sleep(faultPace)
			}
		})
	}
	t.Cleanup(l.stopLoad) // after a Fatal; stopping twice is harmless
	return l
}

// httpCreateOutcome POSTs a create with Idempotency-Key key and returns
// the outcome's name, the user's id when 201, and a failure's detail.
func httpCreateOutcome(ctx context.Context, hc *http.Client, url, body, key string) (outcome, id, detail string) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return "client: " + err.Error(), "", err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "client: gave up after " + faultClientGuard.String(), "", err.Error()
		}
		return "client: " + errKind(err), "", err.Error()
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return "client: reading the body: " + errKind(err), "", err.Error()
	}
	outcome = fmt.Sprintf("http %d", res.StatusCode)
	if res.StatusCode == http.StatusServiceUnavailable && res.Header.Get("Retry-After") == "" {
		outcome += " without Retry-After"
	}
	if res.StatusCode != http.StatusCreated {
		return outcome, "", fmt.Sprintf("%.300s", raw)
	}
	var u struct{ ID string }
	if err := json.Unmarshal(raw, &u); err != nil || u.ID == "" {
		return "http 201 without an id", "", fmt.Sprintf("%.300s", raw)
	}
	return outcome, u.ID, ""
}

// stopLoad stops the creators and waits for their last requests.
func (l *faultLoad) stopLoad() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// snapshot returns the results so far.
func (l *faultLoad) snapshot() []faultResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// firstOKSentAfter returns when the first success among the requests sent
// at or after from was answered, and whether there is one.
func (l *faultLoad) firstOKSentAfter(from time.Time) (time.Time, bool) {
	var first time.Time
	for _, r := range l.snapshot() {
		if r.ok && !r.sent.Before(from) && (first.IsZero() || r.done.Before(first)) {
			first = r.done
		}
	}
	return first, !first.IsZero()
}

// firstFailAfter returns when the first failure among the requests sent
// at or after from was answered, and whether there is one yet.
func (l *faultLoad) firstFailAfter(from time.Time) (time.Time, bool) {
	var first time.Time
	for _, r := range l.snapshot() {
		if !r.ok && !r.sent.Before(from) && (first.IsZero() || r.done.Before(first)) {
			first = r.done
		}
	}
	return first, !first.IsZero()
}

// waitOKAfter waits up to limit for a success among the requests sent at
// or after from, and returns when it was answered.
func (l *faultLoad) waitOKAfter(from time.Time, limit time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(limit)
	for {
		if at, ok := l.firstOKSentAfter(from); ok {
			return at, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faultPhase is a span of send times and its name.
type faultPhase struct {
	name string
	from time.Time // requests sent at or after from, up to the next phase
}

// faultReport counts the load's answers per phase (by send time) and
// outcome, and checks the rules every fault test shares: no 500 (nor
// gRPC INTERNAL or UNKNOWN) ever; every failure is one a client may retry
// (503 with Retry-After, 504, UNAVAILABLE, DEADLINE_EXCEEDED); no answer
// later than usersd's deadline; every request sent in the last tail of
// the run succeeded. It returns the acknowledged creates, request id →
// user id.
func faultReport(t *testing.T, rs []faultResult, phases []faultPhase, tail time.Duration) map[string]string {
	t.Helper()
	allowed := map[string]bool{"http 503": true, "http 504": true, "grpc Unavailable": true, "grpc DeadlineExceeded": true}
	counts := make([]map[string]int, len(phases))
	for i := range counts {
		counts[i] = map[string]int{}
	}
	acked := map[string]string{}
	var bad, late []string
	var slowest time.Duration
	var end time.Time
	for _, r := range rs {
		end = maxTime(end, r.sent)
	}
	tailFailed := 0
	for _, r := range rs {
		i := 0
		for j, p := range phases {
			if !r.sent.Before(p.from) {
				i = j
			}
		}
		counts[i][r.outcome]++
		took := r.done.Sub(r.sent)
		slowest = max(slowest, took)
		if r.ok {
			acked[r.reqID] = r.userID
			continue
		}
		at := fmt.Sprintf("%s (sent %s, answered after %v): %s: %.200s", r.reqID, r.sent.Format("15:04:05.000"), took.Round(time.Millisecond), r.outcome, r.err)
		if !allowed[r.outcome] && len(bad) < 10 {
			bad = append(bad, at)
		}
		if took > faultRequestTimeout+faultSlack && len(late) < 10 {
			late = append(late, at)
		}
		if end.Sub(r.sent) < tail {
			tailFailed++
		}
	}
	for i, p := range phases {
		keys := make([]string, 0, len(counts[i]))
		total := 0
		for k, n := range counts[i] {
			keys = append(keys, fmt.Sprintf("%s: %d", k, n))
			total += n
		}
		sort.Strings(keys)
		t.Logf("answers to requests sent %s: %d: %s", p.name, total, strings.Join(keys, ", "))
	}
	t.Logf("slowest answer: %v (usersd's deadline %v)", slowest.Round(time.Millisecond), faultRequestTimeout)
	if len(bad) > 0 {
		t.Errorf("answers that are neither a success nor a retryable 503/504/UNAVAILABLE/DEADLINE_EXCEEDED (first %d):\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	if len(late) > 0 {
		t.Errorf("requests answered more than %v after usersd's deadline of %v (first %d):\n  %s", faultSlack, faultRequestTimeout, len(late), strings.Join(late, "\n  "))
	}
	if tailFailed > 0 {
		t.Errorf("%d requests sent in the last %v of the run failed: writes did not recover", tailFailed, tail)
	}
	return acked
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// wantStored checks that every acknowledged create is on c: the user, and
// its request id pointing at it.
func wantStored(t *testing.T, c *pgCluster, acked map[string]string) {
	t.Helper()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	got := map[string]string{}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err := c.query(ctx, "usersd", `SELECT k.request_id, u.id::text FROM idempotency_keys k JOIN users u ON u.id = k.user_id WHERE k.request_id = ANY($1)`,
		[]any{ids}, func(rows pgx.Rows) error {
			var req, user string
			if err := rows.Scan(&req, &user); err != nil {
				return err
			}
			got[req] = user
			return nil
		})
	if err != nil {
		t.Fatalf("reading the acknowledged creates from %s: %v", c.name, err)
	}
	var lost []string
	for req, user := range acked {
		if got[req] != user {
			lost = append(lost, fmt.Sprintf("%s → %s (stored: %q)", req, user, got[req]))
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		t.Errorf("%d of %d acknowledged creates are not on %s; first: %s", len(lost), len(acked), c.name, strings.Join(lost[:min(len(lost), 10)], "; "))
	} else {
		t.Logf("all %d acknowledged creates are on %s, each under its request id", len(acked), c.name)
	}
}

// TestFaultsPostgresRestart restarts Postgres with `pg_ctl restart -m
// immediate` under 8 creators: no answer is a 500, every failure is a
// retryable 503/504 (or UNAVAILABLE/DEADLINE_EXCEEDED) within usersd's
// deadline, every acknowledged create is stored, and writes succeed again
// within restartRecoveryBound of the restart command.
func TestFaultsPostgresRestart(t *testing.T) {
	skipUnlessFaultTests(t)
	bin := buildUsersd(t)
	h := newPGHost(t)
	pg := h.newPGCluster(t, "pg", "")
	pg.start(t)
	migrateUsersd(t, bin, pg)

	p := startUsersd(t, bin, "--database-url", pg.url("usersd"), "--migrate=false",
		"--request-timeout", faultRequestTimeout.String())
	load := startFaultLoad(t, p, "restart")
	start := time.Now()
	if _, ok := load.waitOKAfter(start, 10*time.Second); !ok {
		t.Fatalf("no create succeeded before the fault\n%s", p.output())
	}
	time.Sleep(3 * time.Second)

	restartAt := time.Now()
	if err := pg.pgCtl(t.Context(), "-m", "immediate", "restart"); err != nil {
		t.Fatalf("%v\n%s", err, pg.log())
	}
	upAt := time.Now()
	t.Logf("pg_ctl restart -m immediate took %v", upAt.Sub(restartAt).Round(time.Millisecond))
	// Requests sent between the command and the server's stop still
	// succeed: recovery counts from the first failure the load saw.
	downAt, ok := load.firstFailAfter(restartAt)
	if !ok {
		t.Fatalf("no request failed after the restart: the fault was not seen\n%s", p.output())
	}
	okAt, ok := load.waitOKAfter(downAt, 30*time.Second)
	if !ok {
		load.stopLoad()
		faultReport(t, load.snapshot(), []faultPhase{{"before the restart", start}, {"after the restart command", restartAt}}, 0)
		t.Fatalf("no create succeeded within 30s of the restart\n%s\n%s", p.output(), pg.log())
	}
	recovery := okAt.Sub(restartAt)
	t.Logf("first failure %v after the restart command; first successful write sent after it: %v after the restart command (%v after pg_ctl reported the server up)",
		downAt.Sub(restartAt).Round(time.Millisecond), recovery.Round(time.Millisecond), okAt.Sub(upAt).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	load.stopLoad()

	acked := faultReport(t, load.snapshot(), []faultPhase{
		{"before the restart", start},
		{"from the restart command to the first failure", restartAt},
		{"from the first failure to the first successful write", downAt},
		{"after the first successful write", okAt},
	}, time.Second)
	if recovery > restartRecoveryBound {
		t.Errorf("writes succeeded again %v after the restart command, want within %v", recovery, restartRecoveryBound)
	}
	wantStored(t, pg, acked)
	if t.Failed() {
		t.Logf("usersd:\n%s\n%s", p.output(), pg.log())
	}
}

// hookReceiver is a webhook endpoint that verifies each delivery's
// signature and records the users whose user.created event arrived.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	bad    int
	users  map[string]time.Time // data.userId of user.created → first arrival
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{users: map[string]time.Time{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		secret := r.secret
		r.mu.Unlock()
		if wh, err := standardwebhooks.NewWebhook(secret); err != nil || wh.Verify(body, req.Header) != nil {
			r.mu.Lock()
			r.bad++
			r.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev struct {
			Type string
			Data struct{ UserID string }
		}
		json.Unmarshal(body, &ev)
		r.mu.Lock()
		if _, seen := r.users[ev.Data.UserID]; ev.Type == "user.created" && !seen {
			r.users[ev.Data.UserID] = time.Now()
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// missing returns the users of ids whose user.created has not arrived.
func (r *hookReceiver) missing(ids []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, id := range ids {
		if _, ok := r.users[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// TestFaultsFailover runs usersd on a two-host URL over a primary and its
// synchronous streaming standby under 8 creators, takes the primary away
// and promotes the standby (`pg_ctl promote`). The primary goes away in
// two ways, one subtest each: stopped with `pg_ctl stop -m immediate`
// (its port refuses connections), and frozen with SIGSTOP (a hung host or
// a partition: connections hang). In both:
//
//   - usersd serves writes again, without a restart, within
//     failoverRecoveryBound of `pg_ctl promote` (frozen:
//     frozenFailoverRecoveryBound);
//   - every acknowledged create is on the new primary;
//   - while the primary was gone the answers were 503/504 (UNAVAILABLE,
//     DEADLINE_EXCEEDED over gRPC), never 500, each within usersd's
//     deadline;
//   - GetUser through the Go client (which retries UNAVAILABLE) is
//     counted through the failover;
//   - an import started after the promotion completes, and the webhook
//     subscribed before the fault receives the user.created of every
//     acknowledged create, those after the promotion included.
func TestFaultsFailover(t *testing.T) {
	skipUnlessFaultTests(t)
	bin := buildUsersd(t)
	// stopped: `pg_ctl stop -m immediate`; the old primary's port refuses
	// connections. frozen: every process of the old primary is sent
	// SIGSTOP, as a hung host or a network partition looks to a client:
	// connections are accepted by the kernel and never answered, and
	// statements on open connections never return.
	for _, mode := range []string{"stopped", "frozen"} {
		t.Run(mode, func(t *testing.T) { testFailover(t, bin, mode) })
	}
}

func testFailover(t *testing.T, bin, mode string) {
	h := newPGHost(t)
	primary := h.newPGCluster(t, "primary", "synchronous_standby_names = 'standby'\n")
	primary.start(t)

	// The standby: a base backup of the primary with its recovery settings
	// (-R), streaming as application_name "standby", the primary's one
	// synchronous standby. The backup copies the primary's postgresql.conf;
	// the standby gets its own port and no synchronous standby of its own
	// (see docs/operations.md: once promoted, it would wait on every commit
	// for a standby that does not exist).
	standby := &pgCluster{h: h, name: "standby", dir: filepath.Join(h.root, "standby"), logFile: filepath.Join(h.root, "standby.log"), port: freePort(t), t: t}
	if _, err := h.run(t.Context(), "pg_basebackup", "-D", standby.dir, "-R", "-X", "stream", "-c", "fast",
		"-d", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=standby", primary.port)); err != nil {
		t.Fatal(err)
	}
	auto, err := os.ReadFile(filepath.Join(standby.dir, "postgresql.auto.conf"))
	if err != nil || !strings.Contains(string(auto), "application_name=standby") {
		t.Fatalf("pg_basebackup -R wrote no primary_conninfo with application_name=standby (%v):\n%s", err, auto)
	}
	standby.appendConf(t, standby.baseConf()+"synchronous_standby_names = ''\n")
	standby.start(t)
	waitSync(t, primary)

	migrateUsersd(t, bin, primary)
	url := fmt.Sprintf("postgres://postgres@%s,%s/usersd?sslmode=disable&target_session_attrs=read-write", primary.hostPort(), standby.hostPort())
	if mode == "frozen" {
		// Each connection broken by a deadline on the frozen primary keeps
		// its pool slot up to 15 s (pgconn sends that host a cancel
		// request and pgxpool waits for it): pgx's default of 4 slots on
		// a two-core machine would be all dying ones for about 20 s. See
		// docs/operations.md, "Failover".
		url += "&pool_max_conns=20"
	}
	args := []string{"--database-url", url, "--migrate=false",
		"--request-timeout", faultRequestTimeout.String(),
		"--webhook-allow-private", "--event-relay-interval", "100ms",
		// Frequent polls and a high rate limit: the few thousand
		// creates of the run arrive well within the wait below.
		"--job-poll-interval", "50ms", "--webhook-workers", "16",
		"--webhook-rate", "1000", "--webhook-burst", "1000"}
	if mode == "frozen" {
		// A job whose statement went to the frozen primary waits for its
		// timeout, half the lease (2.5 min by default), before it fails
		// and is retried; a 20 s lease bounds that by 10 s.
		args = append(args, "--job-lease", "20s")
	}
	p := startUsersd(t, bin, args...)
	hc := newHTTPClient(t)

	recv := newHookReceiver(t)
	hook, err := httpCall(t.Context(), hc, "POST", "http://"+p.HTTP+"/v1/webhooks", `{"url":"`+recv.srv.URL+`","enabled":true}`, http.StatusCreated)
	if err != nil {
		t.Fatalf("creating the webhook: %v", err)
	}
	secret, _ := hook["secret"].(string)
	recv.mu.Lock()
	recv.secret = secret
	recv.mu.Unlock()

	// Users for the Go client's reads.
	conn, err := client.Dial(t.Context(), p.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var seeds []string
	for i := range 5 {
		u, err := conn.V1().CreateUser(t.Context(), &usersv1.CreateUserRequest{RequestId: fmt.Sprintf("seed-%d", i),
			User: &usersv1.User{Email: fmt.Sprintf("seed%d@example.com", i), DisplayName: "Seed"}})
		if err != nil {
			t.Fatalf("seeding: %v", err)
		}
		seeds = append(seeds, u.GetId())
	}
	reads := startClientReads(conn, seeds)
	t.Cleanup(reads.stopReads)

	load := startFaultLoad(t, p, "failover")
	start := time.Now()
	if _, ok := load.waitOKAfter(start, 10*time.Second); !ok {
		t.Fatalf("no create succeeded before the fault\n%s", p.output())
	}
	time.Sleep(3 * time.Second)

	stopAt := time.Now()
	if mode == "frozen" {
		primary.freeze(t)
		t.Logf("primary frozen (SIGSTOP to all its processes) in %v", time.Since(stopAt).Round(time.Millisecond))
	} else {
		if err := primary.pgCtl(t.Context(), "-m", "immediate", "stop"); err != nil {
			t.Fatalf("%v\n%s", err, primary.log())
		}
		t.Logf("primary stopped (-m immediate) in %v", time.Since(stopAt).Round(time.Millisecond))
	}
	// Requests sent until the command returned may have been answered by
	// the old primary; the outage counts from then.
	downAt := time.Now()
	// The primary stays away a while before the promotion, as it would
	// while a failover manager makes up its mind.
	time.Sleep(2 * time.Second)
	promoteAt := time.Now()
	if err := standby.pgCtl(t.Context(), "promote"); err != nil {
		t.Fatalf("%v\n%s", err, standby.log())
	}
	promotedAt := time.Now()
	t.Logf("pg_ctl promote took %v", promotedAt.Sub(promoteAt).Round(time.Millisecond))

	okAt, ok := load.waitOKAfter(promoteAt, 40*time.Second)
	if !ok {
		load.stopLoad()
		reads.stopReads()
		faultReport(t, load.snapshot(), []faultPhase{{"before the fault", start}, {"after the primary was " + mode, stopAt}, {"after pg_ctl promote", promoteAt}}, 0)
		t.Fatalf("no create succeeded within 40s of the promotion\n%s\n%s", p.output(), standby.log())
	}
	recovery := okAt.Sub(promoteAt)
	firstAny, _ := load.firstOKSentAfter(downAt)
	t.Logf("first successful write %v after pg_ctl promote was run (%v after it returned; %v after the primary was taken away; first success of a request sent after the primary was %s: %v after that)",
		recovery.Round(time.Millisecond), okAt.Sub(promotedAt).Round(time.Millisecond), okAt.Sub(stopAt).Round(time.Millisecond), mode, firstAny.Sub(downAt).Round(time.Millisecond))

	// Jobs after the failover: an import started now completes.
	ic := newImport(t, "import-after-failover", "imported", 500)
	importAt := time.Now()
	name := startImport(t, hc, p, ic)
	op := waitDone(t, hc, p, name, 30*time.Second)
	if md := op.Metadata; md.Total != ic.total || md.Imported != ic.imported || md.Failed != ic.failedRows {
		t.Errorf("import after the failover: total %d, imported %d, failed %d; want %d, %d, %d", md.Total, md.Imported, md.Failed, ic.total, ic.imported, ic.failedRows)
	}
	t.Logf("import of %d rows started %v after the promotion, done in %v", ic.total, importAt.Sub(promoteAt).Round(time.Millisecond), time.Since(importAt).Round(time.Millisecond))
	time.Sleep(time.Second)
	load.stopLoad()
	reads.stopReads()

	acked := faultReport(t, load.snapshot(), []faultPhase{
		{"before the fault", start},
		{"while the primary was being " + mode, stopAt},
		{"while the primary was " + mode + ", before pg_ctl promote", downAt},
		{"from pg_ctl promote to the first successful write", promoteAt},
		{"after the first successful write", okAt},
	}, time.Second)
	bound := failoverRecoveryBound
	if mode == "frozen" {
		bound = frozenFailoverRecoveryBound
	}
	if recovery > bound {
		t.Errorf("writes succeeded again %v after pg_ctl promote, want within %v", recovery, bound)
	}
	wantStored(t, standby, acked)
	reads.report(t, stopAt)

	// Events: the user.created of every acknowledged create, before, during
	// and after the failover, reaches the webhook subscribed before it.
	var afterPromotion, all []string
	for _, r := range load.snapshot() {
		if r.ok {
			all = append(all, r.userID)
			if !r.sent.Before(promoteAt) {
				afterPromotion = append(afterPromotion, r.userID)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(recv.missing(all)) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	recv.mu.Lock()
	bad := recv.bad
	recv.mu.Unlock()
	if m := recv.missing(all); len(m) > 0 {
		t.Errorf("webhook: %d of %d acknowledged creates (%d of the %d after the promotion) have no user.created delivered within 60s; first: %v",
			len(m), len(all), len(recv.missing(afterPromotion)), len(afterPromotion), m[:min(len(m), 5)])
		logUnfinishedDeliveries(t, fmt.Sprintf("postgres://postgres@%s/usersd?sslmode=disable", standby.hostPort()))
	} else {
		t.Logf("webhook: the user.created of all %d acknowledged creates delivered (%d after the promotion)", len(all), len(afterPromotion))
	}
	if bad > 0 {
		t.Errorf("webhook: %d deliveries with a bad signature", bad)
	}
	if t.Failed() {
		t.Logf("usersd:\n%s\n%s\n%s", p.output(), primary.log(), standby.log())
	}
}

// freeze sends SIGSTOP to the server's postmaster, then to every child of
// it (the postmaster first, so that it forks no new one), and registers a
// SIGCONT for when the test ends (before the cluster's stop).
func (c *pgCluster) freeze(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	stopped := map[int]bool{}
	t.Cleanup(func() {
		for pid := range stopped {
			syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	stop := func(pid int) {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %d: %v", pid, err)
		}
		stopped[pid] = true
	}
	stop(postmaster)
	// A child forked just before the postmaster stopped may not be in the
	// first scan: scan until one finds nothing new.
	for found := true; found; {
		found = false
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || stopped[pid] {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid …; comm may hold spaces, not ')'.
			i := strings.LastIndexByte(string(stat), ')')
			if f := strings.Fields(string(stat)[i+1:]); i > 0 && len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
				stop(pid)
				found = true
			}
		}
	}
	t.Logf("froze %d processes of %s", len(stopped), c.name)
}

// waitSync waits until the primary reports its standby as synchronous.
func waitSync(t *testing.T, primary *pgCluster) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for {
		var got []string
		err := primary.query(t.Context(), "postgres", "SELECT application_name, sync_state FROM pg_stat_replication", nil, func(rows pgx.Rows) error {
			var name, state string
			if err := rows.Scan(&name, &state); err != nil {
				return err
			}
			got = append(got, name+"="+state)
			return nil
		})
		last = fmt.Sprintf("%v (err %v)", got, err)
		if err == nil && slices.Contains(got, "standby=sync") {
			t.Logf("pg_stat_replication: %v", got)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby is not synchronous after 30s: pg_stat_replication %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientReads calls GetUser through the Go client (its service config
// retries UNAVAILABLE) in a loop and records the outcomes with their times.
type clientReads struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	res  []clientRead
}

type clientRead struct {
	sent, done time.Time
	outcome    string
}

func startClientReads(conn *client.Conn, ids []string) *clientReads {
	r := &clientReads{stop: make(chan struct{})}
	r.wg.Go(func() {
		for n := 0; ; n++ {
			select {
			case <-r.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// The client's default deadline (client.DefaultTimeout) applies.
			sent := time.Now()
			u, err := conn.V1().GetUser(context.Background(), &usersv1.GetUserRequest{Id: ids[n%len(ids)]})
			outcome := "OK"
			switch {
			case err != nil:
				outcome = status.Code(err).String()
			case u.GetId() != ids[n%len(ids)]:
				outcome = "wrong user"
			}
			r.mu.Lock()
			r.res = append(r.res, clientRead{sent: sent, done: time.Now(), outcome: outcome})
			r.mu.Unlock()
		}
	})
	return r
}

func (r *clientReads) stopReads() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	r.wg.Wait()
}

// report logs the Go client's GetUser outcomes around the fault and fails
// on any other than OK, UNAVAILABLE (after its retries) or
// DEADLINE_EXCEEDED.
func (r *clientReads) report(t *testing.T, faultAt time.Time) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	before, after := map[string]int{}, map[string]int{}
	var slowest time.Duration
	var firstFail, lastFail time.Time
	for _, c := range r.res {
		m := before
		if !c.sent.Before(faultAt) {
			m = after
		}
		m[c.outcome]++
		slowest = max(slowest, c.done.Sub(c.sent))
		if c.outcome != "OK" {
			if firstFail.IsZero() {
				firstFail = c.sent
			}
			lastFail = c.done
		}
		// DEADLINE_EXCEEDED is the client's own deadline
		// (client.DefaultTimeout, sent with the call) on a statement that
		// went to a frozen primary; gRPC does not retry it.
		if c.outcome != "OK" && c.outcome != "Unavailable" && c.outcome != "DeadlineExceeded" {
			t.Errorf("Go client GetUser sent at %s: %s, want OK, UNAVAILABLE or DEADLINE_EXCEEDED", c.sent.Format("15:04:05.000"), c.outcome)
		}
	}
	window := "none failed"
	if !firstFail.IsZero() {
		window = fmt.Sprintf("failures from +%v to +%v", firstFail.Sub(faultAt).Round(time.Millisecond), lastFail.Sub(faultAt).Round(time.Millisecond))
	}
	t.Logf("Go client GetUser (retries UNAVAILABLE up to 4 attempts): before the fault %v; after it %v; %s; slowest %v",
		before, after, window, slowest.Round(time.Millisecond))
}

// logUnfinishedDeliveries logs the webhook delivery jobs of the database at
// dbURL that are not completed, to say where missing deliveries stopped.
func logUnfinishedDeliveries(t *testing.T, dbURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Logf("reading the delivery jobs: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT format('%s %s attempt %s by %s at %s: %s', id, state, attempt, attempted_by, attempted_at, errors)
		FROM river_job WHERE kind IN ('deliver_webhook', 'deliver_webhook_batch') AND state <> 'completed' ORDER BY id LIMIT 50`)
	if err != nil {
		t.Logf("reading the delivery jobs: %v", err)
		return
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	t.Logf("delivery jobs not completed (%v):\n%s", err, strings.Join(lines, "\n"))
}
