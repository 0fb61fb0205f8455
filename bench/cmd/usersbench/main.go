// Command usersbench is the benchmark harness of usersd (make bench): it
// builds the release binary, runs it on SQLite and on Postgres next to its
// ceilings (bare servers on the same SQL, and pgbench), and prints one
// table of throughput, latency and CPU per request, plus scale, start-up
// and footprint figures and the targets met or not. docs/performance.md
// says what each figure means.
//
//	usersbench [run] [flags]      measure (BENCH_QUICK=1 or -quick: a short run)
//	usersbench compare A.json B.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/usersd/usersd/bench/internal/report"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "usersbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// SIGINT or SIGTERM stops the run, which then prints and writes what
	// it measured; it says which signal it was.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(stderr, "usersbench: %v: stopping\n", s)
			cancel()
		case <-ctx.Done():
		}
	}()

	cmd, rest := "run", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "run":
		opt, err := parseOptions(rest, getenv, stderr)
		if err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		return runBench(ctx, opt, stdout, stderr)
	case "compare":
		if len(rest) != 2 {
			return errors.New("usage: usersbench compare A.json B.json")
		}
		a, err := report.Read(rest[0])
		if err != nil {
			return err
		}
		b, err := report.Read(rest[1])
		if err != nil {
			return err
		}
		report.Compare(stdout, a, b)
		return nil
	default:
		return fmt.Errorf("unknown command %q: want run or compare", cmd)
	}
}

