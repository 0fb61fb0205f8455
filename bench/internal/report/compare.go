package report

import (
	"fmt"
	"io"
)

// Compare writes how run b differs from run a: the table row by row
// (throughput, p99, CPU per request, ratio), the start-up and footprint
// figures, and the targets. Rows only one run has are listed as such.
func Compare(w io.Writer, a, b *Run) {
	fmt.Fprintf(w, "A: %s (quick=%v, %d rounds, %d CPUs, load %.1f at start%s)\n", a.Started.Format("2006-01-02 15:04:05"), a.Quick, a.Config.Rounds, a.Host.CPUs, a.Host.LoadAvg, samplerNote(a))
	fmt.Fprintf(w, "B: %s (quick=%v, %d rounds, %d CPUs, load %.1f at start%s)\n\n", b.Started.Format("2006-01-02 15:04:05"), b.Quick, b.Config.Rounds, b.Host.CPUs, b.Host.LoadAvg, samplerNote(b))
	if a.Quick != b.Quick || a.Host.CPUs != b.Host.CPUs {
		fmt.Fprintln(w, "Warning: the runs differ in mode or machine; differences may not be the code's.")
		fmt.Fprintln(w)
	}

	fmt.Fprintln(w, "| store | api | call | server | req/s A | req/s B | Δ req/s | p99 ms A | p99 ms B | CPU s/1k A | CPU s/1k B | Δ CPU | ratio A | ratio B |")
	fmt.Fprintln(w, "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	rowsB := map[Key]Row{}
	for _, r := range b.Table {
		rowsB[r.Key()] = r
	}
	seen := map[Key]bool{}
	for _, ra := range a.Table {
		rb, ok := rowsB[ra.Key()]
		seen[ra.Key()] = true
		if !ok {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | — | | %.2f | — | %s | — | | %s | — |\n",
				ra.Store, ra.API, ra.Call, ra.Server, thousands(ra.RPS), ra.P99ms, num(ra.CPUPer1k, "%.3f"), num(ra.Ratio, "%.2f"))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %.2f | %.2f | %s | %s | %s | %s | %s |\n",
			ra.Store, ra.API, ra.Call, ra.Server, thousands(ra.RPS), thousands(rb.RPS), delta(ra.RPS, rb.RPS),
			ra.P99ms, rb.P99ms, num(ra.CPUPer1k, "%.3f"), num(rb.CPUPer1k, "%.3f"), delta(ra.CPUPer1k, rb.CPUPer1k),
			num(ra.Ratio, "%.2f"), num(rb.Ratio, "%.2f"))
	}
	for _, rb := range b.Table {
		if !seen[rb.Key()] {
			fmt.Fprintf(w, "| %s | %s | %s | %s | — | %s | | — | %.2f | — | %s | | — | %s |\n",
				rb.Store, rb.API, rb.Call, rb.Server, thousands(rb.RPS), rb.P99ms, num(rb.CPUPer1k, "%.3f"), num(rb.Ratio, "%.2f"))
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | A | B |")
	fmt.Fprintln(w, "|---|---:|---:|")
	startA, startB := map[string]float64{}, map[string]float64{}
	for _, s := range a.Startup {
		startA[s.Store] = s.MedianMs
	}
	for _, s := range b.Startup {
		startB[s.Store] = s.MedianMs
	}
	for _, store := range []string{"sqlite", "postgres"} {
		fmt.Fprintf(w, "| start to ready, %s (ms, median) | %s | %s |\n", store, num(startA[store], "%.1f"), num(startB[store], "%.1f"))
		fmt.Fprintf(w, "| idle RSS, %s (MiB) | %s | %s |\n", store,
			num(float64(a.Footprint.IdleRSSKiB[store])/1024, "%.1f"), num(float64(b.Footprint.IdleRSSKiB[store])/1024, "%.1f"))
	}
	fmt.Fprintf(w, "| binary size (MiB) | %.1f | %.1f |\n", float64(a.Footprint.BinaryBytes)/(1<<20), float64(b.Footprint.BinaryBytes)/(1<<20))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target | A | B |")
	fmt.Fprintln(w, "|---|---|---|")
	tb := map[string]Target{}
	for _, t := range b.Targets {
		tb[t.Name] = t
	}
	for _, ta := range a.Targets {
		fmt.Fprintf(w, "| %s (want %s) | %s | %s |\n", ta.Name, ta.Want, verdict(ta, true), verdict(tb[ta.Name], tb[ta.Name].Name != ""))
	}
}

func verdict(t Target, present bool) string {
	switch {
	case !present:
		return "—"
	case !t.Measured:
		return "not measured"
	case t.Met:
		return fmt.Sprintf("met (%.3g %s)", t.Got, t.Unit)
	default:
		return fmt.Sprintf("NOT MET (%.3g %s)", t.Got, t.Unit)
	}
}

func num(v float64, format string) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf(format, v)
}

func delta(a, b float64) string {
	if a == 0 || b == 0 {
		return ""
	}
	return fmt.Sprintf("%+.1f%%", (b/a-1)*100)
}

// samplerNote names the sampler usersd ran with, when the run set one.
func samplerNote(r *Run) string {
	if r.Config.Sampler == "" {
		return ""
	}
	return ", sampler " + r.Config.Sampler + " " + r.Config.SamplerArg
}
