package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/profsum"
	"github.com/usersd/usersd/bench/internal/report"
)

// profile takes a CPU profile of usersd serving GetUser, over HTTP and
// over gRPC, from /debug/pprof/profile on the admin port while the load
// runs, and keeps it next to the results with its go tool pprof -top.
func (h *harness) profile(ctx context.Context) error {
	st := h.scaleStore()
	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return err
	}
	defer srv.stop()
	secs := h.opt.ProfileSecs
	for _, api := range []string{"http", "grpc"} {
		h.logf("profiling usersd (%s) serving GetUser over %s for %ds", st.name, api, secs)
		type loadResult struct {
			res load.Result
			err error
		}
		done := make(chan loadResult, 1)
		go func() {
			res, err := h.drive(ctx, st, srv, api, "GetUser", h.opt.Concurrency, time.Duration(secs)*time.Second+time.Second, 0)
			done <- loadResult{res, err}
		}()
		time.Sleep(300 * time.Millisecond) // the load is under way
		base := filepath.Join(h.opt.Out, fmt.Sprintf("%s-getuser-%s-%s", h.res.Started.Format("20060102-150405"), st.name, api))
		file, allocsFile := base+".pprof", base+"-allocs.pprof"
		allocErr := make(chan error, 1)
		go func() {
			allocErr <- fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/allocs?seconds=%d", srv.adminAddr, secs), allocsFile)
		}()
		perr := fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.adminAddr, secs), file)
		lr := <-done
		if err := errors.Join(lr.err, perr, <-allocErr); err != nil {
			return err
		}
		p := report.Profile{Store: st.name, API: api, Call: "GetUser", File: filepath.Base(file), Seconds: secs, RPS: lr.res.RPS}
		if objs, bytes, err := profsum.Allocations(allocsFile); err == nil && lr.res.RPS > 0 {
			n := lr.res.RPS * float64(secs)
			p.AllocsPerReq, p.BytesPerReq = float64(objs)/n, float64(bytes)/n
		}
		if p.Top, err = pprofTop(ctx, file, false); err != nil {
			return err
		}
		if p.TopCum, err = pprofTop(ctx, file, true); err != nil {
			return err
		}
		shares, err := profsum.Summarise(file, "cpu")
		if err != nil {
			return err
		}
		for _, sh := range shares {
			p.Components = append(p.Components, report.Share(sh))
		}
		if shares, err = profsum.Summarise(allocsFile, "alloc_space"); err != nil {
			return err
		}
		for _, sh := range shares {
			p.AllocComponents = append(p.AllocComponents, report.Share(sh))
		}
		h.res.Profiles = append(h.res.Profiles, p)
	}
	return nil
}

func fetch(ctx context.Context, url, file string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop returns go tool pprof -top of the profile, by flat or
// cumulative time, its first 30 functions.
func pprofTop(ctx context.Context, file string, cum bool) (string, error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=30"}
	if cum {
		args = append(args, "-cum")
	}
	out, err := exec.CommandContext(ctx, "go", append(args, file)...).Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
