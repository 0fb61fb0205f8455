package main

// Scale-out on the real binary: three serve replicas on 127.0.0.2-4 sharing
// one Postgres database and one port per server, the way pods behind a
// headless Service do, and one gateway in front of them; load through the
// gateway (HTTP) and through the Go client (gRPC, round-robin).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/client"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// The shutdown settings of the replicas: the delay is longer than the
// interval at which grpc.health.v1 Watch re-evaluates readiness (1s), so
// clients that watch health leave a replica before it stops listening.
const (
	replicaShutdownDelay   = 2 * time.Second
	replicaShutdownTimeout = 10 * time.Second
)

// Clients watching grpc.health.v1 hear NOT_SERVING within Watch's poll
// interval (1s) after SIGTERM; from healthLeft after SIGTERM until just
// before the listeners close, a replica must answer (almost) no new RPCs.
const (
	healthLeft  = 1300 * time.Millisecond
	lateWindow  = replicaShutdownDelay - 200*time.Millisecond
	maxLateRPCs = 10
)

var replicaHosts = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}

// sharedPorts returns n distinct ports free on every host at once.
func sharedPorts(t *testing.T, hosts []string, n int) []string {
	t.Helper()
	var ports []string
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 50 {
			t.Fatalf("no port free on all of %v after 50 tries", hosts)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatalf("listening on %s: %v", hosts[0], err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		ls := []net.Listener{l}
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, port))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		held = append(held, ls...)
		if len(ls) == len(hosts) {
			ports = append(ports, port)
		}
	}
	return ports
}

// startGatewayProc starts "usersd gateway" on 127.0.0.1:0 ports in front of
// upstream; it is killed when the test ends if it is still running.
func startGatewayProc(t *testing.T, bin, upstream string) *usersdProc {
	t.Helper()
	return startProc(t, bin, []string{"gateway", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--shutdown-delay", "0", "--upstream", upstream}, "http", "admin")
}

// handledOK reads a replica's /metrics: the users.* RPCs it answered OK.
func handledOK(hc *http.Client, admin string) (float64, error) {
	res, err := hc.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("/metrics: status %d", res.StatusCode)
	}
	var sum float64
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "grpc_server_handled_total{") || !strings.Contains(l, `grpc_code="OK"`) || !strings.Contains(l, `grpc_service="users.`) {
			continue
		}
		_, v, ok := strings.Cut(l, "} ")
		if !ok {
			return 0, fmt.Errorf("/metrics: cannot parse %q", l)
		}
		f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("/metrics: %q: %v", l, err)
		}
		sum += f
	}
	return sum, sc.Err()
}

// replicaSet is the replicas and the gateway of TestReplicas.
type replicaSet struct {
	bin, dbURL                  string
	grpcPort, httpPort, admPort string
	procs                       []*usersdProc
	hc                          *http.Client
}

func (rs *replicaSet) admin(i int) string { return net.JoinHostPort(replicaHosts[i], rs.admPort) }

// start starts replica i; it is killed when t ends if it is still running.
func (rs *replicaSet) start(t *testing.T, i int) {
	t.Helper()
	h := replicaHosts[i]
	rs.procs[i] = startUsersd(t, rs.bin, "--database-url", rs.dbURL, "--migrate=false",
		"--grpc-addr", net.JoinHostPort(h, rs.grpcPort), "--http-addr", net.JoinHostPort(h, rs.httpPort),
		"--admin-addr", net.JoinHostPort(h, rs.admPort),
		"--shutdown-delay", replicaShutdownDelay.String(), "--shutdown-timeout", replicaShutdownTimeout.String())
}

// handled reads every replica's handled count.
func (rs *replicaSet) handled(t *testing.T) []float64 {
	t.Helper()
	out := make([]float64, len(replicaHosts))
	for i := range replicaHosts {
		n, err := handledOK(rs.hc, rs.admin(i))
		if err != nil {
			t.Fatalf("replica %s: %v", replicaHosts[i], err)
		}
		out[i] = n
	}
	return out
}

