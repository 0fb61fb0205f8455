package health_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/health"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// switchable is a check whose outcome the test sets.
type switchable struct{ err atomic.Pointer[error] }

func (s *switchable) set(err error) { s.err.Store(&err) }

func (s *switchable) check(name string) health.Check {
	return health.Check{Name: name, Fn: func(context.Context) error {
		if p := s.err.Load(); p != nil {
			return *p
		}
		return nil
	}}
}

func ok(name string) health.Check {
	return health.Check{Name: name, Fn: func(context.Context) error { return nil }}
}

func failing(name, msg string) health.Check {
	return health.Check{Name: name, Fn: func(context.Context) error { return errors.New(msg) }}
}

// result is a health.Result with the error as text, for comparing.
type result struct{ Name, Err string }

func results(rs []health.Result) []result {
	out := make([]result, len(rs))
	for i, r := range rs {
		out[i].Name = r.Name
		if r.Err != nil {
			out[i].Err = r.Err.Error()
		}
	}
	return out
}

func TestReady(t *testing.T) {
	tests := []struct {
		name     string
		checks   []health.Check
		shutDown bool
		want     bool
		wantRes  []result
	}{
		{
			name:    "no checks",
			want:    true,
			wantRes: []result{{Name: "shutdown"}},
		},
		{
			name:    "all met",
			checks:  []health.Check{ok("database"), ok("migrations")},
			want:    true,
			wantRes: []result{{Name: "shutdown"}, {Name: "database"}, {Name: "migrations"}},
		},
		{
			name:    "one failing, every check still run",
			checks:  []health.Check{failing("database", "connection refused"), ok("migrations")},
			want:    false,
			wantRes: []result{{Name: "shutdown"}, {Name: "database", Err: "connection refused"}, {Name: "migrations"}},
		},
		{
			name:     "shutting down",
			checks:   []health.Check{ok("database")},
			shutDown: true,
			want:     false,
			wantRes:  []result{{Name: "shutdown", Err: "shutting down"}, {Name: "database"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := health.NewChecker(tt.checks...)
			if tt.shutDown {
				c.ShutDown()
			}
			got, res := c.Ready(t.Context())
			if got != tt.want {
				t.Errorf("Ready() = %v, want %v", got, tt.want)
			}
			if diff := cmp.Diff(tt.wantRes, results(res)); diff != "" {
				t.Errorf("Ready() results (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadyCheckTimeout shows that each check runs under its own deadline of
// CheckTimeout, without waiting for one to pass.
func TestReadyCheckTimeout(t *testing.T) {
	var deadlines []time.Duration
	probe := health.Check{Name: "probe", Fn: func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		if !ok {
			return errors.New("no deadline")
		}
		deadlines = append(deadlines, time.Until(d))
		return nil
	}}
	c := health.NewChecker(probe, probe)
	if ok, res := c.Ready(t.Context()); !ok {
		t.Fatalf("Ready() = false, %v", results(res))
	}
	for i, d := range deadlines {
		if d <= 0 || d > health.CheckTimeout {
			t.Errorf("check %d: deadline in %v, want within (0, %v]", i, d, health.CheckTimeout)
		}
	}

	// A check that honours its context ends with the parent's cancellation.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	blocked := health.Check{Name: "blocked", Fn: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	ok, res := health.NewChecker(blocked).Ready(ctx)
	if ok || !errors.Is(res[1].Err, context.Canceled) {
		t.Errorf("Ready(cancelled ctx) = %v, %v; want false with context.Canceled", ok, results(res))
	}
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		checks     []health.Check
		shutDown   bool
		wantStatus int
		wantBody   string
	}{
		{
			name:       "ready",
			checks:     []health.Check{ok("database"), ok("migrations")},
			wantStatus: http.StatusOK,
			wantBody:   "shutdown: ok\ndatabase: ok\nmigrations: ok\n",
		},
		{
			name:       "a check failing",
			checks:     []health.Check{ok("database"), failing("migrations", "migrations pending; run usersd migrate")},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   "shutdown: ok\ndatabase: ok\nmigrations: migrations pending; run usersd migrate\n",
		},
		{
			name:       "shutting down",
			checks:     []health.Check{ok("database")},
			shutDown:   true,
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   "shutdown: shutting down\ndatabase: ok\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := health.NewChecker(tt.checks...)
			if tt.shutDown {
				c.ShutDown()
			}
			rec := httptest.NewRecorder()
			c.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body = %q, want %q", got, tt.wantBody)
			}
			if got := rec.Header().Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", got)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
}

// TestLivez shows that liveness depends on nothing: it answers 200 whatever
// readiness says.
func TestLivez(t *testing.T) {
	mux := http.NewServeMux()
	c := health.NewChecker(failing("database", "down"))
	c.ShutDown()
	mux.HandleFunc("GET /livez", health.Livez)
	mux.HandleFunc("GET /readyz", c.Readyz)
	for path, want := range map[string]int{"/livez": http.StatusOK, "/readyz": http.StatusServiceUnavailable} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s = %d, want %d", path, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	health.Livez(rec, httptest.NewRequest("GET", "/livez", nil))
	if got := rec.Body.String(); got != "ok\n" {
		t.Errorf("/livez body = %q, want %q", got, "ok\n")
	}
}

// TestCloseConnections shows that once the process is shutting down, each
// response ends its keep-alive connection cleanly ("Connection: close"), and
// that until then connections are reused.
func TestCloseConnections(t *testing.T) {
	c := health.NewChecker()
	srv := httptest.NewServer(c.CloseConnections(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("served\n"))
	})))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	// get sends one request and reports whether it went on a reused
	// connection and whether the response closed it.
	get := func() (reused, closed bool) {
		t.Helper()
		var info httptrace.GotConnInfo
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { info = i }})
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if body, _ := io.ReadAll(res.Body); string(body) != "served\n" || res.StatusCode != http.StatusOK {
			t.Fatalf("got %d %q, want 200 served", res.StatusCode, body)
		}
		return info.Reused, res.Close
	}

	steps := []struct {
		name                   string
		wantReused, wantClosed bool
	}{
		{"first request", false, false},
		{"serving: the connection is kept", true, false},
		{"shutting down: the response closes it", true, true},
		{"shutting down: a new connection, closed too", false, true},
	}
	for i, st := range steps {
		if i == 2 {
			c.ShutDown()
		}
		reused, closed := get()
		if reused != st.wantReused || closed != st.wantClosed {
			t.Errorf("%s: reused connection %v, response closed it %v; want %v, %v", st.name, reused, closed, st.wantReused, st.wantClosed)
		}
	}
}

const service = "users.v1.UserService"

// startGRPC serves the health service of c on 127.0.0.1:0 and returns a
// client, and the server for tests that stop it themselves. Both are closed
// when the test ends.
func startGRPC(t *testing.T, c *health.Checker) (healthpb.HealthClient, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewGRPCServer(c, service))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return healthpb.NewHealthClient(conn), srv
}

