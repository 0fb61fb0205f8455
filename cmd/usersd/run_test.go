package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is a running usersd: run() in-process on ephemeral ports.
type testServer struct {
	HTTP, GRPC, Admin string // host:port
	Client            usersv1.UserServiceClient
	conn              *grpc.ClientConn // Client's connection, for other services
	logs              *logBuffer
}

// logBuffer keeps the process's log lines for assertions.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *logBuffer) add(l string) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// startServer runs usersd with the given flags, on 127.0.0.1:0 ports and a
// fresh SQLite database unless the flags name another, and stops it when the
// test ends. The environment is empty: the test's settings are all in args.
func startServer(t *testing.T, args ...string) *testServer {
	t.Helper()
	s, _ := startServerEnv(t, nil, args...)
	return s
}

// startServerEnv is startServer with an environment, for the OTEL_*
// variables that have no flags. It returns the server and a stop function
// that returns once run() has, which is when every span is exported;
// stop is also called when the test ends.
func startServerEnv(t *testing.T, env map[string]string, args ...string) (*testServer, func()) {
	t.Helper()
	return startCommand(t, env, append([]string{"usersd", "serve",
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--shutdown-delay", "0", "--database-url", "sqlite:" + filepath.Join(t.TempDir(), "usersd.db")}, args...),
		"grpc", "http", "admin")
}

// startCommand runs usersd with the full command line all in-process and
// waits until every listener named in servers logged its address. With a
// gRPC listener it also connects a client. The returned stop (also run
// when the test ends) returns once run() has.
func startCommand(t *testing.T, env map[string]string, all []string, servers ...string) (*testServer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, all, func(k string) string { return env[k] }, pw, io.Discard)
		pw.Close()
	}()

	s := &testServer{logs: &logBuffer{}}
	addrs := make(chan map[string]string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		found := map[string]string{}
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			s.logs.add(sc.Text())
			var l struct{ Message, Server, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "listening" {
				found[l.Server] = l.Addr
				if len(found) == len(servers) {
					addrs <- found
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()

	var conn *grpc.ClientConn
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if conn != nil {
				conn.Close()
			}
			http.DefaultClient.CloseIdleConnections()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run() = %v", err)
			}
			<-drained
		})
	}
	select {
	case a := <-addrs:
		s.HTTP, s.GRPC, s.Admin = a["http"], a["grpc"], a["admin"]
	case err := <-done:
		pw.Close()
		<-drained
		t.Fatalf("run() ended before listening: %v\nlogs:\n%s", err, s.logs)
	case <-time.After(20 * time.Second):
		stop()
		t.Fatalf("server did not listen within 20s; logs:\n%s", s.logs)
	}
	t.Cleanup(stop)
	if s.GRPC == "" {
		return s, stop
	}
	var err error
	conn, err = grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		stop()
		t.Fatalf("grpc.NewClient: %v", err)
	}
	s.Client, s.conn = usersv1.NewUserServiceClient(conn), conn
	return s, stop
}

func TestRunVersionAndHelp(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"usersd", "version"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatalf("run(version) = %v", err)
	}
	if !strings.HasPrefix(out.String(), "usersd ") {
		t.Errorf("version printed %q", out.String())
	}
	if err := run(context.Background(), []string{"usersd", "bogus"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("run(bogus) = nil, want an error")
	}
	if err := run(context.Background(), []string{"usersd", "serve", "--log-level", "loud"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("run with a bad log level = nil, want an error")
	}
}

func TestRunEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"USERSD_DATABASE_URL": "sqlite:" + filepath.Join(dir, "env.db"),
		"USERSD_LOG_LEVEL":    "debug",
	}
	var out strings.Builder
	err := run(context.Background(), []string{"usersd", "migrate"}, func(k string) string { return env[k] }, &out, io.Discard)
	if err != nil {
		t.Fatalf("run(migrate) = %v", err)
	}
	if !strings.Contains(out.String(), filepath.Join(dir, "env.db")) || !strings.Contains(out.String(), "migrations applied") {
		t.Errorf("migrate did not use USERSD_DATABASE_URL; log:\n%s", out.String())
	}
	env["USERSD_MIGRATE"] = "sometimes"
	if err := run(context.Background(), []string{"usersd", "serve"}, func(k string) string { return env[k] }, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "USERSD_MIGRATE") {
		t.Errorf("bad USERSD_MIGRATE: err = %v, want it named", err)
	}
	if err := run(context.Background(), []string{"usersd", "serve", "--database-url", "mysql://x"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("unsupported database URL accepted")
	}
}

// runOnStores runs test against a server on each store: SQLite, and
// Postgres when USERSD_TEST_POSTGRES_URL names a server (see pgtest).
func runOnStores(t *testing.T, test func(t *testing.T, s *testServer), args ...string) {
	t.Run("sqlite", func(t *testing.T) {
		test(t, startServer(t, args...))
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.NewDatabase(t) // serve migrates it
		test(t, startServer(t, append(slices.Clone(args), "--database-url", url)...))
	})
}

// TestLogSettings: --log-format and --log-level apply to every line,
// including goose's, which reaches zerolog through its slog handler.
func TestLogSettings(t *testing.T) {
	migrateWith := func(flags ...string) string {
		t.Helper()
		var out strings.Builder
		args := append([]string{"usersd", "migrate", "--database-url", "sqlite:" + filepath.Join(t.TempDir(), "m.db")}, flags...)
		if err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
			t.Fatalf("run(%v) = %v", args, err)
		}
		return out.String()
	}

	lines := strings.Split(strings.TrimSpace(migrateWith()), "\n")
	goose := 0
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("a log line is not JSON: %q", l)
		}
		if m["component"] == "migrations" && m["logger"] == "goose" {
			goose++
			if m["level"] != "info" || m["time"] == nil {
				t.Errorf("goose line lacks zerolog's fields: %v", m)
			}
		}
	}
	if goose == 0 {
		t.Errorf("no goose line among the migrate logs:\n%s", strings.Join(lines, "\n"))
	}

	if out := migrateWith("--log-format", "console"); strings.Contains(out, `{"level"`) || !strings.Contains(out, "migrations applied") {
		t.Errorf("--log-format console wrote:\n%s", out)
	}
	if out := migrateWith("--log-level", "warn"); out != "" {
		t.Errorf("--log-level warn still wrote info lines:\n%s", out)
	}
}

// TestSetGCPercent checks that the servers raise the GC target to
// defaultGCPercent, and that GOGC, when set, wins.
func TestSetGCPercent(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	setGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, defaultGCPercent)
	}
	setGCPercent(func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=100: GC percent %d, want 100 (left alone)", got)
	}
}