// waitTraffic waits until replica i has answered at least n more RPCs than
// from, and returns how long that took.
func (rs *replicaSet) waitTraffic(t *testing.T, i int, from, n float64) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for {
		got, err := handledOK(rs.hc, rs.admin(i))
		if err == nil && got-from >= n {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s answered %v RPCs in 15s (err %v), want %v: clients did not come back to it\n%s",
				replicaHosts[i], got-from, err, n, rs.procs[i].output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Request kinds of the load.
const (
	kindRead     = "read"          // GetUser, ListUsers (GET)
	kindCreateID = "create+id"     // CreateUser with a request id (POST with Idempotency-Key)
	kindCreate   = "create-no-id"  // CreateUser without one: not idempotent
	transGRPC    = "grpc"          // through the Go client
	transHTTP    = "http(gateway)" // through the gateway
)

// replicaLoad is bounded load: a few workers per transport, each paced,
// until stop.
type replicaLoad struct {
	phase  string
	noID   bool // also send creates without a request id
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	ok     map[string]int // transport/kind
	failed map[string]int // transport/kind
	errs   map[string]int // transport/kind: error
	sample []string
}

func (l *replicaLoad) record(transport, kind string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := transport + "/" + kind
	if err == nil {
		l.ok[key]++
		return
	}
	l.failed[key]++
	l.errs[key+": "+errKind(err)]++
	if len(l.sample) < 10 {
		l.sample = append(l.sample, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), key, err))
	}
}

// total returns the requests that succeeded and failed, idempotent kinds
// and non-idempotent apart.
func (l *replicaLoad) total() (ok, failedIdem, failedOther int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.ok {
		ok += n
	}
	for k, n := range l.failed {
		if strings.HasSuffix(k, "/"+kindCreate) {
			failedOther += n
		} else {
			failedIdem += n
		}
	}
	return ok, failedIdem, failedOther
}

func (l *replicaLoad) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("ok %v; failed %v; errors %v", l.ok, l.failed, l.errs)
}

// startLoad runs workers per transport until the returned load is stopped.
func startLoad(conn *client.Conn, hc *http.Client, gw, phase string, ids []string, noID bool) *replicaLoad {
	const (
		workers = 3
		pace    = 3 * time.Millisecond
	)
	l := &replicaLoad{phase: phase, noID: noID, stop: make(chan struct{}),
		ok: map[string]int{}, failed: map[string]int{}, errs: map[string]int{}}
	users := conn.V1()
	kinds := []string{kindRead, kindRead, kindCreateID}
	if noID {
		kinds = append(kinds, kindCreate)
	}
	stopped := func() bool {
		select {
		case <-l.stop:
			return true
		default:
			return false
		}
	}
	for w := range workers {
		l.wg.Go(func() {
			for n := 0; !stopped(); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				kind := kinds[(w+n)%len(kinds)]
				var err error
				switch kind {
				case kindRead:
					if n%2 == 0 {
						id := ids[(w+n)%len(ids)]
						var u *usersv1.User
						if u, err = users.GetUser(ctx, &usersv1.GetUserRequest{Id: id}); err == nil && u.GetId() != id {
							err = fmt.Errorf("GetUser(%s) answered %s", id, u.GetId())
						}
					} else {
						var page *usersv1.ListUsersResponse
						if page, err = users.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 10}); err == nil && len(page.GetUsers()) == 0 {
							err = errors.New("ListUsers answered no users")
						}
					}
				case kindCreateID, kindCreate:
					req := &usersv1.CreateUserRequest{User: &usersv1.User{
						Email: fmt.Sprintf("%s-grpc-%d-%d@example.com", phase, w, n), DisplayName: "Load"}}
					if kind == kindCreateID {
						req.RequestId = fmt.Sprintf("%s-grpc-%d-%d", phase, w, n)
					}
					var u *usersv1.User
					if u, err = users.CreateUser(ctx, req); err == nil && u.GetId() == "" {
						err = errors.New("CreateUser answered no id")
					}
				}
				cancel()
				l.record(transGRPC, kind, err)
				time.Sleep(pace)
			}
		})
		l.wg.Go(func() {
			base := "http://" + gw
			for n := 0; !stopped(); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				kind := kinds[(w+n)%len(kinds)]
				var err error
				switch kind {
				case kindRead:
					id := ids[(w+n)%len(ids)]
					var u map[string]any
					if u, err = httpCall(ctx, hc, "GET", base+"/v1/users/"+id, "", http.StatusOK); err == nil && u["id"] != id {
						err = fmt.Errorf("GET %s answered %v", id, u["id"])
					}
				case kindCreateID, kindCreate:
					body := fmt.Sprintf(`{"email":"%s-http-%d-%d@example.com","displayName":"Load"}`, phase, w, n)
					key := ""
					if kind == kindCreateID {
						key = fmt.Sprintf("%s-http-%d-%d", phase, w, n)
					}
					err = httpCreate(ctx, hc, base+"/v1/users", body, key)
				}
				cancel()
				l.record(transHTTP, kind, err)
				time.Sleep(pace)
			}
		})
	}
	return l
}

