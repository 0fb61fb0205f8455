package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/proc"
	"github.com/usersd/usersd/bench/internal/report"
)

// harness is one run: its options, binaries, stores and results.
type harness struct {
	opt            options
	out            io.Writer // progress and the final report
	group          *proc.Group
	work           string // temporary directory, removed at the end
	usersd, bare   string // binaries
	ghz            string
	res            *report.Run
	stores         []*store
	client         *http.Client // the HTTP load generator's, reused across runs
	nonce          string       // makes this run's addresses unique
	loadRSS, hwm   map[string]int64
	serverLogIndex int
	usersdFlags    []string // besides addresses and database
}

// store is one database the servers run on, with the ids the load uses.
type store struct {
	name    string     // sqlite or postgres
	url     string     // --database-url of the servers
	dbName  string     // Postgres: the database the harness created
	ids     []string   // GetUser ids, spread over the table
	batches [][]string // BatchGetUsers id sets of 100
	users   int        // users stored
}

func runBench(ctx context.Context, opt options, stdout, stderr io.Writer) (err error) {
	h := &harness{
		opt:         opt,
		out:         stdout,
		group:       proc.NewGroup(),
		client:      load.NewHTTPClient(512),
		loadRSS:     map[string]int64{},
		hwm:         map[string]int64{},
		nonce:       randomHex(4),
		usersdFlags: append([]string{}, usersdFlags...),
		res: &report.Run{
			Version: report.Version,
			Started: time.Now().UTC(),
			Quick:   opt.Quick,
			Config: report.Config{
				Rounds: opt.Rounds, Duration: opt.Duration, Warmup: opt.Warmup, Concurrency: opt.Concurrency,
				Users: opt.Users, ScaleUsers: opt.ScaleUsers, Starts: opt.Starts, Stores: opt.Stores,
				Sampler: opt.Sampler, SamplerArg: opt.SamplerArg,
			},
		},
	}
	// Every process the run started stops, however it ends; then the
	// databases it created go.
	defer h.group.StopAll(5 * time.Second)
	if h.work, err = os.MkdirTemp("", "usersbench-"); err != nil {
		return err
	}
	defer func() {
		if opt.Keep || opt.ServerLogs {
			fmt.Fprintf(stderr, "work directory kept: %s\n", h.work)
			return
		}
		os.RemoveAll(h.work)
	}()
	if err := os.MkdirAll(opt.Out, 0o755); err != nil {
		return err
	}

	if opt.Webhooks {
		h.logf("usersbench: the webhook figures only; deadline %s", opt.Deadline)
	} else {
		h.logf("usersbench: %s run, %d round(s) of %s per measurement, %d in flight; deadline %s",
			map[bool]string{true: "QUICK", false: "full"}[opt.Quick], opt.Rounds, opt.Duration, opt.Concurrency, opt.Deadline)
	}
	h.hostInfo()
	if err := h.build(ctx); err != nil {
		return err
	}
	// The run proper is bounded; the build is not (it is cached after the
	// first run).
	ctx, cancel := context.WithTimeout(ctx, opt.Deadline)
	defer cancel()
	for _, name := range opt.Stores {
		st, err := h.newStore(ctx, name, "")
		if err != nil {
			return err
		}
		if st.dbName != "" {
			defer h.dropDatabase(st.dbName)
		}
		h.stores = append(h.stores, st)
	}
	if opt.Webhooks {
		err := h.webhooks(ctx)
		for _, t := range targets(h.res) {
			if t.Measured { // the others were not to be
				h.res.Targets = append(h.res.Targets, t)
			}
		}
		h.res.Finished = time.Now().UTC()
		path, werr := h.writeResults()
		h.print(path)
		return errors.Join(err, werr)
	}
	// The table and the phases that read the stores' users need them;
	// the others make their own.
	if opt.Table || opt.Phases["scale"] || opt.Phases["start-up"] || opt.Phases["profile"] {
		for _, st := range h.stores {
			if err := h.seed(ctx, st); err != nil {
				return fmt.Errorf("seeding %s: %w", st.name, err)
			}
		}
	}
	// From here on a failure still writes and prints what was measured,
	// marked incomplete.
	var errs []error
	for r := 1; r <= opt.Rounds && opt.Table; r++ {
		if err := h.round(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("round %d: %w", r, err))
			break
		}
	}
	h.res.Table = report.BuildTable(h.res.Measurements)
	if len(errs) == 0 {
		for _, phase := range []struct {
			name string
			fn   func(context.Context) error
		}{{"scale", h.scale}, {"start-up", h.startup}, {"profile", h.profile}, {"webhooks", h.webhooks}, {"tenants", h.tenantPages}, {"profiles", h.profiles}} {
			if !h.opt.Phases[phase.name] {
				continue
			}
			if err := phase.fn(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", phase.name, err))
			}
		}
	}
	h.res.Footprint.LoadRSSKiB, h.res.Footprint.PeakRSSKiB = h.loadRSS, h.hwm
	h.res.Targets = targets(h.res)
	h.res.Finished = time.Now().UTC()
	for _, e := range errs {
		h.res.Notes = append(h.res.Notes, "incomplete: "+e.Error())
	}
	path, werr := h.writeResults()
	h.print(path)
	return errors.Join(append(errs, werr)...)
}

