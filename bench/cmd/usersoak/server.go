package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/bench/internal/proc"
)

// build builds the release binary of usersd as make build does (static,
// CGO off) into dir.
func build(ctx context.Context, opt options, dir string) (string, error) {
	ldflags := opt.LDFlags
	if ldflags == "" {
		commit := "unknown"
		if b, err := exec.CommandContext(ctx, "git", "-C", opt.Repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
			commit = strings.TrimSpace(string(b))
		}
		ldflags = "-s -w -X main.version=soak -X main.commit=" + commit
	}
	bin := filepath.Join(dir, "usersd")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", bin, "./cmd/usersd")
	cmd.Dir = opt.Repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/usersd: %w\n%s", err, out)
	}
	return bin, nil
}

// database is where one soak's usersd keeps its data.
type database struct {
	store  string // sqlite or postgres
	url    string // --database-url
	pgName string // Postgres: the database the tool created
	admin  string // Postgres: the URL the tool created it through
}

// newDatabase makes an empty database: a file in dir for SQLite, a new
// database on the Postgres server of adminURL.
func newDatabase(ctx context.Context, store, dir, adminURL, nonce string) (*database, error) {
	if store == "sqlite" {
		return &database{store: store, url: "sqlite:" + filepath.Join(dir, "soak.db")}, nil
	}
	name := "usersd_soak_" + nonce
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("postgres (%s; set USERSD_TEST_POSTGRES_URL or SOAK_STORE=sqlite): %w", redact(adminURL), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, err
	}
	u.Path, u.RawPath = "/"+name, ""
	return &database{store: store, url: u.String(), pgName: name, admin: adminURL}, nil
}

// drop removes the Postgres database, if any.
func (d *database) drop() error {
	if d.pgName == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", d.pgName, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.pgName}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", d.pgName, err)
	}
	return nil
}

// server is the usersd under soak.
type server struct {
	p                             *proc.Proc
	httpAddr, grpcAddr, adminAddr string
	log                           *os.File
}

// startServer starts usersd on db and waits until it is ready. Its log
// (warnings and errors only: the access lines would cost more than the
// load) goes to a file in dir.
func startServer(ctx context.Context, g *proc.Group, bin, dir string, db *database) (*server, error) {
	ports, err := proc.FreePorts(3)
	if err != nil {
		return nil, err
	}
	s := &server{
		httpAddr:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		grpcAddr:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
		adminAddr: fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
	if s.log, err = os.Create(filepath.Join(dir, "usersd-"+db.store+".log")); err != nil {
		return nil, err
	}
	args := []string{"serve",
		"--http-addr=" + s.httpAddr, "--grpc-addr=" + s.grpcAddr, "--admin-addr=" + s.adminAddr,
		"--database-url=" + db.url,
		"--shutdown-delay=0s", "--shutdown-timeout=10s",
		"--log-level=warn", "--log-format=json",
		// The receiver is on loopback. The default of 4 webhook workers
		// delivers about 40 events a second (River fetches every 100 ms),
		// fewer than this load makes; the rate limit would hold them too.
		"--webhook-allow-private", "--webhook-workers=32", "--webhook-rate=2000", "--webhook-burst=2000",
	}
	if s.p, err = g.Start("usersd", bin, args, serverEnv(), s.log); err != nil {
		s.log.Close()
		return nil, err
	}
	if err := s.waitReady(ctx, time.Minute); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.adminAddr+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.p.Exited():
			return s.p.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("usersd not ready after %s", timeout)
		}
	}
}

// stop stops usersd (SIGTERM, then SIGKILL after 20 s) and closes its log.
func (s *server) stop() {
	s.p.Stop(20 * time.Second)
	s.log.Close()
}

// serverEnv is the tool's environment without the variables that would
// change how usersd runs: the OTEL_* and USERSD_* settings of whoever runs
// it, and GOGC/GOMEMLIMIT, so the figures are those of the defaults.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OTEL_") || strings.HasPrefix(kv, "USERSD_") ||
			strings.HasPrefix(kv, "GOGC=") || strings.HasPrefix(kv, "GOMEMLIMIT=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(unparseable URL)"
}
