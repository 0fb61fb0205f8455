package main

// The shutdown sequence, shown on the real binary: built with go build,
// started as a subprocess on 127.0.0.1:0 ports, and sent real signals.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// The shutdown settings of these tests: long enough for a load balancer
// (here, a prober) to notice, short enough for a quick test.
const (
	testShutdownDelay   = 1500 * time.Millisecond
	testShutdownTimeout = 5 * time.Second
)

// buildUsersd builds this package as `make build` does (CGO off) into a
// directory removed when t ends, and returns the binary's path.
func buildUsersd(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is needed to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "usersd")
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

// logEvent is one JSON log line of a usersd process other than an access
// line, with the time the test read it.
type logEvent struct {
	At     time.Time
	Msg    string
	Fields map[string]any
}

// usersdProc is a usersd process started by startUsersd.
type usersdProc struct {
	HTTP, GRPC, Admin string // host:port

	cmd    *exec.Cmd
	stdout *logBuffer // every line, access lines included
	stderr *logBuffer

	mu     sync.Mutex
	events []logEvent

	exited  chan struct{} // closed once the process has exited
	exitErr error         // cmd.Wait's answer; read after exited is closed
	exitAt  time.Time
}

// lineWriter splits what the process writes into lines and hands each to
// onLine. Only exec's copying goroutine writes to it.
type lineWriter struct {
	partial []byte
	onLine  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		w.onLine(line)
	}
}

// startUsersd starts the binary with the flags of these tests (ephemeral
// ports on 127.0.0.1, the test shutdown delay and timeout, a fresh SQLite
// database) followed by args, which win. The environment holds only PATH and
// HOME, so no USERSD_* setting leaks in. The process is killed when the test
// ends if it is still running.
func startUsersd(t *testing.T, bin string, args ...string) *usersdProc {
	t.Helper()
	all := []string{"serve",
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--shutdown-delay", testShutdownDelay.String(), "--shutdown-timeout", testShutdownTimeout.String(),
		"--database-url", "sqlite:" + filepath.Join(t.TempDir(), "u.db")}
	return startProc(t, bin, append(all, args...), "grpc", "http", "admin")
}

// startProc runs bin with the arguments all and a minimal environment, and
// returns once every listener named in servers has logged its address. The
// process is killed when the test ends if it is still running.
func startProc(t *testing.T, bin string, all []string, servers ...string) *usersdProc {
	t.Helper()
	p := &usersdProc{stdout: &logBuffer{}, stderr: &logBuffer{}, exited: make(chan struct{})}
	addrs := map[string]string{}
	listening := make(chan struct{})
	stdout := &lineWriter{onLine: func(line string) {
		at := time.Now()
		p.stdout.add(line)
		var l struct{ Message, Server, Addr string }
		if json.Unmarshal([]byte(line), &l) != nil || l.Message == "http request" || l.Message == "grpc request" {
			return
		}
		var fields map[string]any
		json.Unmarshal([]byte(line), &fields)
		p.mu.Lock()
		p.events = append(p.events, logEvent{At: at, Msg: l.Message, Fields: fields})
		p.mu.Unlock()
		if l.Message == "listening" {
			addrs[l.Server] = l.Addr
			if len(addrs) == len(servers) {
				close(listening)
			}
		}
	}}
	p.cmd = exec.Command(bin, all...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	p.cmd.Stdout = stdout
	p.cmd.Stderr = &lineWriter{onLine: p.stderr.add}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exitAt, p.exitErr = time.Now(), err
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})

	select {
	case <-listening:
		p.HTTP, p.GRPC, p.Admin = addrs["http"], addrs["grpc"], addrs["admin"]
	case <-p.exited:
		t.Fatalf("usersd %s exited before listening: %v\n%s", all[0], p.exitErr, p.output())
	case <-time.After(20 * time.Second):
		t.Fatalf("usersd %s did not listen within 20s\n%s", all[0], p.output())
	}
	return p
}

// signal sends sig to the process and returns when it was sent.
func (p *usersdProc) signal(t *testing.T, sig os.Signal) time.Time {
	t.Helper()
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v: %v", sig, err)
	}
	return at
}