// allPhases are the phases after the table's rounds, in the order they
// run.
var allPhases = []string{"scale", "start-up", "profile", "webhooks", "tenants", "profiles"}

// defaultPhases are the phases a run without -phases runs: all but
// profiles, whose seeding of 1,000,000 users on each store takes longer
// than the rest of the run (-phases profiles, or a list with it, runs it).
var defaultPhases = slices.DeleteFunc(slices.Clone(allPhases), func(p string) bool { return p == "profiles" })

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (h *harness) hostInfo() {
	host := &h.res.Host
	host.CPUs = runtime.NumCPU()
	host.GoVersion = runtime.Version()
	host.LoadAvg = proc.LoadAvg()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		host.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				host.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
}

// build builds the release binary of usersd as make build does (static,
// CGO off), the bare ceiling, and resolves the pinned ghz.
func (h *harness) build(ctx context.Context) error {
	h.logf("building usersd (CGO_ENABLED=0), bareusers and ghz")
	ldflags := h.opt.LDFlags
	if ldflags == "" {
		commit := "unknown"
		if b, err := exec.CommandContext(ctx, "git", "-C", h.opt.Repo, "rev-parse", "--short", "HEAD").Output(); err == nil {
			commit = strings.TrimSpace(string(b))
		}
		ldflags = "-s -w -X main.version=bench -X main.commit=" + commit
	}
	h.usersd = filepath.Join(h.work, "usersd")
	h.bare = filepath.Join(h.work, "bareusers")
	steps := []struct {
		dir  string
		args []string
	}{
		{h.opt.Repo, []string{"build", "-trimpath", "-ldflags", ldflags, "-o", h.usersd, "./cmd/usersd"}},
		{h.opt.Bench, []string{"build", "-trimpath", "-o", h.bare, "./cmd/bareusers"}},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, "go", s.args...)
		cmd.Dir = s.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(s.args, " "), err, out)
		}
	}
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "ghz")
	cmd.Dir = h.opt.Bench
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go tool -n ghz: %w", err)
	}
	h.ghz = strings.TrimSpace(string(out))
	// Authentication is off in these runs; say so where the binary has the
	// flag (its default is none too).
	if b, _ := exec.CommandContext(ctx, h.usersd, "serve", "-h").CombinedOutput(); strings.Contains(string(b), "-auth ") {
		h.usersdFlags = append(h.usersdFlags, "--auth=none")
	}
	if b, err := exec.CommandContext(ctx, h.usersd, "version").Output(); err == nil {
		h.res.Host.UsersdBuild = strings.TrimSpace(string(b))
	}
	if fi, err := os.Stat(h.usersd); err == nil {
		h.res.Footprint.BinaryBytes = fi.Size()
	}
	return nil
}

