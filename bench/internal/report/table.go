package report

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// BuildTable makes the table from the measurements: per row the medians
// over the rounds, and the median over the rounds of a per-round ratio
// taken with one tool. A usersd row's ratio is its throughput over the
// bare ceiling's (what the framework costs); an observability-off row's is
// usersd's throughput over its own (1 - ratio is what logging and tracing
// cost). Ceilings have none: pgbench is another tool.
func BuildTable(all []Measurement) []Row {
	byKey := map[Key][]Measurement{}
	var keys []Key
	for _, m := range all {
		k := m.key()
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], m)
	}
	rows := make([]Row, 0, len(keys))
	for _, k := range keys {
		group := byKey[k]
		var rps, p50, p99, cpu []float64
		r := Row{Store: k.Store, API: k.API, Call: k.Call, Server: k.Server, Tool: group[0].Tool, Rounds: len(group)}
		for _, m := range group {
			rps = append(rps, m.RPS)
			p50 = append(p50, ms(m.P50))
			p99 = append(p99, ms(m.P99))
			if m.CPUPer1k > 0 {
				cpu = append(cpu, m.CPUPer1k)
			}
			r.Errors += m.Errors
		}
		r.RPS, r.P50ms, r.P99ms, r.CPUPer1k = Median(rps), Median(p50), Median(p99), Median(cpu)
		switch k.Server {
		case ServerUsersd:
			r.Ratio, r.RatioOf = RoundRatio(all, k, Key{k.Store, k.API, k.Call, ServerBare}), ServerBare
		case ServerObsOff:
			// usersd with everything on, over this: 1 - ratio is the cost.
			r.Ratio, r.RatioOf = RoundRatio(all, Key{k.Store, k.API, k.Call, ServerUsersd}, k), "usersd/obsoff"
		}
		if r.Ratio == 0 {
			r.RatioOf = ""
		}
		rows = append(rows, r)
	}
	order := map[string]int{"sqlite": 0, "postgres": 1}
	apis := map[string]int{"http": 0, "grpc": 1, "sql": 2}
	calls := map[string]int{"GetUser": 0, "CreateUser": 1, "ListUsers": 2, "BatchGetUsers": 3}
	servers := map[string]int{ServerUsersd: 0, ServerObsOff: 1, ServerBare: 2, ServerDB: 3}
	slices.SortStableFunc(rows, func(a, b Row) int {
		return cmp.Or(
			cmp.Compare(order[a.Store], order[b.Store]),
			cmp.Compare(calls[a.Call], calls[b.Call]),
			cmp.Compare(apis[a.API], apis[b.API]),
			cmp.Compare(servers[a.Server], servers[b.Server]),
		)
	})
	return rows
}

// RoundRatio returns the median over the rounds of num's throughput over
// den's in the same round; 0 when no round has both, or when they were
// taken with different tools.
func RoundRatio(ms []Measurement, num, den Key) float64 {
	type pair struct{ n, d *Measurement }
	byRound := map[int]*pair{}
	for i := range ms {
		m := &ms[i]
		var p *pair
		switch m.key() {
		case num, den:
			if p = byRound[m.Round]; p == nil {
				p = &pair{}
				byRound[m.Round] = p
			}
		default:
			continue
		}
		if m.key() == num {
			p.n = m
		} else {
			p.d = m
		}
	}
	var rs []float64
	for _, p := range byRound {
		if p.n != nil && p.d != nil && p.d.RPS > 0 && p.n.Tool == p.d.Tool {
			rs = append(rs, p.n.RPS/p.d.RPS)
		}
	}
	return Median(rs)
}

// calls names the calls in the table as the issue does.
var callNames = map[string]string{
	"ListUsers":     "ListUsers (page of 50)",
	"BatchGetUsers": "BatchGetUsers (100)",
}

var serverNames = map[string]string{
	ServerUsersd: "usersd",
	ServerObsOff: "usersd, logging+tracing off",
	ServerBare:   "bare ceiling",
	ServerDB:     "pgbench (DB ceiling)",
}

// PrintTable writes the table as Markdown.
func PrintTable(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| store | api | call | server | tool | req/s | p50 ms | p99 ms | CPU s/1k req | ratio | ratio of |")
	fmt.Fprintln(w, "|---|---|---|---|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rows {
		call := r.Call
		if n, ok := callNames[call]; ok {
			call = n
		}
		cpu, ratio, of := "—", "—", ""
		if r.CPUPer1k > 0 {
			cpu = fmt.Sprintf("%.3f", r.CPUPer1k)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
			of = r.RatioOf
		}
		errs := ""
		if r.Errors > 0 {
			errs = fmt.Sprintf(" (%d errors)", r.Errors)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s%s | %.2f | %.2f | %s | %s | %s |\n",
			r.Store, r.API, call, serverNames[r.Server], r.Tool, thousands(r.RPS), errs, r.P50ms, r.P99ms, cpu, ratio, of)
	}
}

// PrintTargets writes the targets as a Markdown list.
func PrintTargets(w io.Writer, ts []Target) {
	for _, t := range ts {
		verdict := "NOT MET"
		switch {
		case !t.Measured:
			verdict = "not measured"
		case t.Met:
			verdict = "met"
		}
		got := "—"
		if t.Measured {
			got = fmt.Sprintf("%.3g %s", t.Got, t.Unit)
			if t.Got >= 1000 {
				got = fmt.Sprintf("%.0f %s", t.Got, t.Unit) // not 3e+03
			}
		}
		note := ""
		if t.Note != "" {
			note = " (" + t.Note + ")"
		}
		fmt.Fprintf(w, "- **%s**: %s — want %s, got %s%s\n", verdict, t.Name, t.Want, got, note)
	}
}

func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
