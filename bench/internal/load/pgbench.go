package load

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// PGBenchConfig is one run of pgbench with custom scripts.
type PGBenchConfig struct {
	Bin         string   // pgbench
	URL         string   // the database's connection URI
	Scripts     []string // statements, one script each, chosen at random per transaction (at most 128)
	Concurrency int
	Duration    time.Duration // whole seconds, at least 1
	Dir         string        // scripts and per-transaction logs go here
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// RunPGBench runs pgbench in prepared mode and reads the latencies of every
// transaction from its log (-l).
func RunPGBench(ctx context.Context, cfg PGBenchConfig) (Result, error) {
	dir, err := os.MkdirTemp(cfg.Dir, "pgbench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	args := []string{"-n", "-M", "prepared", "-l", "--log-prefix", filepath.Join(dir, "tx"),
		"-c", strconv.Itoa(cfg.Concurrency), "-j", "2",
		"-T", strconv.Itoa(max(1, int(cfg.Duration.Round(time.Second)/time.Second)))}
	for i, s := range cfg.Scripts {
		f := filepath.Join(dir, fmt.Sprintf("s%03d.sql", i))
		if err := os.WriteFile(f, []byte(s+"\n"), 0o644); err != nil {
			return Result{}, err
		}
		args = append(args, "-f", f+"@1")
	}
	args = append(args, cfg.URL)
	cmd := exec.CommandContext(ctx, cfg.Bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, fmt.Errorf("pgbench: %w", context.Cause(ctx))
		}
		return Result{}, fmt.Errorf("pgbench: %w: %s", err, out)
	}
	r := Result{Tool: ToolPGBench}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return Result{}, fmt.Errorf("pgbench: no tps in output: %s", out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	if f := regexp.MustCompile(`number of failed transactions: ([0-9]+)`).FindSubmatch(out); f != nil {
		r.Errors, _ = strconv.Atoi(string(f[1]))
	}
	// Each log line: client_id transaction_no latency_us script_no epoch_s epoch_us.
	var lat []time.Duration
	logs, _ := filepath.Glob(filepath.Join(dir, "tx.*"))
	for _, name := range logs {
		f, err := os.Open(name)
		if err != nil {
			return Result{}, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fs[2], 10, 64)
			if err != nil {
				continue // "failed" or "skipped"
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
		f.Close()
	}
	r.Elapsed = time.Duration(float64(len(lat)) / tps * float64(time.Second))
	summarise(&r, lat)
	r.RPS = tps
	return r, nil
}
