package report

import (
	"math"
	"testing"
	"time"

	"github.com/usersd/usersd/bench/internal/load"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want float64
	}{
		{"empty", nil, 0},
		{"one", []float64{3}, 3},
		{"odd", []float64{5, 1, 3}, 3},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	} {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("%s: Median(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func m(round int, server, tool string, rps float64) Measurement {
	return Measurement{Round: round, Store: "postgres", API: "http", Call: "GetUser", Server: server,
		Result: load.Result{Tool: tool, RPS: rps, P50: time.Millisecond, P99: 2 * time.Millisecond}, CPUPer1k: 0.1}
}

// TestBuildTableRatios checks that a ratio is the median of per-round
// ratios, and that rows of different tools are never divided.
func TestBuildTableRatios(t *testing.T) {
	ms := []Measurement{
		m(1, ServerUsersd, load.ToolHTTP, 900), m(1, ServerBare, load.ToolHTTP, 1000), m(1, ServerObsOff, load.ToolHTTP, 1000),
		m(2, ServerUsersd, load.ToolHTTP, 300), m(2, ServerBare, load.ToolHTTP, 500), m(2, ServerObsOff, load.ToolHTTP, 500),
		m(3, ServerUsersd, load.ToolHTTP, 1400), m(3, ServerBare, load.ToolHTTP, 2000), m(3, ServerObsOff, load.ToolHTTP, 1750),
	}
	rows := BuildTable(ms)
	got := map[string]Row{}
	for _, r := range rows {
		got[r.Server] = r
	}
	// Per round 0.9, 0.6, 0.7: the median is 0.7, where the ratio of the
	// medians would be 900/1000.
	if r := got[ServerUsersd]; math.Abs(r.Ratio-0.7) > 1e-9 || r.RatioOf != ServerBare || r.RPS != 900 || r.Rounds != 3 {
		t.Errorf("usersd row = %+v, want ratio 0.7 of bare, rps 900, 3 rounds", r)
	}
	// usersd over obs-off: 0.9, 0.6, 0.8.
	if r := got[ServerObsOff]; math.Abs(r.Ratio-0.8) > 1e-9 {
		t.Errorf("obs-off row ratio = %v, want 0.8", r.Ratio)
	}
	if r := got[ServerBare]; r.Ratio != 0 || r.RatioOf != "" {
		t.Errorf("bare row = %+v, want no ratio", r)
	}

	mixed := []Measurement{m(1, ServerUsersd, load.ToolHTTP, 800), m(1, ServerBare, load.ToolGHZ, 1000)}
	if r := RoundRatio(mixed, mixed[0].key(), mixed[1].key()); r != 0 {
		t.Errorf("RoundRatio across tools = %v, want 0", r)
	}
}