// newStore makes an empty database: a file for SQLite, a new database on
// the Postgres server; tag tells apart the databases of one store.
func (h *harness) newStore(ctx context.Context, name, tag string) (*store, error) {
	if name == "sqlite" {
		return &store{name: name, url: "sqlite:" + filepath.Join(h.work, "bench"+tag+".db")}, nil
	}
	db := "usersd_bench_" + h.nonce + tag
	conn, err := pgx.Connect(ctx, h.opt.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("postgres (%s; set USERSD_BENCH_POSTGRES_URL or -stores sqlite): %w", redact(h.opt.PostgresURL), err)
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&version); err == nil {
		h.res.Host.Postgres = version
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database %s: %w", db, err)
	}
	u, err := withDatabase(h.opt.PostgresURL, db)
	if err != nil {
		h.dropDatabase(db)
		return nil, err
	}
	return &store{name: name, url: u, dbName: db}, nil
}

func (h *harness) dropDatabase(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, h.opt.PostgresURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "usersbench: drop database %s: %v\n", name, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "usersbench: drop database %s: %v\n", name, err)
	}
}

// round waits for an idle machine, then measures every server on every
// store, in an order that rotates with the round.
func (h *harness) round(ctx context.Context, r int) error {
	idle, waited, ok, err := proc.WaitIdle(ctx, h.opt.MinIdle, h.opt.IdleWait)
	if err != nil {
		return err
	}
	h.res.Rounds = append(h.res.Rounds, report.Round{Round: r, Idle: idle, Waited: waited, IdleOK: ok, LoadAvg: proc.LoadAvg()})
	if !ok {
		h.logf("round %d: machine still busy after %s (%.0f%% idle); measuring anyway", r, waited.Round(time.Second), idle*100)
	} else {
		h.logf("round %d: machine %.0f%% idle", r, idle*100)
	}
	for _, st := range rotate(h.stores, r-1) {
		if err := h.roundStore(ctx, r, st); err != nil {
			return err
		}
	}
	return nil
}

// The calls of the table, in the order they run: CreateUser last, since
// it grows the table.
var tableCalls = []string{"GetUser", "ListUsers", "BatchGetUsers", "CreateUser"}

// roundStore measures every server on st. The servers run side by side
// (all but the one under load are idle) so that each workload is measured
// on each of them back to back, in an order that rotates with the round:
// a candidate and its ceiling meet the same background load. Logging and
// tracing off is measured on GetUser only; pgbench after GetUser.
func (h *harness) roundStore(ctx context.Context, r int, st *store) error {
	var servers []*server
	defer func() {
		for _, srv := range servers {
			if srv.kind == report.ServerUsersd {
				if mem, err := proc.Memory(srv.p.Pid()); err == nil {
					h.hwm[st.name] = max(h.hwm[st.name], mem.HWM)
				}
			}
			srv.stop()
		}
	}()
	for _, kind := range []string{report.ServerUsersd, report.ServerBare, report.ServerObsOff} {
		srv, err := h.startServer(ctx, st, kind)
		if err != nil {
			return err
		}
		servers = append(servers, srv)
	}
	for _, call := range tableCalls {
		for _, api := range rotate([]string{"http", "grpc"}, r-1) {
			for _, srv := range rotate(servers, r-1) {
				if srv.kind == report.ServerObsOff && call != "GetUser" {
					continue
				}
				m, err := h.measure(ctx, r, st, srv, api, call, h.opt.Concurrency, h.opt.Warmup, h.opt.Duration)
				if err != nil {
					return err
				}
				h.res.Measurements = append(h.res.Measurements, m)
				h.logf("  %-8s %-13s %-4s %-13s %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  CPU %.3f s/1k%s",
					st.name, srv.kind, api, call, m.RPS, msf(m.P50), msf(m.P99), m.CPUPer1k, errNote(m.Result))
				if srv.kind == report.ServerUsersd {
					h.loadRSS[st.name] = max(h.loadRSS[st.name], m.RSSKiB)
				}
			}
		}
		if call == "GetUser" && st.name == "postgres" {
			if err := h.measurePGBench(ctx, r, st); err != nil {
				return err
			}
		}
	}
	return nil
}