// options bound a run. Quick changes the defaults of the others.
type options struct {
	Quick       bool
	Repo        string // the repository root
	Bench       string // the bench module
	Out         string // results directory
	LDFlags     string
	PostgresURL string // a server where the harness may create databases
	Stores      []string

	Rounds       int
	Duration     time.Duration   // each measured run
	Warmup       time.Duration   // before each measured run, not measured
	Concurrency  int             // requests in flight in the table's runs
	Users        int             // seeded through the import API (multiple of 10,000)
	ScaleUsers   int             // Postgres users for the list-page figures; users of the tenant figure, on each store
	Tenants      int             // tenants of the tenant figure
	ProfileUsers int             // users of the one tenant of the profiles figure, on each store
	Phases       map[string]bool // the phases after the rounds that run
	Sweep        []int           // concurrencies of the scale figures
	Pages        []int           // list pages measured, when there are that many
	PageSamples  int
	Starts       int
	ProfileSecs  int
	MinIdle      float64       // idle fraction to wait for before a round
	IdleWait     time.Duration // longest wait for it
	Deadline     time.Duration // the whole run is cut off after this
	Sampler      string        // OTEL_TRACES_SAMPLER of usersd (not of its logging+tracing-off twin); empty: usersd's default
	SamplerArg   string        // OTEL_TRACES_SAMPLER_ARG with it
	ServerLogs   bool          // keep the servers' output in the work directory
	Keep         bool          // keep the work directory
	Webhooks     bool          // measure the webhook figure only
	Table        bool          // measure the table's rounds (false: the phases alone)
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	quick := getenv("BENCH_QUICK") != "" && getenv("BENCH_QUICK") != "0"
	fs := flag.NewFlagSet("usersbench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.Quick, "quick", quick, "a short run (default from BENCH_QUICK)")
	fs.StringVar(&o.Repo, "repo", "..", "`directory` of the usersd repository")
	fs.StringVar(&o.Out, "out", "", "`directory` for the results (default REPO/bench/results)")
	fs.StringVar(&o.LDFlags, "ldflags", "", "linker flags of the release build (make passes its own)")
	pg := getenv("USERSD_BENCH_POSTGRES_URL")
	if pg == "" {
		pg = getenv("USERSD_TEST_POSTGRES_URL")
	}
	if pg == "" {
		pg = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	fs.StringVar(&o.PostgresURL, "postgres-url", pg, "Postgres server the harness creates its databases on (default from USERSD_BENCH_POSTGRES_URL, then USERSD_TEST_POSTGRES_URL)")
	stores := fs.String("stores", "sqlite,postgres", "stores to measure")
	rounds := fs.Int("rounds", 0, "interleaved rounds (default 3; quick 1)")
	dur := fs.Duration("duration", 0, "length of each measured run (default 3s; quick 1s)")
	warm := fs.Duration("warmup", 0, "warm-up before each measured run (default 700ms; quick 300ms)")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "requests in flight in the table's runs")
	users := fs.Int("users", 0, "users seeded through the import API, a multiple of 10000 (default 100000; quick 20000)")
	scale := fs.Int("scale-users", 0, "Postgres users for the list-page figures, and users of the tenant figure on each store (default 1000000; quick 200000)")
	tenants := fs.Int("tenants", 0, "tenants the tenant figure spreads its users over (default 1000; quick 200)")
	profileUsers := fs.Int("profile-users", 0, "users of the one tenant of the profiles figure, on each store, a multiple of 10000 (default 1000000; quick 100000)")
	phases := fs.String("phases", strings.Join(defaultPhases, ","), "phases to run after the table's rounds, comma-separated, of "+strings.Join(allPhases, ",")+"; \"none\" for the table alone")
	starts := fs.Int("starts", 0, "starts timed per store (default 20; quick 5)")
	profSecs := fs.Int("profile-seconds", 0, "length of each CPU profile (default 5; quick 2)")
	pages := fs.String("pages", "", "list pages measured, comma-separated (default 1,10,100,1000,10000; quick 1,100,1000)")
	fs.Float64Var(&o.MinIdle, "min-idle", 0.85, "idle CPU fraction to wait for before each round")
	idleWait := fs.Duration("idle-wait", 0, "longest wait for an idle machine before a round (default 30s; quick 5s)")
	deadline := fs.Duration("deadline", 0, "bound on the run after the build (default 25m; quick 10m)")
	fs.StringVar(&o.Sampler, "sampler", "", "OTEL_TRACES_SAMPLER of usersd, e.g. parentbased_traceidratio (default: usersd's, parentbased_always_on); the logging+tracing-off server keeps always_off")
	fs.StringVar(&o.SamplerArg, "sampler-arg", "", "OTEL_TRACES_SAMPLER_ARG with -sampler, e.g. 0.01")
	fs.BoolVar(&o.ServerLogs, "server-logs", false, "write the servers' output to files in the work directory (and keep it)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory, and the profiles figure's Postgres database")
	fs.BoolVar(&o.Table, "table", true, "measure the table's rounds; -table=false runs the phases alone (and seeds the stores only for the phases that read them)")
	fs.BoolVar(&o.Webhooks, "webhooks-only", false, "measure only the webhook delivery figure (no seeding, rounds or other figures)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: usersbench [run] [flags]   (make bench; BENCH_QUICK=1 for a short run)\n       usersbench compare A.json B.json\n\nSee docs/performance.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	pick := func(set, full, short int) int {
		switch {
		case set > 0:
			return set
		case o.Quick:
			return short
		}
		return full
	}
	pickD := func(set, full, short time.Duration) time.Duration {
		return time.Duration(pick(int(set), int(full), int(short)))
	}
	o.Rounds = pick(*rounds, 3, 1)
	o.Duration = pickD(*dur, 3*time.Second, time.Second)
	o.Warmup = pickD(*warm, 700*time.Millisecond, 300*time.Millisecond)
	o.Users = pick(*users, 100_000, 20_000)
	o.ScaleUsers = pick(*scale, 1_000_000, 200_000)
	o.Tenants = pick(*tenants, 1000, 200)
	o.ProfileUsers = pick(*profileUsers, 1_000_000, 100_000)
	if o.ProfileUsers%importSize != 0 {
		return o, fmt.Errorf("-profile-users %d: want a multiple of %d", o.ProfileUsers, importSize)
	}
	o.Phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		switch p = strings.TrimSpace(p); {
		case p == "none":
		case slices.Contains(allPhases, p):
			o.Phases[p] = true
		default:
			return o, fmt.Errorf("-phases: %q is none of %v", p, allPhases)
		}
	}
	if o.ScaleUsers < o.Tenants || o.Tenants < 1 {
		return o, fmt.Errorf("-tenants %d: want at least 1, and no more than -scale-users", o.Tenants)
	}
	o.Starts = pick(*starts, 20, 5)
	o.IdleWait = pickD(*idleWait, 30*time.Second, 5*time.Second)
	if o.Quick {
		o.Sweep = []int{1, 4, 16, 64, 256}
		o.Pages = []int{1, 100, 1000}
		o.PageSamples = 40
		o.ProfileSecs = 2
		o.Deadline = 10 * time.Minute
	} else {
		o.Sweep = []int{1, 2, 4, 8, 16, 32, 64, 128, 256}
		o.Pages = []int{1, 10, 100, 1000, 10000}
		o.PageSamples = 200
		o.ProfileSecs = 5
		o.Deadline = 25 * time.Minute
	}
	if *deadline > 0 {
		o.Deadline = *deadline
	}
	if *profSecs > 0 {
		o.ProfileSecs = *profSecs
	}
	if *pages != "" {
		o.Pages = nil
		for _, p := range strings.Split(*pages, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 1 {
				return o, fmt.Errorf("-pages: %q is not a page number", p)
			}
			o.Pages = append(o.Pages, n)
		}
	}
	if o.Users%10_000 != 0 || o.Users < 10_000 {
		return o, fmt.Errorf("-users %d: want a multiple of 10000", o.Users)
	}
	for _, s := range strings.Split(*stores, ",") {
		switch s = strings.TrimSpace(s); s {
		case "sqlite", "postgres":
			o.Stores = append(o.Stores, s)
		case "":
		default:
			return o, fmt.Errorf("-stores: unknown store %q", s)
		}
	}
	if o.Phases["profiles"] && *deadline == 0 {
		// Time to seed the profiles figure's users through the import on
		// each store, and to measure them.
		o.Deadline += time.Duration(len(o.Stores)) * profilesBudget(o.ProfileUsers)
	}
	if o.SamplerArg != "" && o.Sampler == "" {
		return o, errors.New("-sampler-arg without -sampler")
	}
	if len(o.Stores) == 0 {
		return o, errors.New("-stores: none")
	}
	var err error
	if o.Repo, err = filepath.Abs(o.Repo); err != nil {
		return o, err
	}
	o.Bench = filepath.Join(o.Repo, "bench")
	if o.Out == "" {
		o.Out = filepath.Join(o.Bench, "results")
	}
	return o, nil
}