// stopLoad stops the workers and waits for their last requests.
func (l *replicaLoad) stopLoad() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// httpCreate POSTs a user, with the Idempotency-Key key unless empty, and
// wants 201 and an id.
func httpCreate(ctx context.Context, hc *http.Client, url, body, key string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d, want 201: %.200s", res.StatusCode, raw)
	}
	if !strings.Contains(string(raw), `"id"`) {
		return fmt.Errorf("no id in %.200s", raw)
	}
	return nil
}

// TestReplicas runs three serve replicas and a gateway, real binaries on
// loopback sharing one Postgres database, under load through the gateway
// and the Go client, in three phases on the same replica set:
//
//   - Spread: round-robin gives each replica its share of the RPCs, within
//     ±20% of the mean, read from each replica's /metrics.
//   - RollingRestart: SIGTERM each replica in turn and start it again, under
//     load that includes non-idempotent creates: no request fails, because
//     clients watch grpc.health.v1 and leave a replica during its shutdown
//     delay, and a graceful stop's GOAWAY makes gRPC retry transparently
//     the calls that had not started.
//   - Kill9: SIGKILL one replica under load: idempotent calls (reads and
//     creates with a request id) all succeed after the client's retries;
//     the failures of non-idempotent creates are reported.
//
// It takes about a minute, so it runs only with USERSD_TEST_REPLICAS=1
// (make test-replicas).
func TestReplicas(t *testing.T) {
	if os.Getenv("USERSD_TEST_REPLICAS") != "1" {
		t.Skip("multi-replica test: set USERSD_TEST_REPLICAS=1 (make test-replicas)")
	}
	dbURL := pgtest.NewDatabase(t)
	bin := buildUsersd(t)

	mig := exec.Command(bin, "migrate", "--database-url", dbURL)
	mig.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if out, err := mig.CombinedOutput(); err != nil {
		t.Fatalf("usersd migrate: %v\n%s", err, out)
	}

	ports := sharedPorts(t, replicaHosts, 3)
	rs := &replicaSet{bin: bin, dbURL: dbURL, grpcPort: ports[0], httpPort: ports[1], admPort: ports[2],
		procs: make([]*usersdProc, len(replicaHosts)), hc: newHTTPClient(t)}
	for i := range replicaHosts {
		rs.start(t, i)
	}
	var targets []string
	for _, h := range replicaHosts {
		targets = append(targets, net.JoinHostPort(h, rs.grpcPort))
	}
	target := "static:///" + strings.Join(targets, ",")
	t.Logf("replicas: gRPC %s, HTTP port %s, admin port %s", target, rs.httpPort, rs.admPort)
	gw := startGatewayProc(t, bin, target)

	conn, err := client.Dial(context.Background(), target)
	if err != nil {
		t.Fatalf("client.Dial(%s) = %v", target, err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := newHTTPClient(t)

	var ids []string
	for i := range 10 {
		u, err := conn.V1().CreateUser(context.Background(), &usersv1.CreateUserRequest{
			User: &usersv1.User{Email: fmt.Sprintf("seed%d@example.com", i), DisplayName: "Seed"}, RequestId: fmt.Sprintf("seed-%d", i)})
		if err != nil {
			t.Fatalf("seeding: %v", err)
		}
		ids = append(ids, u.GetId())
	}

	// check fails the test if idempotent requests failed, or any request when
	// all must succeed.
	check := func(l *replicaLoad, allMustSucceed bool) {
		t.Helper()
		ok, idem, other := l.total()
		if ok == 0 {
			t.Errorf("%s: no request succeeded", l.phase)
		}
		if idem > 0 || (allMustSucceed && other > 0) {
			t.Errorf("%s: %d idempotent and %d non-idempotent requests failed: %v\nfirst failures:\n  %s",
				l.phase, idem, other, l, strings.Join(l.sample, "\n  "))
		}
	}

	// (a) Spread. Warm up until every replica serves both clients' traffic.
	t.Log("=== phase Spread")
	load := startLoad(conn, hc, gw.HTTP, "spread", ids, false)
	t.Cleanup(load.stopLoad) // after a Fatal; stopping twice is harmless
	before := rs.handled(t)
	for i := range replicaHosts {
		rs.waitTraffic(t, i, before[i], 20)
	}
	time.Sleep(500 * time.Millisecond)
	before = rs.handled(t)
	const window = 3 * time.Second
	time.Sleep(window)
	after := rs.handled(t)
	load.stopLoad()
	var sum float64
	deltas := make([]float64, len(after))
	for i := range after {
		deltas[i] = after[i] - before[i]
		sum += deltas[i]
	}
	mean := sum / float64(len(deltas))
	var report []string
	for i, d := range deltas {
		dev := (d - mean) / mean
		report = append(report, fmt.Sprintf("%s: %.0f (%.1f%%, %+.1f%% from the mean)", replicaHosts[i], d, 100*d/sum, 100*dev))
		if mean == 0 || math.Abs(dev) > 0.20 {
			t.Errorf("Spread: replica %s answered %.0f RPCs in %v, %+.1f%% from the mean %.1f; want within ±20%%", replicaHosts[i], d, window, 100*dev, mean)
		}
	}
	t.Logf("Spread: RPCs answered OK per replica in %v (grpc_server_handled_total, users.*): %s; total %.0f", window, strings.Join(report, "; "), sum)
	check(load, true)
	t.Logf("Spread: load %v", load)

	// (b) Rolling restart.
	t.Log("=== phase RollingRestart")
	load = startLoad(conn, hc, gw.HTTP, "rolling", ids, true)
	t.Cleanup(load.stopLoad) // after a Fatal; stopping twice is harmless
	time.Sleep(500 * time.Millisecond)
	rollStart := time.Now()
	for i := range replicaHosts {
		p := rs.procs[i]
		sigterm := p.signal(t, syscall.SIGTERM)
		// Both clients watch health: they leave the replica during its
		// shutdown delay, well before its listeners close.
		time.Sleep(time.Until(sigterm.Add(healthLeft)))
		left, errLeft := handledOK(rs.hc, rs.admin(i))
		time.Sleep(time.Until(sigterm.Add(lateWindow)))
		late, errLate := handledOK(rs.hc, rs.admin(i))
		lateNote := fmt.Sprintf("%.0f RPCs answered from %v to %v after SIGTERM", late-left, healthLeft, lateWindow)
		switch {
		case errLeft != nil || errLate != nil:
			lateNote = fmt.Sprintf("RPCs during the delay not measured: %v, %v", errLeft, errLate)
		case late-left > maxLateRPCs:
			t.Errorf("RollingRestart: replica %s answered %.0f RPCs from %v to %v after SIGTERM, want at most %d: clients did not leave it on NOT_SERVING",
				replicaHosts[i], late-left, healthLeft, lateWindow, maxLateRPCs)
		}
		code, exitAt := p.waitExit(t, sigterm.Add(replicaShutdownDelay+replicaShutdownTimeout+5*time.Second))
		if code != 0 {
			t.Errorf("RollingRestart: replica %s exited %d after SIGTERM, want 0\n%s", replicaHosts[i], code, p.output())
		}
		p.wantShutdownSequence(t)
		final, _ := p.event("shutdown: servers stopped")
		startAt := time.Now()
		rs.start(t, i)
		listening := time.Since(startAt)
		served := rs.waitTraffic(t, i, 0, 50)
		t.Logf("RollingRestart: %s: %s; SIGTERM → exit %v (drain %v), restart → listening %v, → 50 RPCs answered %v",
			replicaHosts[i], lateNote, exitAt.Sub(sigterm).Round(time.Millisecond), final.durMS("drain").Round(time.Millisecond),
			listening.Round(time.Millisecond), (listening + served).Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	load.stopLoad()
	ok, idem, other := load.total()
	t.Logf("RollingRestart: %v for 3 restarts; %d requests, %d failed (%d idempotent, %d not); %v",
		time.Since(rollStart).Round(time.Millisecond), ok+idem+other, idem+other, idem, other, load)
	check(load, true)

	// (c) kill -9.
	t.Log("=== phase Kill9")
	const victim = 1
	load = startLoad(conn, hc, gw.HTTP, "kill9", ids, true)
	t.Cleanup(load.stopLoad) // after a Fatal; stopping twice is harmless
	time.Sleep(time.Second)
	killAt := time.Now()
	if err := rs.procs[victim].cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9: %v", err)
	}
	<-rs.procs[victim].exited
	time.Sleep(2 * time.Second)
	restartAt := time.Now()
	rs.start(t, victim)
	listening := time.Since(restartAt)
	served := listening + rs.waitTraffic(t, victim, 0, 50)
	time.Sleep(500 * time.Millisecond)
	load.stopLoad()
	ok, idem, other = load.total()
	t.Logf("Kill9: killed %s, restarted it %v later: listening %v, 50 RPCs answered %v after the restart; %d requests: %d failed idempotent (reads, creates with a request id), %d failed non-idempotent (creates without one); %v",
		replicaHosts[victim], restartAt.Sub(killAt).Round(time.Millisecond), listening.Round(time.Millisecond), served.Round(time.Millisecond),
		ok+idem+other, idem, other, load)
	check(load, false)
	if t.Failed() {
		for i, p := range rs.procs {
			t.Logf("replica %s:\n%s", replicaHosts[i], p.output())
		}
		t.Logf("gateway:\n%s", gw.output())
	}
}
