package load

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// GHZConfig is one run of ghz against a gRPC server.
type GHZConfig struct {
	Bin         string // the ghz binary (go tool -n ghz)
	Addr        string // host:port
	Call        string // package.Service.Method
	Data        []byte // JSON message, or an array of them used round-robin
	Concurrency int
	Connections int
	Duration    time.Duration
	RPS         int    // 0: as fast as possible
	Dir         string // where the report is written
}

// ghzReport is the part of ghz's JSON report that RunGHZ reads.
type ghzReport struct {
	Count          uint64         `json:"count"`
	Total          time.Duration  `json:"total"`
	Slowest        time.Duration  `json:"slowest"`
	ErrorDist      map[string]int `json:"errorDistribution"`
	StatusCodeDist map[string]int `json:"statusCodeDistribution"`
	Latency        []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
}

// RunGHZ runs ghz with cfg over plaintext; the methods are found by
// server reflection. Calls still in flight at the end of the duration are
// waited for.
func RunGHZ(ctx context.Context, cfg GHZConfig) (Result, error) {
	data := filepath.Join(cfg.Dir, "ghz-data.json")
	out := filepath.Join(cfg.Dir, "ghz-report.json")
	if err := os.WriteFile(data, cfg.Data, 0o644); err != nil {
		return Result{}, err
	}
	args := []string{
		"--insecure",
		"--call", cfg.Call,
		"--data-file", data,
		"--concurrency", strconv.Itoa(cfg.Concurrency),
		"--connections", strconv.Itoa(max(cfg.Connections, 1)),
		"--duration", cfg.Duration.String(),
		"--duration-stop", "wait",
		"--timeout", "30s",
		"--format", "json",
		"--output", out,
	}
	if cfg.RPS > 0 {
		args = append(args, "--rps", strconv.Itoa(cfg.RPS))
	}
	args = append(args, cfg.Addr)
	cmd := exec.CommandContext(ctx, cfg.Bin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("ghz %s: %w", cfg.Call, context.Cause(ctx))
		}
		return Result{}, fmt.Errorf("ghz %s: %w: %s", cfg.Call, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return Result{}, err
	}
	var rep ghzReport
	if err := json.Unmarshal(b, &rep); err != nil {
		return Result{}, fmt.Errorf("ghz report: %w", err)
	}
	r := Result{Tool: ToolGHZ, Elapsed: rep.Total, OK: rep.StatusCodeDist["OK"], Max: rep.Slowest}
	r.Errors = int(rep.Count) - r.OK
	for msg := range rep.ErrorDist {
		r.FirstErr = msg
		break
	}
	if r.Elapsed > 0 {
		r.RPS = float64(r.OK) / r.Elapsed.Seconds()
	}
	for _, l := range rep.Latency {
		switch l.Percentage {
		case 50:
			r.P50 = l.Latency
		case 99:
			r.P99 = l.Latency
		}
	}
	return r, nil
}