// waitExit waits until deadline for the process to exit and returns its
// exit code and when it exited.
func (p *usersdProc) waitExit(t *testing.T, deadline time.Time) (int, time.Time) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(time.Until(deadline)):
		t.Fatalf("usersd still running at its deadline\n%s", p.output())
	}
	var exitErr *exec.ExitError
	switch {
	case p.exitErr == nil:
		return 0, p.exitAt
	case errors.As(p.exitErr, &exitErr):
		return exitErr.ExitCode(), p.exitAt
	default:
		t.Fatalf("waiting for usersd: %v", p.exitErr)
		return -1, p.exitAt
	}
}

// event returns the first log line with message msg, if there is one yet.
func (p *usersdProc) event(msg string) (logEvent, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.events {
		if e.Msg == msg {
			return e, true
		}
	}
	return logEvent{}, false
}

// waitEvent waits up to limit for a log line with message msg.
func (p *usersdProc) waitEvent(t *testing.T, msg string, limit time.Duration) logEvent {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if e, ok := p.event(msg); ok {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q log line within %v\n%s", msg, limit, p.output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// output is the process's log without its migration lines and successful
// access lines, and its stderr, for failure messages.
func (p *usersdProc) output() string {
	var b strings.Builder
	access, migrations := 0, 0
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if strings.Contains(l, `"component":"migrations"`) {
			migrations++
			continue
		}
		if strings.Contains(l, `"message":"http request"`) || strings.Contains(l, `"message":"grpc request"`) {
			if strings.Contains(l, `"level":"info"`) {
				access++
				continue
			}
			// Failed requests are worth seeing.
		}
		fmt.Fprintln(&b, l)
	}
	fmt.Fprintf(&b, "(%d successful access lines and %d migration lines left out)\n--- stderr:\n%s", access, migrations, p.stderr.String())
	return "--- log:\n" + b.String()
}

// durMS reads a zerolog duration field (float milliseconds).
func (e logEvent) durMS(field string) time.Duration {
	ms, _ := e.Fields[field].(float64)
	return time.Duration(ms * float64(time.Millisecond))
}

// wantShutdownSequence checks that the shutdown steps were logged in order
// and returns the final "shutdown: servers stopped" line. Flushing traces,
// when logged, comes after the servers stopped.
func (p *usersdProc) wantShutdownSequence(t *testing.T) logEvent {
	t.Helper()
	order := []string{"shutdown: not ready, still serving", "shutdown: HTTP drained", "shutdown: gRPC stopped", "shutdown: job workers stopped", "shutdown: servers stopped", "database closed"}
	p.mu.Lock()
	var got []string
	flushed := -1
	for _, e := range p.events {
		if slices.Contains(order, e.Msg) {
			got = append(got, e.Msg)
		}
		if e.Msg == "traces flushed" && flushed < 0 {
			flushed = len(got)
		}
	}
	p.mu.Unlock()
	if !slices.Equal(got, order) {
		t.Errorf("shutdown steps logged = %q, want %q\n%s", got, order, p.output())
	}
	if flushed >= 0 && flushed < slices.Index(order, "shutdown: servers stopped")+1 {
		t.Errorf("traces flushed after %q, want after the servers stopped\n%s", got[:flushed], p.output())
	}
	e, _ := p.event("shutdown: servers stopped")
	return e
}

// newHTTPClient returns a client with its own keep-alive transport, closed
// when the test ends.
func newHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{
		Proxy:               nil, // traffic goes to 127.0.0.1 only
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// newGRPCConn returns a client connection to addr, closed when the test ends.
func newGRPCConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// connCountKey is the context key of an *atomic.Int32 that httpCall
// increments for each connection a request is sent on: more than one means
// the client's transport sent it again after a connection failed.
type connCountKey struct{}

// httpCall sends one request and reads the whole answer; a status other
// than want is an error.
func httpCall(ctx context.Context, c *http.Client, method, url, body string, want int) (map[string]any, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, err
	}
	if conns, ok := ctx.Value(connCountKey{}).(*atomic.Int32); ok {
		req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			GotConn: func(httptrace.GotConnInfo) { conns.Add(1) },
		}))
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the body: %w", err)
	}
	if res.StatusCode != want {
		return nil, fmt.Errorf("status %d, want %d: %.200s", res.StatusCode, want, raw)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("body is not JSON: %.200q", raw)
	}
	return out, nil
}

