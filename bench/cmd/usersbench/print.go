package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/usersd/usersd/bench/internal/report"
)

// print writes the report of the run: the table, the other figures and
// the targets, in Markdown.
func (h *harness) print(path string) {
	r := h.res
	w := h.out
	fmt.Fprintln(w)
	mode := "full run"
	if r.Quick {
		mode = "QUICK run (BENCH_QUICK=1): one short round, fewer users; indicative only"
	}
	fmt.Fprintf(w, "## usersd benchmark, %s\n\n", mode)
	fmt.Fprintf(w, "%s; %d× %s, %s, %s; Postgres %s; %s; took %s.\n", r.Started.Format(time.RFC3339), r.Host.CPUs, r.Host.CPUModel,
		r.Host.Kernel, r.Host.GoVersion, r.Host.Postgres, r.Host.UsersdBuild, r.Finished.Sub(r.Started).Round(time.Second))
	var idle []string
	for _, rd := range r.Rounds {
		s := fmt.Sprintf("round %d %.0f%% idle, load %.1f", rd.Round, rd.Idle*100, rd.LoadAvg)
		if !rd.IdleOK {
			s += " (BUSY: waited " + rd.Waited.Round(time.Second).String() + ")"
		}
		idle = append(idle, s)
	}
	if len(r.Rounds) > 0 {
		fmt.Fprintf(w, "Before each round: %s.\n", strings.Join(idle, "; "))
		fmt.Fprintf(w, "%d users per store; %s per measurement after %s of warm-up; %d requests in flight; medians of %d round(s).\n\n",
			r.Config.Users, r.Config.Duration, r.Config.Warmup, r.Config.Concurrency, r.Config.Rounds)
	} else {
		fmt.Fprint(w, "No table: its rounds did not run (-table=false).\n\n")
	}

	if r.Config.Sampler != "" {
		fmt.Fprintf(w, "usersd ran with OTEL_TRACES_SAMPLER=%s OTEL_TRACES_SAMPLER_ARG=%s (-sampler); the logging+tracing-off server with always_off.\n\n",
			r.Config.Sampler, r.Config.SamplerArg)
	}
	if len(r.Table) > 0 {
		report.PrintTable(w, r.Table)
		fmt.Fprintln(w)
	}

	sc := r.Scale
	if len(sc.Concurrency) > 0 {
		fmt.Fprintf(w, "GetUser throughput against requests in flight (usersd, %s), req/s (p99 ms):\n\n", sc.Store)
		byAPI := map[string][]string{}
		var levels []string
		for _, p := range sc.Concurrency {
			byAPI[p.API] = append(byAPI[p.API], fmt.Sprintf("%s (%.1f)", fmtRPS(p.RPS), p.P99ms))
			if p.API == "http" {
				levels = append(levels, fmt.Sprint(p.Concurrency))
			}
		}
		fmt.Fprintf(w, "| api | %s |\n|---|%s\n", strings.Join(levels, " | "), strings.Repeat("---:|", len(levels)))
		for _, api := range []string{"http", "grpc"} {
			fmt.Fprintf(w, "| %s | %s |\n", api, strings.Join(byAPI[api], " | "))
		}
		fmt.Fprintln(w)
	}
	for _, o := range sc.OpenLoop {
		fmt.Fprintf(w, "- %s GetUser at %.0f%% of its peak (%.0f of %.0f req/s): p50 %.2f ms, p99 %.2f ms",
			o.API, o.Fraction*100, o.Rate, o.PeakRPS, o.P50ms, o.P99ms)
		if o.BareRPS > 0 {
			fmt.Fprintf(w, "; the bare ceiling at the same rate: p50 %.2f ms, p99 %.2f ms", o.BareP50ms, o.BareP99ms)
		}
		fmt.Fprintln(w)
	}
	if len(sc.Pages) > 0 {
		fmt.Fprintf(w, "\nListUsers, pages of 50 over %d users (%s), filter %s, p50 / p99 ms:\n\n", sc.Users, sc.Store, pageFilter)
		pageTable(w, sc.Pages)
	}
	for _, tp := range r.TenantPages {
		printTenantPages(w, tp)
	}
	printProfiles(w, r.ProfileSearch)
	fmt.Fprintln(w)
	byStore := map[string][]float64{}
	for _, imp := range r.Imports {
		byStore[imp.Store] = append(byStore[imp.Store], imp.UsersPerSec)
	}
	for _, st := range r.Config.Stores {
		if rates := byStore[st]; len(rates) > 0 {
			fmt.Fprintf(w, "- bulk import (%s): %.0f users/s median of %d imports of 10,000 (first, into an empty table: %.0f users/s)\n",
				st, report.Median(rates), len(rates), rates[0])
		}
	}
	for _, wh := range r.Webhooks {
		fmt.Fprintf(w, "- webhooks (%s): %d of %d user.created events delivered %.1f s after the import's POST (first after %.2f s), %.0f deliveries/s from the first to the last (whole seconds: median %.0f of %d, most %.0f), lag p50 %.0f ms, p99 %.0f ms, %d duplicates\n",
			wh.Store, wh.Delivered, wh.Events, wh.Elapsed.Seconds(), wh.First.Seconds(), wh.DeliveredPerSec, wh.PerSecMedian, len(wh.PerSec), wh.PerSecMax, wh.LagP50ms, wh.LagP99ms, wh.Duplicates)
	}
	for _, f := range r.HookFaults {
		fmt.Fprintf(w, "- %s\n", faultLine(f))
	}
	for _, s := range r.Startup {
		fmt.Fprintf(w, "- start to ready (%s): median %.1f ms of %d starts\n", s.Store, s.MedianMs, len(s.Samples))
	}
	fp := r.Footprint
	for _, st := range r.Config.Stores {
		if fp.IdleRSSKiB[st] == 0 && fp.LoadRSSKiB[st] == 0 {
			continue // not measured (-webhooks-only)
		}
		fmt.Fprintf(w, "- RSS (%s): idle %.1f MiB (anonymous %.1f, binary and other files %.1f), under load %.1f MiB (peak %.1f MiB)\n", st,
			float64(fp.IdleRSSKiB[st])/1024, float64(fp.IdleAnonKiB[st])/1024, float64(fp.IdleFileKiB[st])/1024,
			float64(fp.LoadRSSKiB[st])/1024, float64(fp.PeakRSSKiB[st])/1024)
	}
	fmt.Fprintf(w, "- binary: %.1f MiB (CGO_ENABLED=0, -trimpath -s -w)\n", float64(fp.BinaryBytes)/(1<<20))
	for _, p := range r.Profiles {
		fmt.Fprintf(w, "- CPU profile of %s GetUser (%s, %ds, %s): %s; ≈%.0f allocations, %.1f KiB per request, by component: %s\n",
			p.API, p.Store, p.Seconds, p.File, shares(p.Components), p.AllocsPerReq, p.BytesPerReq/1024, shares(p.AllocComponents))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	fmt.Fprintln(w)
	report.PrintTargets(w, r.Targets)
	printMissedPlans(w, r)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nNote: %s\n", n)
	}
	fmt.Fprintf(w, "\nResults: %s\n", path)
}

