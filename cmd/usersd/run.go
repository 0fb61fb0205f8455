package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usersd/usersd/internal/telemetry"
)

// Set by the release build (-ldflags -X).
var (
	version = "dev"
	commit  = ""
)

const usage = `usage: usersd [command] [flags]

Commands:
  serve     serve the gRPC and HTTP/JSON APIs (the default)
  gateway   serve the HTTP/JSON API only, from usersd replicas (--upstream)
  migrate   apply database migrations and exit
  version   print build information

Run "usersd COMMAND -h" for a command's flags.
`

// run is the whole program. It returns when ctx is cancelled or a SIGINT or
// SIGTERM arrives and everything it started has stopped; a second signal
// cuts the graceful shutdown short.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, hard, stop := withSignals(ctx)
	defer stop()

	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && len(rest[0]) > 0 && rest[0][0] != '-' {
		cmd, rest = rest[0], rest[1:]
	}
	var cfg config
	switch cmd {
	case "serve", "gateway", "migrate":
		fs := flagSet(cmd, &cfg, cmd != "migrate", stderr)
		if err := parseConfig(fs, rest, getenv); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
		logOut := telemetry.NewLogBuffer(stdout, cfg.LogFlushInterval)
		defer logOut.Close()
		log, err := telemetry.NewLogger(logOut, cfg.LogLevel, cfg.LogFormat)
		if err != nil {
			return err
		}
		if cmd == "migrate" {
			return migrate(ctx, cfg, log)
		}
		setGCPercent(getenv)
		if cmd == "gateway" {
			return gatewayCommand(ctx, hard, cfg, getenv, log)
		}
		return serve(ctx, hard, cfg, getenv, log)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// defaultGCPercent is the garbage collector's target of the servers when
// GOGC is not set: the next collection starts when the heap has grown to
// five times what the last one left live. A server's live heap is small
// (a few MiB) and every request allocates tens of KiB, so Go's default of
// 100 collects dozens of times a second under load; 400 cuts that about
// fourfold for some MiB more heap (docs/performance.md has the figures).
// GOGC, and GOMEMLIMIT under a container's memory limit, still apply.
const defaultGCPercent = 400

// setGCPercent applies defaultGCPercent unless GOGC is set.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

// buildCommit is the commit the binary was built from: set by the release
// build, else from the Go build info, else "unknown".
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func versionString() string {
	return fmt.Sprintf("usersd %s (commit %s, %s, %s/%s)", version, buildCommit(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newMetrics returns the process's metrics on a registry of their own,
// labelled with this build.
func newMetrics() *telemetry.Metrics {
	return telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.BuildInfo{Version: version, Commit: buildCommit(), GoVersion: runtime.Version()})
}