func TestGRPCCheck(t *testing.T) {
	db := &switchable{}
	c := health.NewChecker(db.check("database"))
	client, _ := startGRPC(t, c)
	ctx := t.Context()

	check := func(svc string) (healthpb.HealthCheckResponse_ServingStatus, error) {
		res, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		return res.GetStatus(), err
	}
	steps := []struct {
		name  string
		setup func()
		want  healthpb.HealthCheckResponse_ServingStatus
	}{
		{"ready", func() {}, healthpb.HealthCheckResponse_SERVING},
		{"check failing", func() { db.set(errors.New("down")) }, healthpb.HealthCheckResponse_NOT_SERVING},
		{"check met again", func() { db.set(nil) }, healthpb.HealthCheckResponse_SERVING},
		{"shutting down", c.ShutDown, healthpb.HealthCheckResponse_NOT_SERVING},
	}
	for _, st := range steps {
		st.setup()
		for _, svc := range []string{"", service} {
			got, err := check(svc)
			if err != nil || got != st.want {
				t.Errorf("%s: Check(%q) = %v, %v; want %v", st.name, svc, got, err, st.want)
			}
		}
		if _, err := check("other.v1.Unknown"); status.Code(err) != codes.NotFound {
			t.Errorf("%s: Check(unknown service) err = %v, want NotFound", st.name, err)
		}
	}
}