func fmtRPS(v float64) string { return fmt.Sprintf("%.0f", v) }

// shares lists the components of at least 1%.
func shares(ss []report.Share) string {
	var parts []string
	for _, c := range ss {
		if c.Percent >= 1 {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", c.Component, c.Percent))
		}
	}
	return strings.Join(parts, ", ")
}

// printTenantPages prints the tenant figure of a store: for each order and
// page, the worst p50 / p99 over the tenants measured.
func printTenantPages(w io.Writer, tp report.TenantPages) {
	tenants := map[string]bool{}
	for _, p := range tp.Pages {
		tenants[p.Tenant] = true
	}
	fmt.Fprintf(w, "\nListUsers in one tenant of %d (%d users each, %s; seeded in %.0f s), pages of 50, filter %s, "+
		"the worst p50 / p99 ms of %d tenants:\n\n", tp.Tenants, tp.UsersPerTenant, tp.Store, tp.SeedSeconds, pageFilter, len(tenants))
	pageTable(w, tp.Pages)
}

// pageTable prints list pages as a table of p50 / p99 ms, a row per order
// and a column per page; where several points share an order and a page
// (the tenants of the tenant figure), the worst of each.
func pageTable(w io.Writer, points []report.PagePoint) {
	var pages []int
	worst := map[string]map[int]report.PagePoint{}
	for _, p := range points {
		if !slices.Contains(pages, p.Page) {
			pages = append(pages, p.Page)
		}
		if worst[p.OrderBy] == nil {
			worst[p.OrderBy] = map[int]report.PagePoint{}
		}
		c := worst[p.OrderBy][p.Page]
		c.P50ms, c.P99ms = max(c.P50ms, p.P50ms), max(c.P99ms, p.P99ms)
		worst[p.OrderBy][p.Page] = c
	}
	sort.Ints(pages)
	fmt.Fprint(w, "| order_by |")
	for _, p := range pages {
		fmt.Fprintf(w, " page %d |", p)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|", len(pages)))
	for _, o := range pageOrders {
		fmt.Fprintf(w, "| %s |", o)
		for _, p := range pages {
			c := worst[o][p]
			fmt.Fprintf(w, " %.2f / %.2f |", c.P50ms, c.P99ms)
		}
		fmt.Fprintln(w)
	}
}

// printProfiles prints the profiles figure: a row per store and read, the
// seeding, and the exports.
func printProfiles(w io.Writer, figs []report.ProfileSearch) {
	if len(figs) == 0 {
		return
	}
	samples := 0
	for _, f := range figs {
		for _, q := range f.Queries {
			samples = max(samples, q.Samples)
		}
	}
	fmt.Fprintf(w, "\nProfiles and search, %d users with profiles in one tenant, one call at a time over HTTP, %d samples of each read "+
		"(each another value drawn from the users), against the same SQL statement run directly on the database; ms:\n\n", figs[0].Users, samples)
	fmt.Fprintln(w, "| store | read | usersd p50 | usersd p99 | bare SQL p50 | bare SQL p99 | × bare, p50 | × bare, p99 | users a call | matches, median (most) |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, f := range figs {
		for _, q := range f.Queries {
			matches := "—"
			if q.MatchesMax > 0 {
				matches = fmt.Sprintf("%s (%s)", thousandsInt(q.MatchesP50), thousandsInt(q.MatchesMax))
			}
			fmt.Fprintf(w, "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f× | %.2f× | %.1f | %s |\n",
				f.Store, q.Name, q.P50ms, q.P99ms, q.BareP50ms, q.BareP99ms, q.RatioP50, q.RatioP99, q.Returned, matches)
		}
	}
	fmt.Fprintln(w)
	for _, f := range figs {
		if f.LoadAvg > 0 {
			busy := ""
			if !f.IdleOK {
				busy = " (BUSY: the wait for an idle machine timed out)"
			}
			fmt.Fprintf(w, "- before the reads (%s): machine %.0f%% idle, load %.1f%s\n", f.Store, f.Idle*100, f.LoadAvg, busy)
		}
		if f.SeedSeconds > 0 {
			fmt.Fprintf(w, "- seeding (%s): %d users through POST /v2/tenants/{tenant}/users:import, %d at a time, in %.0f s (%.0f users/s)\n",
				f.Store, f.Users, seedImports, f.SeedSeconds, f.SeedPerSec)
		}
		for _, q := range f.Queries {
			if q.Mismatches > 0 || q.Errors > 0 {
				fmt.Fprintf(w, "- %s (%s): %d samples returned other users than the bare statement, %d failed\n", q.Name, f.Store, q.Mismatches, q.Errors)
			}
		}
		for _, e := range f.Exports {
			fmt.Fprintf(w, "- %s\n", exportLine(e))
		}
		if p := f.ExportProfile; p != nil {
			fmt.Fprintf(w, "- CPU profile of usersd during an HTTP export (%s, %ds, %s): %s\n", f.Store, p.Seconds, p.File, shares(p.Components))
		}
	}
}

// printMissedPlans prints the plan of the slowest sample of each read of
// the profiles figure whose target was not met.
func printMissedPlans(w io.Writer, r *report.Run) {
	for _, f := range r.ProfileSearch {
		for _, read := range profileReads {
			q, ok := f.Query(read.kind)
			if !ok || read.target == 0 || q.P99ms < read.target || q.Plan == "" {
				continue
			}
			fmt.Fprintf(w, "\nPlan of the slowest %s (%s), value %q, %.2f ms on usersd:\n\n```\n%s\n```\n", read.name, f.Store, q.SlowestArg, q.SlowestMs, q.Plan)
		}
	}
}

func thousandsInt(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
