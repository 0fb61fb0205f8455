package main

import (
	"context"
	"slices"
	"time"

	"github.com/usersd/usersd/bench/internal/proc"
	"github.com/usersd/usersd/bench/internal/report"
)

// idleSamples is how many of the starts also measure idle memory, a second
// after ready.
const idleSamples = 3

// startup times opt.Starts starts of usersd per store, from exec to the
// first 200 from /readyz, and measures the idle process's memory.
func (h *harness) startup(ctx context.Context) error {
	h.res.Footprint.IdleRSSKiB = map[string]int64{}
	h.res.Footprint.IdleAnonKiB = map[string]int64{}
	h.res.Footprint.IdleFileKiB = map[string]int64{}
	for _, st := range h.stores {
		s := report.Startup{Store: st.name}
		var rss, anon, file []float64
		for i := range h.opt.Starts {
			srv, err := h.startServer(ctx, st, report.ServerUsersd)
			if err != nil {
				return err
			}
			s.Samples = append(s.Samples, msf(srv.ready))
			if i < idleSamples {
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
				if m, err := proc.Memory(srv.p.Pid()); err == nil {
					rss, anon, file = append(rss, float64(m.RSS)), append(anon, float64(m.Anon)), append(file, float64(m.File))
				}
			}
			srv.stop()
		}
		s.MedianMs = report.Median(s.Samples)
		h.res.Startup = append(h.res.Startup, s)
		h.res.Footprint.IdleRSSKiB[st.name] = int64(report.Median(rss))
		h.res.Footprint.IdleAnonKiB[st.name] = int64(report.Median(anon))
		h.res.Footprint.IdleFileKiB[st.name] = int64(report.Median(file))
		sorted := slices.Clone(s.Samples)
		slices.Sort(sorted)
		h.logf("start to ready (%s): median %.1f ms over %d starts (min %.1f, max %.1f); idle RSS %.1f MiB (anonymous %.1f, file %.1f)",
			st.name, s.MedianMs, len(sorted), sorted[0], sorted[len(sorted)-1], report.Median(rss)/1024, report.Median(anon)/1024, report.Median(file)/1024)
	}
	return nil
}