// measure warms srv up with the workload for warm, then measures it for
// d: the load tool's figures and the server process's CPU time and memory.
func (h *harness) measure(ctx context.Context, r int, st *store, srv *server, api, call string, conc int, warm, d time.Duration) (report.Measurement, error) {
	m := report.Measurement{Round: r, Store: st.name, API: api, Call: call, Server: srv.kind, Concurrency: conc}
	if _, err := h.drive(ctx, st, srv, api, call, conc, warm, 0); err != nil {
		return m, err
	}
	cpu0, err := proc.CPU(srv.p.Pid())
	if err != nil {
		return m, err
	}
	res, err := h.drive(ctx, st, srv, api, call, conc, d, 0)
	if err != nil {
		return m, err
	}
	cpu1, err := proc.CPU(srv.p.Pid())
	if err != nil {
		return m, err
	}
	m.Result, m.CPU = res, cpu1-cpu0
	if res.OK > 0 {
		m.CPUPer1k = m.CPU.Seconds() / float64(res.OK) * 1000
	}
	if mem, err := proc.Memory(srv.p.Pid()); err == nil {
		m.RSSKiB = mem.RSS
	}
	if res.OK == 0 {
		return m, fmt.Errorf("%s %s %s on %s: no request succeeded: %s", st.name, srv.kind, call, api, res.FirstErr)
	}
	return m, nil
}

// measurePGBench measures the database ceiling: GetUser's SELECT through
// pgbench, on ids of the same set.
func (h *harness) measurePGBench(ctx context.Context, r int, st *store) error {
	scripts := make([]string, 0, 100)
	for _, id := range st.ids[:min(100, len(st.ids))] {
		scripts = append(scripts, "SELECT id, email, display_name, state, labels, create_time, update_time, delete_time, revision FROM users WHERE id = '"+id+"';")
	}
	cfg := load.PGBenchConfig{Bin: "pgbench", URL: st.url, Scripts: scripts, Concurrency: h.opt.Concurrency, Duration: h.opt.Duration, Dir: h.work}
	if !h.opt.Quick {
		warm := cfg
		warm.Duration = time.Second
		if _, err := load.RunPGBench(ctx, warm); err != nil {
			return err
		}
	}
	res, err := load.RunPGBench(ctx, cfg)
	if err != nil {
		return err
	}
	m := report.Measurement{Round: r, Store: st.name, API: "sql", Call: "GetUser", Server: report.ServerDB, Concurrency: h.opt.Concurrency, Result: res}
	h.res.Measurements = append(h.res.Measurements, m)
	h.logf("  %-8s %-13s %-4s %-13s %8.0f tx/s   p50 %6.2f ms  p99 %6.2f ms%s", st.name, "pgbench", "sql", "GetUser", res.RPS, msf(res.P50), msf(res.P99), errNote(res))
	return nil
}

func (h *harness) writeResults() (string, error) {
	name := h.res.Started.Format("20060102-150405")
	if h.opt.Webhooks {
		name += "-webhooks"
	} else if h.opt.Quick {
		name += "-quick"
	}
	path := filepath.Join(h.opt.Out, name+".json")
	return path, h.res.Write(path)
}

// rotate returns xs turned left by n.
func rotate[T any](xs []T, n int) []T {
	if len(xs) == 0 {
		return xs
	}
	n %= len(xs)
	return append(append([]T{}, xs[n:]...), xs[:n]...)
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func errNote(r load.Result) string {
	if r.Errors == 0 {
		return ""
	}
	return fmt.Sprintf("  (%d errors: %s)", r.Errors, r.FirstErr)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