// recv reads the next Watch update within limit.
func recv(t *testing.T, stream grpc.ServerStreamingClient[healthpb.HealthCheckResponse], limit time.Duration) (*healthpb.HealthCheckResponse, error) {
	t.Helper()
	type answer struct {
		res *healthpb.HealthCheckResponse
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		res, err := stream.Recv()
		ch <- answer{res, err}
	}()
	select {
	case a := <-ch:
		return a.res, a.err
	case <-time.After(limit):
		t.Fatalf("no Watch update within %v", limit)
		return nil, nil
	}
}

// TestGRPCWatch follows one Watch stream through a failing check, recovery
// and shutdown: each change is sent once, and after shutdown the stream
// stays open until Drain.
func TestGRPCWatch(t *testing.T) {
	db := &switchable{}
	db.set(errors.New("down"))
	c := health.NewChecker(db.check("database"))
	client, _ := startGRPC(t, c)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	// Re-evaluation happens every second; allow for a slow machine.
	const limit = 5 * time.Second
	wantNext := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		res, err := recv(t, stream, limit)
		if err != nil || res.GetStatus() != want {
			t.Fatalf("Watch sent %v, %v; want %v", res.GetStatus(), err, want)
		}
	}
	wantNext(healthpb.HealthCheckResponse_NOT_SERVING)
	db.set(nil)
	wantNext(healthpb.HealthCheckResponse_SERVING)
	c.ShutDown()
	wantNext(healthpb.HealthCheckResponse_NOT_SERVING)
	// Through the shutdown delay the stream stays open and quiet, so the
	// client's health checker does not re-open it in a loop.
	got := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		got <- err
	}()
	select {
	case err := <-got:
		t.Errorf("during the shutdown delay, Watch ended or sent again (err %v); want it open and quiet", err)
	case <-time.After(1500 * time.Millisecond):
	}
	cancel()
	<-got
}

func TestGRPCWatchEndsAtDrain(t *testing.T) {
	c := health.NewChecker()
	client, _ := startGRPC(t, c)
	stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := recv(t, stream, 5*time.Second); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch sent %v, %v; want SERVING", res.GetStatus(), err)
	}
	c.ShutDown()
	if res, err := recv(t, stream, 5*time.Second); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after ShutDown, Watch sent %v, %v; want NOT_SERVING", res.GetStatus(), err)
	}
	c.Drain()
	if res, err := recv(t, stream, 5*time.Second); err != io.EOF {
		t.Errorf("after Drain, Watch sent %v, %v; want the stream to end (io.EOF)", res, err)
	}
}

func TestGRPCWatchUnknownService(t *testing.T) {
	client, _ := startGRPC(t, health.NewChecker())
	stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{Service: "other.v1.Unknown"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := recv(t, stream, 5*time.Second)
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("Watch(unknown) sent %v, %v; want SERVICE_UNKNOWN", res.GetStatus(), err)
	}
	if res, err := recv(t, stream, 5*time.Second); err != io.EOF {
		t.Errorf("Watch(unknown) then sent %v, %v; want the stream to end (io.EOF)", res, err)
	}
}

// TestGRPCWatchDoesNotHoldUpGracefulStop shows that an open Watch stream
// lets GracefulStop finish once the process drains: the watcher gets
// NOT_SERVING and the stream ends.
func TestGRPCWatchDoesNotHoldUpGracefulStop(t *testing.T) {
	c := health.NewChecker()
	client, srv := startGRPC(t, c)
	stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := recv(t, stream, 5*time.Second); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch sent %v, %v; want SERVING", res.GetStatus(), err)
	}

	c.ShutDown()
	c.Drain()
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()
	res, err := recv(t, stream, 5*time.Second)
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("after ShutDown, Watch sent %v, %v; want NOT_SERVING", res.GetStatus(), err)
	}
	if _, err := recv(t, stream, 5*time.Second); err != io.EOF {
		t.Errorf("after NOT_SERVING, Recv err = %v, want io.EOF", err)
	}
	select {
	case <-stopped:
		t.Logf("GracefulStop returned %v after ShutDown", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop still waiting 5s after ShutDown: the Watch stream holds it up")
	}
}