// errKind names an error for counting: its class for the network errors
// that matter here, its text otherwise.
func errKind(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF: " + err.Error()
	}
	if st, ok := status.FromError(err); ok {
		return "gRPC " + st.Code().String() + ": " + st.Message()
	}
	return err.Error()
}

// loadStats counts the outcomes of the load test's requests.
type loadStats struct {
	sigterm atomic.Int64 // UnixNano when SIGTERM was sent; 0 before

	mu       sync.Mutex
	okBefore map[string]int // by transport: sent before SIGTERM, succeeded
	okAfter  map[string]int // by transport: sent after SIGTERM, succeeded
	failures map[string]int // by transport and error kind
	samples  []string       // the first failures, timed
	resent   map[string]int // by method: HTTP requests the client's transport sent twice
}

func newLoadStats() *loadStats {
	return &loadStats{okBefore: map[string]int{}, okAfter: map[string]int{}, failures: map[string]int{}, resent: map[string]int{}}
}

// record counts one request of transport sent at sent.
func (s *loadStats) record(transport string, sent time.Time, err error) {
	term := s.sigterm.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		kind := transport + ": " + errKind(err)
		s.failures[kind]++
		if len(s.samples) < 20 {
			rel := "before SIGTERM"
			if term != 0 {
				rel = fmt.Sprintf("sent %v after SIGTERM, failed %v after", sent.Sub(time.Unix(0, term)).Round(time.Millisecond), time.Since(time.Unix(0, term)).Round(time.Millisecond))
			}
			s.samples = append(s.samples, fmt.Sprintf("%s (%s): %v", transport, rel, err))
		}
	case term != 0 && sent.UnixNano() >= term:
		s.okAfter[transport]++
	default:
		s.okBefore[transport]++
	}
}

// TestShutdown drives the shutdown sequence of the real binary: under load
// on each store, with requests in flight, and cut short by a second signal.
// The binary is built once for all of them.
func TestShutdown(t *testing.T) {
	bin := buildUsersd(t)
	t.Run("UnderLoad/sqlite", func(t *testing.T) {
		testShutdownUnderLoad(t, bin)
	})
	t.Run("UnderLoad/postgres", func(t *testing.T) {
		testShutdownUnderLoad(t, bin, "--database-url", pgtest.NewDatabase(t))
	})
	t.Run("InFlight/postgres", func(t *testing.T) {
		testShutdownInFlight(t, bin)
	})
	t.Run("SecondSignal", func(t *testing.T) {
		testShutdownSecondSignal(t, bin)
	})
}

