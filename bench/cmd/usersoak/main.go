// Command usersoak is the soak test of usersd (make soak): it builds the
// release binary, runs it on a fresh Postgres database and on SQLite, and
// drives a mixed workload at a fixed rate for a long while (10 minutes by
// default): creates, gets, lists, updates and deletes over HTTP (v1 and
// v2) and gRPC, an import every minute, webhook deliveries to a receiver of
// its own on loopback, and a consumer of the events feed. Every few seconds
// it samples the process (RSS, Go heap, goroutines, open file descriptors,
// database connections) and the latency of the window, and prints a row.
// At the end it compares the start (after a warm-up) with the end and exits
// non-zero when a figure grew past its tolerance, a request failed, or an
// event was lost. docs/operations.md ("Soak") says what the tolerances are
// and why.
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
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "usersoak:", err)
		os.Exit(1)
	}
}

// options bound a run.
type options struct {
	Repo          string // the repository root
	LDFlags       string
	PostgresURL   string // a server where the tool may create a database
	Stores        []string
	Duration      time.Duration // of the load, warm-up included, per store
	Warmup        time.Duration // samples before this are printed, not judged
	Interval      time.Duration // between samples
	Rate          float64       // requests a second, imports and the feed aside
	Workers       int           // requests in flight at most
	ImportEvery   time.Duration
	ImportSize    int
	FeedReconnect time.Duration // the feed consumer reconnects this often
	Keep          bool          // keep the work directory and the server logs
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opt, err := parseOptions(args[1:], getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	return runSoak(ctx, opt, stdout, stderr)
}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("usersoak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&o.Repo, "repo", "..", "`directory` of the usersd repository")
	fs.StringVar(&o.LDFlags, "ldflags", "", "linker flags of the release build (make passes its own)")
	pg := env("USERSD_TEST_POSTGRES_URL", env("USERSD_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"))
	fs.StringVar(&o.PostgresURL, "postgres-url", pg, "Postgres server the tool creates its database on (default from USERSD_TEST_POSTGRES_URL, then USERSD_BENCH_POSTGRES_URL)")
	stores := fs.String("store", env("SOAK_STORE", "both"), "sqlite, postgres or both, one after the other (default from SOAK_STORE)")
	dur := fs.String("duration", env("SOAK_DURATION", "10m"), "load per store, warm-up included (default from SOAK_DURATION)")
	warm := fs.String("warmup", env("SOAK_WARMUP", ""), "samples before this are not judged (default from SOAK_WARMUP, else 30s or a fifth of the duration if less)")
	interval := fs.String("interval", env("SOAK_INTERVAL", "5s"), "time between samples (default from SOAK_INTERVAL)")
	rate := fs.String("rate", env("SOAK_RATE", "100"), "requests a second (default from SOAK_RATE)")
	fs.IntVar(&o.Workers, "workers", 16, "requests in flight at most, each worker on its own connection")
	fs.DurationVar(&o.ImportEvery, "import-every", time.Minute, "one import this often")
	fs.IntVar(&o.ImportSize, "import-size", 1000, "users per import")
	fs.DurationVar(&o.FeedReconnect, "feed-reconnect", 15*time.Second, "the feed consumer ends its stream and resumes from its cursor this often")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory (server logs)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: usersoak [flags]   (make soak; SOAK_DURATION=2m SOAK_STORE=postgres make soak)\n\nSee docs/operations.md, \"Soak\".\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.Duration, err = time.ParseDuration(*dur); err != nil || o.Duration < 45*time.Second {
		return o, fmt.Errorf("duration %q: want a duration of at least 45s", *dur)
	}
	if o.Interval, err = time.ParseDuration(*interval); err != nil || o.Interval < time.Second {
		return o, fmt.Errorf("interval %q: want a duration of at least 1s", *interval)
	}
	o.Warmup = min(30*time.Second, o.Duration/5)
	if *warm != "" {
		if o.Warmup, err = time.ParseDuration(*warm); err != nil || o.Warmup < 0 || o.Warmup >= o.Duration {
			return o, fmt.Errorf("warmup %q: want a duration shorter than the run", *warm)
		}
	}
	if _, err := fmt.Sscan(*rate, &o.Rate); err != nil || o.Rate <= 0 || o.Rate > 5000 {
		return o, fmt.Errorf("rate %q: want requests a second, above 0 and at most 5000", *rate)
	}
	if o.Workers < 1 || o.ImportSize < 1 || o.ImportSize > 10_000 {
		return o, errors.New("-workers must be positive, -import-size from 1 to 10000")
	}
	switch s := strings.TrimSpace(*stores); s {
	case "both":
		o.Stores = []string{"postgres", "sqlite"}
	case "sqlite", "postgres":
		o.Stores = []string{s}
	default:
		return o, fmt.Errorf("store %q: want sqlite, postgres or both", s)
	}
	if o.Repo, err = filepath.Abs(o.Repo); err != nil {
		return o, err
	}
	return o, nil
}
