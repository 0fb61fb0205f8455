package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/usersd/usersd/bench/internal/proc"
	"github.com/usersd/usersd/bench/internal/soak"
)

// windowSamples is how many samples each end's window takes at most: a
// minute at the default interval, so that it holds an import and quiet
// moments.
const windowSamples = 12

// loadRise is how much busier the machine may get before a latency that
// grew is put down to it: the end window's median load average above the
// start's by more than half, and by more than 1.
func loadRise(start, end float64) bool { return end > start*1.5 && end > start+1 }

// report prints the judgement of one store's soak and returns an error
// naming every figure that grew and every other failure.
func report(w io.Writer, store string, opt options, samples []sample, rec *recorder, fd *feed, rcv *receiver, lo, hi int, drained time.Duration) error {
	var judged []sample
	for _, s := range samples {
		if !s.warm {
			judged = append(judged, s)
		}
	}
	var problems []string
	win := soak.Window(len(judged), windowSamples)
	fmt.Fprintf(w, "\n%s: %d samples after the %s warm-up; start and end sum up the first and last %d (%s each)\n",
		store, len(judged), opt.Warmup, win, time.Duration(win)*opt.Interval)
	fmt.Fprintf(w, "%-18s %6s %9s %9s %9s %12s  %s\n", "figure", "of", "start", "end", "allowed", "tolerance", "verdict")
	series := func(f figure) (vs []float64, applies bool) {
		vs = make([]float64, len(judged))
		for i, s := range judged {
			vs[i] = f.get(s)
			applies = applies || !math.IsNaN(vs[i])
		}
		return vs, applies
	}
	loadVs, _ := series(loadFigure)
	load, loadErr := soak.Judge(loadVs, win, soak.Median, soak.Tolerance{})
	for _, f := range figures {
		vs, applies := series(f)
		if !applies {
			continue
		}
		v, err := soak.Judge(vs, win, f.stat, f.tol)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", f.name, err))
			fmt.Fprintf(w, "%-18s %s\n", f.name, err)
			continue
		}
		verdict := "ok"
		switch {
		case !v.Grew:
		case f.latency && loadErr == nil && loadRise(load.Start, load.End):
			verdict = "grew, as the machine's load did: not counted"
		default:
			verdict = "GREW"
			problems = append(problems, fmt.Sprintf("%s grew from %.1f to %.1f (allowed %.1f)", f.name, v.Start, v.End, v.Allowed))
		}
		fmt.Fprintf(w, "%-18s %6s %9.1f %9.1f %9.1f %12s  %s\n", f.name, f.stat, v.Start, v.End, v.Allowed, f.tol, verdict)
	}
	if loadErr == nil {
		fmt.Fprintf(w, "%-18s %6s %9.1f %9.1f %9s %12s  %s\n", loadFigure.name, "median", load.Start, load.End, "", "", "the machine's, not judged")
	}

	fmt.Fprintf(w, "\n%-8s %8s %7s %9s %9s %9s\n", "request", "ok", "errors", "p50 ms", "p99 ms", "max ms")
	total, failed := 0, 0
	for _, s := range rec.summary() {
		fmt.Fprintf(w, "%-8s %8d %7d %9.2f %9.2f %9.1f\n", s.op, s.ok, s.errs, ms(s.p50), ms(s.p99), ms(s.max))
		for i, e := range s.errors {
			if i == 5 {
				fmt.Fprintf(w, "           … %d more kinds\n", len(s.errors)-5)
				break
			}
			fmt.Fprintf(w, "           %s\n", e)
		}
		if s.op == opImport {
			if s.errs > 0 {
				problems = append(problems, fmt.Sprintf("%d of %d imports failed", s.errs, s.ok+s.errs))
			}
			continue
		}
		total += s.ok + s.errs
		failed += s.errs
	}
	if total == 0 {
		problems = append(problems, "no request was sent")
	} else if ratio := float64(failed) / float64(total); ratio > maxErrorRatio {
		problems = append(problems, fmt.Sprintf("%d of %d requests failed (%.2f%%, at most %.1f%% allowed)", failed, total, ratio*100, maxErrorRatio*100))
	}

	events, feedRepeats, _ := fd.set.counts()
	hooks, hookRepeats, _ := rcv.set.counts()
	rcv.set.mu.Lock()
	bad := rcv.set.bad
	rcv.set.mu.Unlock()
	missingHooks, unknownHooks := fd.set.missing(rcv.set), rcv.set.missing(fd.set)
	fd.mu.Lock()
	streams := fd.streams
	fd.mu.Unlock()
	fmt.Fprintf(w, "\nevents: the workload made %d", lo)
	if hi > lo {
		fmt.Fprintf(w, " to %d (%d outcomes unknown)", hi, hi-lo)
	}
	fmt.Fprintf(w, "; the feed consumer read %d over %d streams (%d repeated); the receiver got %d (%d repeated deliveries, %d refused); drained in %s\n",
		events, streams, feedRepeats, hooks, hookRepeats, bad, drained.Round(100*time.Millisecond))
	if events < lo || events > hi {
		problems = append(problems, fmt.Sprintf("the feed holds %d events, want %d to %d", events, lo, hi))
	}
	if feedRepeats > 0 {
		problems = append(problems, fmt.Sprintf("the feed repeated %d events", feedRepeats))
	}
	if errs := fd.errors(); len(errs) > 0 {
		problems = append(problems, "the feed's streams failed: "+strings.Join(errs, "; "))
	}
	// A stream the server ends with UNAVAILABLE is resumed from its cursor;
	// no event is lost or repeated (checked above). Rare ones are expected
	// (a connection reaching --grpc-max-connection-age); many are not.
	if why, n := fd.resumes(); n > 0 {
		fmt.Fprintf(w, "feed: %d of %d streams ended UNAVAILABLE and were resumed: %s\n", n, streams, strings.Join(why, "; "))
		if n*20 > streams {
			problems = append(problems, fmt.Sprintf("the feed's streams ended UNAVAILABLE %d times in %d streams (more than 5%%)", n, streams))
		}
	}
	if missingHooks > 0 || unknownHooks > 0 {
		problems = append(problems, fmt.Sprintf("webhooks: %d events of the feed were not delivered, %d deliveries were of events not in the feed", missingHooks, unknownHooks))
	}
	if bad > 0 {
		problems = append(problems, fmt.Sprintf("webhooks: %d deliveries had a bad signature", bad))
	}
	fmt.Fprintf(w, "load average now %.2f\n", proc.LoadAvg())
	if len(problems) == 0 {
		fmt.Fprintf(w, "%s: PASS\n\n", store)
		return nil
	}
	fmt.Fprintf(w, "%s: FAIL\n", store)
	for _, p := range problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	fmt.Fprintln(w)
	return errors.New(strings.Join(problems, "; "))
}