// testShutdownUnderLoad sends SIGTERM in the middle of steady load over HTTP
// and gRPC. A prober plays the load balancer: it polls /readyz, and the
// clients stop sending new requests lbReaction after it first sees 503, well
// inside the shutdown delay. Every request must succeed, load must have run
// during the delay, readiness must be off on both protocols during it, and
// the process must exit 0 within the budget.
func testShutdownUnderLoad(t *testing.T, bin string, args ...string) {
	const (
		httpWorkers, grpcWorkers = 4, 4
		probeEvery               = 50 * time.Millisecond
		lbReaction               = 300 * time.Millisecond
		loadBeforeTerm           = 500 * time.Millisecond
		minOK                    = 10 // per transport, before SIGTERM and after
	)
	p := startUsersd(t, bin, args...)
	hc := newHTTPClient(t)
	conn := newGRPCConn(t, p.GRPC)
	users := usersv1.NewUserServiceClient(conn)
	health := healthpb.NewHealthClient(conn)
	ctx := context.Background()
	base := "http://" + p.HTTP

	var ids []string
	for i := range 5 {
		u, err := httpCall(ctx, hc, "POST", base+"/v1/users", fmt.Sprintf(`{"email":"seed%d@example.com","displayName":"Seed %d"}`, i, i), http.StatusCreated)
		if err != nil {
			t.Fatalf("seeding: %v\n%s", err, p.output())
		}
		ids = append(ids, u["id"].(string))
	}
	if res, err := health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc.health.v1 Check before SIGTERM = %v, %v; want SERVING", res.GetStatus(), err)
	}

	stats := newLoadStats()
	stop := make(chan struct{}) // closed when the "load balancer" takes the endpoint out
	var stopOnce sync.Once
	var stoppedAt time.Time
	stopLoad := func() { stopOnce.Do(func() { stoppedAt = time.Now(); close(stop) }) }
	defer stopLoad()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}

	var wg sync.WaitGroup
	for w := range httpWorkers {
		wg.Go(func() {
			for n := 0; !stopped(); n++ {
				sent := time.Now()
				var conns atomic.Int32
				ctx := context.WithValue(ctx, connCountKey{}, &conns)
				var err error
				method := "GET"
				if n%2 == 0 {
					id := ids[(w+n)%len(ids)]
					var u map[string]any
					if u, err = httpCall(ctx, hc, "GET", base+"/v1/users/"+id, "", http.StatusOK); err == nil && u["id"] != id {
						err = fmt.Errorf("GET %s answered user %v", id, u["id"])
					}
				} else {
					method = "POST"
					var u map[string]any
					body := fmt.Sprintf(`{"email":"load-%d-%d@example.com","displayName":"Load"}`, w, n)
					if u, err = httpCall(ctx, hc, "POST", base+"/v1/users", body, http.StatusCreated); err == nil && u["id"] == nil {
						err = fmt.Errorf("POST answered no id: %v", u)
					}
				}
				if conns.Load() > 1 {
					stats.mu.Lock()
					stats.resent[method]++
					stats.mu.Unlock()
				}
				stats.record("http", sent, err)
			}
		})
	}
	for w := range grpcWorkers {
		wg.Go(func() {
			for n := 0; !stopped(); n++ {
				sent := time.Now()
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				var err error
				if n%2 == 0 {
					id := ids[(w+n)%len(ids)]
					var u *usersv1.User
					if u, err = users.GetUser(cctx, &usersv1.GetUserRequest{Id: id}); err == nil && u.GetId() != id {
						err = fmt.Errorf("GetUser(%s) answered user %s", id, u.GetId())
					}
				} else {
					var page *usersv1.ListUsersResponse
					if page, err = users.ListUsers(cctx, &usersv1.ListUsersRequest{PageSize: 10}); err == nil && len(page.GetUsers()) == 0 {
						err = errors.New("ListUsers answered no users")
					}
				}
				cancel()
				stats.record("grpc", sent, err)
			}
		})
	}

	// The prober: the load balancer's health check.
	var ready200, ready503 atomic.Int64
	var probeErrs []string
	notReady := make(chan time.Time, 1)
	wg.Go(func() {
		var first503 time.Time
		tick := time.NewTicker(probeEvery)
		defer tick.Stop()
		for {
			res, err := hc.Get("http://" + p.Admin + "/readyz")
			if err != nil {
				probeErrs = append(probeErrs, err.Error())
			} else {
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusOK:
					ready200.Add(1)
				case http.StatusServiceUnavailable:
					ready503.Add(1)
					if first503.IsZero() {
						first503 = time.Now()
						notReady <- first503
					}
				}
			}
			if !first503.IsZero() && time.Since(first503) >= lbReaction {
				stopLoad()
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	time.Sleep(loadBeforeTerm)
	stats.sigterm.Store(time.Now().UnixNano())
	sigterm := p.signal(t, syscall.SIGTERM)

	var sawNotReady time.Time
	select {
	case sawNotReady = <-notReady:
	case <-time.After(testShutdownDelay):
		stopLoad()
		wg.Wait()
		t.Fatalf("/readyz never answered 503 within the shutdown delay (%d × 200)\n%s", ready200.Load(), p.output())
	}
	// A gRPC load balancer asks grpc.health.v1 instead.
	hres, herr := health.Check(ctx, &healthpb.HealthCheckRequest{Service: usersv1.UserService_ServiceDesc.ServiceName})
	healthAt := time.Now()
	wg.Wait()

	code, exitAt := p.waitExit(t, sigterm.Add(testShutdownDelay+testShutdownTimeout+2*time.Second))
	hc.CloseIdleConnections()

	if herr != nil || hres.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("grpc.health.v1 Check %v after SIGTERM = %v, %v; want NOT_SERVING", healthAt.Sub(sigterm), hres.GetStatus(), herr)
	}
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	final := p.wantShutdownSequence(t)
	notServing, _ := p.event("shutdown: not ready, still serving")
	if final.Fields == nil {
		t.Fatalf("no final shutdown line\n%s", p.output())
	}
	drain, total := final.durMS("drain"), final.durMS("total")
	if waited := total - drain; waited < testShutdownDelay {
		t.Errorf("the servers kept serving %v after SIGTERM, want at least the delay %v", waited, testShutdownDelay)
	}
	// No request may be sent once the listeners close; the test's premise is
	// that the "load balancer" stopped the clients before then.
	if stopAfter := stoppedAt.Sub(notServing.At); stopAfter >= testShutdownDelay {
		t.Errorf("clients stopped %v after readiness went off, not within the delay %v: the machine is too slow for this test", stopAfter, testShutdownDelay)
	}

	stats.mu.Lock()
	defer stats.mu.Unlock()
	failures := 0
	for _, n := range stats.failures {
		failures += n
	}
	t.Logf("SIGTERM → exit %v (budget %v); drain %v; total shutdown %v; /readyz 503 seen %v after SIGTERM; clients stopped %v after SIGTERM",
		exitAt.Sub(sigterm).Round(time.Millisecond), testShutdownDelay+testShutdownTimeout,
		drain.Round(100*time.Microsecond), total.Round(time.Millisecond),
		sawNotReady.Sub(sigterm).Round(time.Millisecond), stoppedAt.Sub(sigterm).Round(time.Millisecond))
	t.Logf("requests sent before SIGTERM and OK: %v; sent after SIGTERM and OK: %v; failures: %d %v; HTTP requests the client sent again on a new connection: %v; /readyz: %d × 200, %d × 503",
		stats.okBefore, stats.okAfter, failures, stats.failures, stats.resent, ready200.Load(), ready503.Load())
	if failures > 0 {
		t.Errorf("%d requests failed: %v\nfirst failures:\n  %s\n%s", failures, stats.failures, strings.Join(stats.samples, "\n  "), p.output())
	}
	for _, tr := range []string{"http", "grpc"} {
		if stats.okBefore[tr] < minOK {
			t.Errorf("%s: %d requests sent before SIGTERM succeeded, want at least %d", tr, stats.okBefore[tr], minOK)
		}
		if stats.okAfter[tr] < minOK {
			t.Errorf("%s: %d requests sent during the shutdown delay succeeded, want at least %d: load must run during the delay", tr, stats.okAfter[tr], minOK)
		}
	}
	if ready200.Load() == 0 || ready503.Load() == 0 {
		t.Errorf("/readyz answered 200 %d times and 503 %d times; want both", ready200.Load(), ready503.Load())
	}
	if len(probeErrs) > 0 {
		t.Errorf("/readyz probes failed during the delay: %q", probeErrs)
	}
}

// testShutdownInFlight shows that requests in flight when the listeners
// close are drained, not cut: an HTTP PATCH and a gRPC UpdateUser each wait
// on a row lock held by another Postgres connection. Each lock is released
// only once the listener of its server has closed (HTTP Shutdown, then gRPC
// GracefulStop) and a moment more has passed.
func testShutdownInFlight(t *testing.T, bin string) {
	const hold = 300 * time.Millisecond
	url := pgtest.NewDatabase(t)
	p := startUsersd(t, bin, "--database-url", url)
	hc := newHTTPClient(t)
	users := usersv1.NewUserServiceClient(newGRPCConn(t, p.GRPC))
	ctx := context.Background()

	var ids [2]string
	for i := range ids {
		u, err := httpCall(ctx, hc, "POST", "http://"+p.HTTP+"/v1/users", fmt.Sprintf(`{"email":"inflight%d@example.com","displayName":"Before"}`, i), http.StatusCreated)
		if err != nil {
			t.Fatalf("creating a user: %v", err)
		}
		ids[i] = u["id"].(string)
	}

	// lock holds a row lock on a connection of its own until release.
	lock := func(id string) (release func()) {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", id); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := tx.Rollback(ctx); err != nil {
				t.Errorf("releasing the lock: %v", err)
			}
		}
	}
	releaseHTTP, releaseGRPC := lock(ids[0]), lock(ids[1])

	observer, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close(ctx)
	waitForLockWaiters := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got int
			err := observer.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got)
			if err != nil {
				t.Fatal(err)
			}
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d queries wait on the row locks after 5s, want %d", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	type outcome struct {
		name string
		err  error
		at   time.Time
	}
	httpDone, grpcDone := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		u, err := httpCall(ctx, hc, "PATCH", "http://"+p.HTTP+"/v1/users/"+ids[0], `{"displayName":"Drained over HTTP"}`, http.StatusOK)
		if err == nil && u["displayName"] != "Drained over HTTP" {
			err = fmt.Errorf("PATCH answered %v", u)
		}
		httpDone <- outcome{"displayName", err, time.Now()}
	}()
	waitForLockWaiters(1)
	go func() {
		u, err := users.UpdateUser(ctx, &usersv1.UpdateUserRequest{
			User:       &usersv1.User{Id: ids[1], DisplayName: "Drained over gRPC"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
		})
		if err == nil && u.GetDisplayName() != "Drained over gRPC" {
			err = fmt.Errorf("UpdateUser answered %v", u)
		}
		grpcDone <- outcome{"display_name", err, time.Now()}
	}()
	waitForLockWaiters(2)

	sigterm := p.signal(t, syscall.SIGTERM)
	p.waitEvent(t, "shutdown: not ready, still serving", 2*time.Second)

	// waitClosed waits for addr to refuse connections: its server has
	// started to drain.
	waitClosed := func(what, addr string) time.Time {
		t.Helper()
		deadline := time.Now().Add(testShutdownDelay + 3*time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return time.Now()
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("the %s listener still accepts connections %v after SIGTERM\n%s", what, time.Since(sigterm), p.output())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	stillRunning := func(what string, done chan outcome) {
		t.Helper()
		select {
		case o := <-done:
			t.Fatalf("the %s request ended before its lock was released: %v\n%s", what, o.err, p.output())
		case <-p.exited:
			t.Fatalf("usersd exited with the %s request in flight\n%s", what, p.output())
		default:
		}
	}

	httpClosed := waitClosed("HTTP", p.HTTP)
	time.Sleep(hold)
	stillRunning("HTTP", httpDone)
	releaseHTTP()
	h := <-httpDone
	if h.err != nil {
		t.Errorf("the PATCH in flight at shutdown: %v", h.err)
	}

	grpcClosed := waitClosed("gRPC", p.GRPC)
	time.Sleep(hold)
	stillRunning("gRPC", grpcDone)
	releaseGRPC()
	g := <-grpcDone
	if g.err != nil {
		t.Errorf("the UpdateUser in flight at shutdown: %v", g.err)
	}

	code, exitAt := p.waitExit(t, sigterm.Add(testShutdownDelay+testShutdownTimeout+2*time.Second))
	if code != 0 {
		t.Errorf("exit code %d, want 0\n%s", code, p.output())
	}
	final := p.wantShutdownSequence(t)
	httpDrained, _ := p.event("shutdown: HTTP drained")
	if took := httpDrained.durMS("took"); took < hold {
		t.Errorf("HTTP drained in %v, but a request was held in flight %v", took, hold)
	}
	t.Logf("HTTP listener closed %v after SIGTERM, PATCH answered %v later; gRPC listener closed %v after SIGTERM, UpdateUser answered %v later; drain %v; SIGTERM → exit %v",
		httpClosed.Sub(sigterm).Round(time.Millisecond), h.at.Sub(httpClosed).Round(time.Millisecond),
		grpcClosed.Sub(sigterm).Round(time.Millisecond), g.at.Sub(grpcClosed).Round(time.Millisecond),
		final.durMS("drain").Round(time.Millisecond), exitAt.Sub(sigterm).Round(time.Millisecond))
}

// testShutdownSecondSignal: a second SIGTERM during the shutdown delay ends
// the process at once, with the error that says so.
func testShutdownSecondSignal(t *testing.T, bin string) {
	const delay = 10 * time.Second
	p := startUsersd(t, bin, "--shutdown-delay", delay.String())
	first := p.signal(t, syscall.SIGTERM)
	p.waitEvent(t, "shutdown: not ready, still serving", 2*time.Second)
	time.Sleep(100 * time.Millisecond)
	second := p.signal(t, syscall.SIGTERM)
	code, exitAt := p.waitExit(t, second.Add(delay))
	took := exitAt.Sub(second)
	t.Logf("exited %v after the second signal (%v after the first; delay %v), code %d",
		took.Round(time.Millisecond), exitAt.Sub(first).Round(time.Millisecond), delay, code)
	if took > 500*time.Millisecond {
		t.Errorf("exited %v after the second signal, want within 500ms", took)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if got, want := p.stderr.String(), "shutdown cut short by a second signal"; !strings.Contains(got, want) {
		t.Errorf("stderr = %q, want it to contain %q", got, want)
	}
	p.wantShutdownSequence(t)
}

// healthProbe runs the pinned grpc-health-probe from the module root and
// returns its exit code and output.
func healthProbe(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "grpc-health-probe"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), string(out)
	}
	t.Fatalf("go tool grpc-health-probe: %v\n%s", err, out)
	return -1, ""
}

// TestHealthProbe shows that the pinned grpc-health-probe works against the
// real binary: healthy while serving (exit 0), unhealthy during the shutdown
// delay (exit 4, NOT_SERVING), and unknown services are an RPC failure
// (exit 3).
func TestHealthProbe(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("the go command runs the pinned tool: %v", err)
	}
	// grpc-health-probe's exit codes.
	const (
		healthy    = 0
		rpcFailure = 3
		unhealthy  = 4
	)
	// Long enough for `go tool` to start the probe during the delay on a
	// slow machine; the first run builds the tool.
	const delay = 3 * time.Second
	bin := buildUsersd(t)
	p := startUsersd(t, bin, "--shutdown-delay", delay.String())

	type probe struct {
		args []string
		want int
	}
	run := func(when string, probes ...probe) {
		t.Helper()
		for _, pr := range probes {
			args := append([]string{"-addr=" + p.GRPC}, pr.args...)
			start := time.Now()
			code, out := healthProbe(t, args...)
			t.Logf("%s: grpc-health-probe %s → exit %d in %v: %s", when, strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
			if code != pr.want {
				t.Errorf("%s: grpc-health-probe %s exited %d, want %d; output:\n%s", when, strings.Join(args, " "), code, pr.want, out)
			}
		}
	}
	run("serving",
		probe{nil, healthy},
		probe{[]string{"-service=" + usersv1.UserService_ServiceDesc.ServiceName}, healthy},
		probe{[]string{"-service=no.such.Service"}, rpcFailure},
	)

	sigterm := p.signal(t, syscall.SIGTERM)
	p.waitEvent(t, "shutdown: not ready, still serving", 2*time.Second)
	run("shutting down", probe{nil, unhealthy})
	if since := time.Since(sigterm); since >= delay {
		t.Errorf("the probe during shutdown ended %v after SIGTERM, after the delay %v: its answer is not about the delay", since, delay)
	}

	if code, _ := p.waitExit(t, sigterm.Add(delay+testShutdownTimeout+2*time.Second)); code != 0 {
		t.Errorf("exit code %d, want 0\n%s", code, p.output())
	}
}
