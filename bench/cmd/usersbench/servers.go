package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/usersd/usersd/bench/internal/proc"
	"github.com/usersd/usersd/bench/internal/report"
)

// server is a running server under test.
type server struct {
	kind                          string // report.ServerUsersd, ServerObsOff or ServerBare
	p                             *proc.Proc
	httpAddr, grpcAddr, adminAddr string
	ready                         time.Duration // from exec to ready
	logFile                       *os.File
}

// usersdFlags are the flags of every usersd the harness starts, besides
// addresses and database: no shutdown delay (nothing balances load here),
// an in-flight bound well above the load, and room for 10,000-user imports.
var usersdFlags = []string{
	"--shutdown-delay=0s",
	"--shutdown-timeout=5s",
	"--max-in-flight=100000",
	"--request-timeout=30s",
	"--max-body-bytes=8388608",
	"--log-format=json",
}

// serverEnv is the harness's environment without the variables that would
// change how usersd runs: the OTEL_* and USERSD_* settings of whoever runs
// the harness.
func serverEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "OTEL_") || strings.HasPrefix(kv, "USERSD_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// startServer starts a server of the kind on st and waits until it is
// ready. usersd with observability off logs at error level only (no access
// lines) and samples no traces (OTEL_TRACES_SAMPLER=always_off: spans are
// not recorded, the server spans and otelpgx or otelsql still run); its
// Prometheus metrics cannot be turned off. extra are more flags of usersd.
func (h *harness) startServer(ctx context.Context, st *store, kind string, extra ...string) (*server, error) {
	ports, err := proc.FreePorts(3)
	if err != nil {
		return nil, err
	}
	s := &server{
		kind:      kind,
		httpAddr:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		grpcAddr:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
		adminAddr: fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
	var (
		bin, readyURL string
		args          []string
		env           = serverEnv()
	)
	switch kind {
	case report.ServerUsersd, report.ServerObsOff:
		bin = h.usersd
		args = append([]string{"serve",
			"--http-addr=" + s.httpAddr, "--grpc-addr=" + s.grpcAddr, "--admin-addr=" + s.adminAddr,
			"--database-url=" + st.url}, h.usersdFlags...)
		args = append(args, extra...)
		if kind == report.ServerObsOff {
			args = append(args, "--log-level=error")
			env = append(env, "OTEL_TRACES_SAMPLER=always_off")
		} else {
			args = append(args, "--log-level=info")
			if h.opt.Sampler != "" {
				env = append(env, "OTEL_TRACES_SAMPLER="+h.opt.Sampler)
				if h.opt.SamplerArg != "" {
					env = append(env, "OTEL_TRACES_SAMPLER_ARG="+h.opt.SamplerArg)
				}
			}
		}
		readyURL = "http://" + s.adminAddr + "/readyz"
	case report.ServerBare:
		bin = h.bare
		args = []string{"--database-url=" + st.url, "--http-addr=" + s.httpAddr, "--grpc-addr=" + s.grpcAddr}
		readyURL = "http://" + s.httpAddr + "/readyz"
	default:
		return nil, fmt.Errorf("unknown server %q", kind)
	}
	// The servers' output goes to /dev/null: the access lines cost what
	// writing them costs, not what a reader of a pipe would add.
	var stdout io.Writer
	if h.opt.ServerLogs {
		h.serverLogIndex++
		f, err := os.Create(filepath.Join(h.work, fmt.Sprintf("%03d-%s-%s.log", h.serverLogIndex, st.name, kind)))
		if err != nil {
			return nil, err
		}
		s.logFile, stdout = f, f
	} else {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		s.logFile, stdout = f, f
	}
	if s.p, err = h.group.Start(kind, bin, args, env, stdout); err != nil {
		s.logFile.Close()
		return nil, err
	}
	if err := s.waitReady(ctx, readyURL, 60*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls url every millisecond until it answers 200, and records
// the time from exec.
func (s *server) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.ready = time.Since(s.p.Started)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.p.Exited():
			return s.p.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %s", s.kind, timeout)
		}
	}
}

func (s *server) stop() {
	s.p.Stop(10 * time.Second)
	s.logFile.Close()
}

// withDatabase returns the Postgres URL u with its database replaced.
func withDatabase(u, db string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("postgres URL: %w", err)
	}
	p.Path, p.RawPath = "/"+db, ""
	return p.String(), nil
}

func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(unparseable URL)"
}
