package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	const text = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 87
go_memstats_next_gc_bytes 1.6777216e+07
usersd_event_feed_lag_seconds{sink="webhooks"} 0.5
usersd_event_feed_lag_seconds{sink="nats"} 7
odd{label="a } b"} 3
broken{ 1
usersd_db_pool_connections 4 1733480000000
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"go_goroutines":                 87,
		"go_memstats_next_gc_bytes":     16777216,
		"usersd_event_feed_lag_seconds": 0.5, // the first labelled sample
		"odd":                           3,
		"usersd_db_pool_connections":    4, // a timestamp after the value
	} {
		if got := m.get(name); got != want {
			t.Errorf("get(%q) = %v, want %v", name, got, want)
		}
	}
	if got := m.get("broken"); !math.IsNaN(got) {
		t.Errorf("get(broken) = %v, want NaN", got)
	}
	if got := m.get("absent"); !math.IsNaN(got) {
		t.Errorf("get(absent) = %v, want NaN", got)
	}
}

func TestMix(t *testing.T) {
	got := map[string]int{}
	for i := range 200 {
		got[opAt(i)]++
	}
	for _, m := range mix {
		if got[m.op] != m.weight*10 {
			t.Errorf("%s: %d of 200 requests, want %d", m.op, got[m.op], m.weight*10)
		}
	}
}

func TestLoadRise(t *testing.T) {
	for _, tc := range []struct {
		start, end float64
		want       bool
	}{
		{2, 2.5, false},
		{2, 3.5, true},
		{1, 1.9, false}, // more than half, but not more than 1
		{10, 14, false},
		{10, 16, true},
		{10, 5, false},
	} {
		if got := loadRise(tc.start, tc.end); got != tc.want {
			t.Errorf("loadRise(%v, %v) = %v, want %v", tc.start, tc.end, got, tc.want)
		}
	}
}
