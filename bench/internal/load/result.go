// Package load drives bounded load at a server and summarises what it saw:
// an HTTP load generator of its own, and runners for the pinned ghz (gRPC)
// and pgbench (the database alone). Results of different tools are never
// compared with each other: each tool spends its own CPU per request on
// the same machine.
package load

import (
	"slices"
	"time"
)

// Tool names, recorded with every result.
const (
	ToolHTTP    = "httpload"
	ToolGHZ     = "ghz"
	ToolPGBench = "pgbench"
)

// Result is one bounded run of load.
type Result struct {
	Tool     string        `json:"tool"`
	OK       int           `json:"ok"`     // successful requests
	Errors   int           `json:"errors"` // failed requests (not in the latencies)
	Elapsed  time.Duration `json:"elapsed_ns"`
	RPS      float64       `json:"rps"` // successful requests per second
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns,omitempty"`
	FirstErr string        `json:"first_error,omitempty"`
}

// summarise fills the counts, rate and percentiles of r from the
// latencies of its successful requests.
func summarise(r *Result, lat []time.Duration) {
	r.OK = len(lat)
	if r.Elapsed > 0 {
		r.RPS = float64(r.OK) / r.Elapsed.Seconds()
	}
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	r.P50 = Percentile(lat, 50)
	r.P99 = Percentile(lat, 99)
	r.Max = lat[len(lat)-1]
}

// Percentile returns the p-th percentile (nearest rank) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
