package main

import (
	"slices"
	"testing"
	"time"
)

func TestPerSecond(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	for _, tc := range []struct {
		name string
		in   []time.Time
		want []float64
	}{
		{"none", nil, nil},
		{"one window", at(0, 10, 999), []float64{3}},
		// The last, partial window is left out.
		{"three windows", at(0, 500, 1000, 1999, 2000, 2500), []float64{2, 2}},
		{"an empty window", at(0, 2100, 3100), []float64{1, 0, 1}},
	} {
		if got := perSecond(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: perSecond = %v, want %v", tc.name, got, tc.want)
		}
	}
}
