// Package report holds the results of a benchmark run: every measurement,
// the table of medians and ratios made from them, the scale, start-up and
// footprint figures and the targets. A run is written as JSON so that two
// runs can be compared (Compare).
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/usersd/usersd/bench/internal/load"
)

// Version is the version of the JSON layout.
const Version = 1

// The servers a measurement can be taken on.
const (
	ServerUsersd = "usersd"        // the release binary, full observability
	ServerObsOff = "usersd-obsoff" // the same with logging and tracing off
	ServerBare   = "bare"          // the ceiling: bare net/http / grpc-go on the same SQL
	ServerDB     = "pgbench"       // the database ceiling: the same SELECT through pgbench
)

// Run is everything one run of the harness measured.
type Run struct {
	Version  int       `json:"version"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Quick    bool      `json:"quick"`
	Host     Host      `json:"host"`
	Config   Config    `json:"config"`
	Rounds   []Round   `json:"rounds"`
	Notes    []string  `json:"notes,omitempty"`

	Measurements  []Measurement    `json:"measurements"`
	Table         []Row            `json:"table"`
	Scale         Scale            `json:"scale"`
	TenantPages   []TenantPages    `json:"tenant_pages,omitempty"`
	ProfileSearch []ProfileSearch  `json:"profile_search,omitempty"`
	Startup       []Startup        `json:"startup"`
	Footprint     Footprint        `json:"footprint"`
	Imports       []Import         `json:"imports"`
	Webhooks      []Webhooks       `json:"webhooks,omitempty"`
	HookFaults    []WebhookFaults  `json:"webhook_faults,omitempty"`
	CatchUps      []WebhookCatchUp `json:"webhook_catch_ups,omitempty"`
	Profiles      []Profile        `json:"profiles,omitempty"`
	Targets       []Target         `json:"targets"`
}

// Host describes the machine.
type Host struct {
	CPUs        int     `json:"cpus"`
	CPUModel    string  `json:"cpu_model"`
	Kernel      string  `json:"kernel"`
	GoVersion   string  `json:"go_version"`
	LoadAvg     float64 `json:"loadavg_start"`
	Postgres    string  `json:"postgres,omitempty"`
	UsersdBuild string  `json:"usersd_version"`
}

// Config is how the run was bounded.
type Config struct {
	Rounds      int           `json:"rounds"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	Concurrency int           `json:"concurrency"`
	Users       int           `json:"users"`
	ScaleUsers  int           `json:"scale_users"`
	Starts      int           `json:"starts"`
	Stores      []string      `json:"stores"`
	// ProfileUsers is the size of the one tenant of the profiles figure
	// (0 in runs before it).
	ProfileUsers int `json:"profile_users,omitempty"`
	// Sampler and SamplerArg are usersd's OTEL_TRACES_SAMPLER and its
	// argument when the run set them (-sampler); empty: usersd's default.
	Sampler    string `json:"sampler,omitempty"`
	SamplerArg string `json:"sampler_arg,omitempty"`
}

// Round records how idle the machine was before a round.
type Round struct {
	Round   int           `json:"round"`
	Idle    float64       `json:"idle"` // fraction of CPU idle over the last second waited
	Waited  time.Duration `json:"waited_ns"`
	IdleOK  bool          `json:"idle_ok"` // false: the wait timed out on a busy machine
	LoadAvg float64       `json:"loadavg"`
}

// Measurement is one bounded run of load at one server.
type Measurement struct {
	Round       int    `json:"round"`
	Store       string `json:"store"`
	API         string `json:"api"` // http, grpc, sql
	Call        string `json:"call"`
	Server      string `json:"server"`
	Concurrency int    `json:"concurrency"`
	load.Result
	CPU      time.Duration `json:"server_cpu_ns"`            // server process user+system time during the run
	CPUPer1k float64       `json:"server_cpu_s_per_1k"`      // seconds per 1000 successful requests
	RSSKiB   int64         `json:"server_rss_kib,omitempty"` // resident set at the end of the run
}

// Key identifies a row of the table.
type Key struct {
	Store, API, Call, Server string
}

func (m Measurement) key() Key { return Key{m.Store, m.API, m.Call, m.Server} }

// Row is one line of the table: medians over the rounds.
type Row struct {
	Store    string  `json:"store"`
	API      string  `json:"api"`
	Call     string  `json:"call"`
	Server   string  `json:"server"`
	Tool     string  `json:"tool"`
	Rounds   int     `json:"rounds"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	CPUPer1k float64 `json:"cpu_s_per_1k"` // 0: not measured
	Errors   int     `json:"errors"`
	// Ratio is the median over the rounds of this row's throughput divided
	// by that of RatioOf's row in the same round, measured with the same
	// tool; 0 when there is none.
	Ratio   float64 `json:"ratio,omitempty"`
	RatioOf string  `json:"ratio_of,omitempty"`
}

// Key returns the row's key.
func (r Row) Key() Key { return Key{r.Store, r.API, r.Call, r.Server} }

// Scale holds the figures of throughput against concurrency, latency at a
// fixed rate, and list pages over many users.
type Scale struct {
	Store       string      `json:"store"`
	Concurrency []Point     `json:"concurrency"`
	OpenLoop    []OpenLoop  `json:"open_loop"`
	Users       int         `json:"list_users"`
	Pages       []PagePoint `json:"list_pages"`
}

// Point is throughput at one concurrency.
type Point struct {
	API         string  `json:"api"`
	Call        string  `json:"call"`
	Concurrency int     `json:"concurrency"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	CPUPer1k    float64 `json:"cpu_s_per_1k"`
	Errors      int     `json:"errors"`
}

// OpenLoop is latency at a fixed arrival rate, a fraction of the peak.
type OpenLoop struct {
	API      string  `json:"api"`
	Call     string  `json:"call"`
	PeakRPS  float64 `json:"peak_rps"`
	Fraction float64 `json:"fraction"`
	Rate     float64 `json:"rate"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Errors   int     `json:"errors"`
	// The bare ceiling at the same rate, right after: what the machine and
	// the load generator alone do to the tail. Zero in older results.
	BareRPS    float64 `json:"bare_rps,omitempty"`
	BareP50ms  float64 `json:"bare_p50_ms,omitempty"`
	BareP99ms  float64 `json:"bare_p99_ms,omitempty"`
	BareErrors int     `json:"bare_errors,omitempty"`
}

// PagePoint is the latency of one page of ListUsers: the page-th page of
// 50 (1 is the first) for a filter and order, reached through page tokens.
type PagePoint struct {
	Tenant   string  `json:"tenant,omitempty"` // of the tenant figure
	Filter   string  `json:"filter"`
	OrderBy  string  `json:"order_by"`
	Page     int     `json:"page"`
	Samples  int     `json:"samples"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	Returned int     `json:"returned"` // users on the page
}

// TenantPages is the tenant figure of one store: ListUsers pages in a few
// of Tenants tenants of UsersPerTenant users each.
type TenantPages struct {
	Store          string      `json:"store"`
	Tenants        int         `json:"tenants"`
	UsersPerTenant int         `json:"users_per_tenant"`
	SeedSeconds    float64     `json:"seed_seconds"`
	Pages          []PagePoint `json:"pages"`
}

// Worst returns the largest p50 and the largest p99 of the pages, of any
// tenant, order and page.
func (t TenantPages) Worst() PagePoint {
	var w PagePoint
	for _, p := range t.Pages {
		w.P50ms, w.P99ms = max(w.P50ms, p.P50ms), max(w.P99ms, p.P99ms)
	}
	return w
}

// ProfileSearch is the profiles figure of one store: Users users with
// profile fields in one tenant, seeded through the v2 import; the latency
// of the v2 reads of profiles (search, lookup, a filter on an attribute,
// the first page) over HTTP, each against the same SQL statement run
// directly on the same database; and the export of the whole tenant.
type ProfileSearch struct {
	Store       string  `json:"store"`
	Tenant      string  `json:"tenant"`
	Users       int     `json:"users"`
	SeedSeconds float64 `json:"seed_seconds"`
	SeedPerSec  float64 `json:"seed_users_per_s"`
	// How idle the machine was before the reads (over a second, after
	// waiting up to -idle-wait for -min-idle), and its load average.
	Idle    float64        `json:"idle"`
	IdleOK  bool           `json:"idle_ok"`
	LoadAvg float64        `json:"loadavg"`
	Queries []ProfileQuery `json:"queries"`
	Exports []Export       `json:"exports"`
	// ExportProfile is a CPU profile of usersd during another HTTP
	// export, after the timed one.
	ExportProfile *Profile `json:"export_profile,omitempty"`
	Notes         []string `json:"notes,omitempty"`
}

// Query returns the read of the kind, if the figure has it.
func (p ProfileSearch) Query(kind string) (ProfileQuery, bool) {
	for _, q := range p.Queries {
		if q.Kind == kind {
			return q, true
		}
	}
	return ProfileQuery{}, false
}

// ProfileQuery is one kind of read, timed Samples times one call at a
// time, each with another value drawn from the seeded data, on usersd and
// directly on the database (the bare statement), alternately. The ratios
// are usersd's latency over the bare statement's, of the p50 and of the
// p99. Returned is the mean of the users a call returned; Matches the
// median and the largest number of users that matched a sample (for the
// reads that have a WHERE beyond the tenant), counted apart. Plan is the
// database's plan of the slowest sample (Postgres: EXPLAIN ANALYZE of the
// prepared statement after five executions, as pgx runs it; SQLite:
// EXPLAIN QUERY PLAN).
type ProfileQuery struct {
	Kind       string  `json:"kind"`
	Name       string  `json:"name"`
	Example    string  `json:"example"` // the HTTP request of one sample
	Samples    int     `json:"samples"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	BareP50ms  float64 `json:"bare_p50_ms"`
	BareP99ms  float64 `json:"bare_p99_ms"`
	RatioP50   float64 `json:"ratio_p50"`
	RatioP99   float64 `json:"ratio_p99"`
	Returned   float64 `json:"returned_mean"`
	MatchesP50 int     `json:"matches_p50,omitempty"`
	MatchesMax int     `json:"matches_max,omitempty"`
	Mismatches int     `json:"mismatches"` // samples where usersd and the bare statement returned other users
	Errors     int     `json:"errors"`
	SlowestArg string  `json:"slowest_value,omitempty"`
	SlowestMs  float64 `json:"slowest_ms,omitempty"`
	Plan       string  `json:"plan,omitempty"`
}

// Export is one export of a whole tenant, streamed and counted by the
// client; the process's memory is sampled while it runs (PeakRSSKiB, the
// largest VmRSS seen) and read at the end (HWMKiB, VmHWM of a usersd
// started for it). Error is set when the export failed or was not there.
type Export struct {
	Store        string        `json:"store"`
	API          string        `json:"api"` // http (NDJSON) or grpc (ExportUsers)
	Want         int           `json:"want"`
	Users        int           `json:"users"` // lines or messages received
	Bytes        int64         `json:"bytes"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	First        time.Duration `json:"first_ns"` // to the first byte or message
	UsersPerSec  float64       `json:"users_per_s"`
	RSSBeforeKiB int64         `json:"rss_before_kib"`
	PeakRSSKiB   int64         `json:"peak_rss_kib"`
	HWMKiB       int64         `json:"hwm_kib"`
	CPU          time.Duration `json:"server_cpu_ns"`
	Error        string        `json:"error,omitempty"`
}

// Startup is the time from exec to the first /readyz 200.
type Startup struct {
	Store    string    `json:"store"`
	Samples  []float64 `json:"samples_ms"`
	MedianMs float64   `json:"median_ms"`
}

// Footprint is the size of the binary and the memory of the process.
type Footprint struct {
	BinaryBytes int64            `json:"binary_bytes"`
	IdleRSSKiB  map[string]int64 `json:"idle_rss_kib"`  // per store, median over the starts
	IdleAnonKiB map[string]int64 `json:"idle_anon_kib"` // of which anonymous (heap, stacks)
	IdleFileKiB map[string]int64 `json:"idle_file_kib"` // of which file-backed (the binary's pages)
	LoadRSSKiB  map[string]int64 `json:"load_rss_kib"`  // per store, largest at the end of a measured run
	PeakRSSKiB  map[string]int64 `json:"peak_rss_kib"`  // per store, VmHWM at the end of the rounds
}

// Import is one bulk import: users per second from the POST to the
// operation reported done.
type Import struct {
	Store       string        `json:"store"`
	Users       int           `json:"users"`
	Before      int           `json:"users_before"` // users already stored
	Elapsed     time.Duration `json:"elapsed_ns"`
	UsersPerSec float64       `json:"users_per_s"`
}

// Webhooks is one measurement of event delivery: Events users imported in
// one request, each a user.created event for the one subscription, whose
// receiver answers 204 at once; Rate is the subscription's limit
// (--webhook-rate). First and Elapsed run from the import's POST to the
// first and the last delivery; PerSec counts the distinct deliveries in
// each whole second from the first, DeliveredPerSec over the whole time
// from the first to the last; the lag is a delivery's receipt minus its event's
// time.
type Webhooks struct {
	Store             string        `json:"store"`
	Replicas          int           `json:"replicas,omitempty"`            // usersd processes sharing the deliveries (0 in runs before issue 14's replica figure: 1)
	ReceiverLatencyMs float64       `json:"receiver_latency_ms,omitempty"` // how long the receiver takes to answer
	Events            int           `json:"events"`
	Rate              int           `json:"rate"`
	Delivered         int           `json:"delivered"` // distinct webhook-ids
	Duplicates        int           `json:"duplicates"`
	First             time.Duration `json:"first_ns"`
	Elapsed           time.Duration `json:"elapsed_ns"`
	PerSec            []float64     `json:"per_s"`
	PerSecMedian      float64       `json:"per_s_median"`
	PerSecMax         float64       `json:"per_s_max"`
	DeliveredPerSec   float64       `json:"delivered_per_s"` // from the first delivery to the last
	LagP50ms          float64       `json:"lag_p50_ms"`
	LagP99ms          float64       `json:"lag_p99_ms"`
	Notes             []string      `json:"notes,omitempty"`
}

// WebhookFaults is one measurement of delivery under failures: Writers
// clients creating and updating users for WriteFor, a receiver that fails
// the first attempt of one event in three (503, or 429 with Retry-After:
// 1) and checks every signature, and with Crash a kill -9 of usersd
// halfway through the writes and a restart. Events are the subscribed
// events the feed holds afterwards; Received those that arrived at least
// once; AllAfter the time from the writers' stop until the last of them
// arrived (0 if some never did within the wait); Met whether all arrived
// within 15 s with no bad signature.
type WebhookFaults struct {
	Store           string        `json:"store"`
	Crash           bool          `json:"crash"`
	Writers         int           `json:"writers"`
	WriteFor        time.Duration `json:"write_for_ns"`
	Writes          int           `json:"writes"`
	FailedWrites    int           `json:"failed_writes"` // not counting those the writers' stop cut short
	FirstWriteError string        `json:"first_write_error,omitempty"`
	Events          int           `json:"events"`
	Received        int           `json:"received"`
	AllAfter        time.Duration `json:"all_after_ns"`
	Duplicates      int           `json:"duplicates"`
	FailedAttempts  int           `json:"failed_attempts"` // answered 503 or 429 on purpose
	BadSignatures   int           `json:"bad_signatures"`
	PerSecMedian    float64       `json:"per_s_median"`
	LagP99ms        float64       `json:"lag_p99_ms"`
	Met             bool          `json:"met"`
}

// WebhookCatchUp is one measurement of a subscriber catching up: its
// receiver answers 503 while Events users are imported, until the
// subscription's backlog holds them all; then it answers 204 at once.
// Rate and Burst are the subscription's limit; RequestsWhileDown the
// requests the receiver got while it failed; CaughtUp the time from its
// return to the last of the backlog's deliveries; PerSec the distinct
// deliveries in each whole second from the first after its return.
// Meanwhile a writer creates a user every 100 ms: NewEvents of them, those
// written after the first delivery since the return (the circuit's probe),
// were delivered with NewLagP99ms the 99th percentile of their lag
// (receipt minus the event's time); NewBeforeProbe were written between
// the return and that first delivery, and wait with the backlog;
// NewMissing were not delivered within the wait.
type WebhookCatchUp struct {
	Store             string        `json:"store"`
	Events            int           `json:"events"`
	Rate              int           `json:"rate"`
	Burst             int           `json:"burst"`
	RequestsWhileDown int           `json:"requests_while_down"`
	FirstAfter        time.Duration `json:"first_after_ns"` // from the return to the first delivery
	CaughtUp          time.Duration `json:"caught_up_ns"`   // 0: not within the wait
	Delivered         int           `json:"delivered"`      // of the backlog
	PerSec            []float64     `json:"per_s"`
	PerSecMedian      float64       `json:"per_s_median"`
	PerSecMax         float64       `json:"per_s_max"`
	NewEvents         int           `json:"new_events"`
	NewBeforeProbe    int           `json:"new_before_probe"`
	NewMissing        int           `json:"new_missing"`
	NewLagP99ms       float64       `json:"new_lag_p99_ms"`
	Notes             []string      `json:"notes,omitempty"`
}

// Profile is a CPU profile taken under load.
type Profile struct {
	Store  string `json:"store"`
	API    string `json:"api"`
	Call   string `json:"call"`
	File   string `json:"file"`
	Top    string `json:"top"`     // go tool pprof -top: by flat time
	TopCum string `json:"top_cum"` // go tool pprof -top -cum: by cumulative time
	// Components is the profile's time by component (see package
	// profsum), largest first.
	Components []Share `json:"components"`
	// RPS is the load's throughput while profiling (slowed by the
	// profiler); the allocations per request divide the heap profile's
	// allocations over the same window by the requests in it.
	RPS          float64 `json:"rps"`
	AllocsPerReq float64 `json:"allocs_per_request"`
	BytesPerReq  float64 `json:"bytes_per_request"`
	// AllocComponents is the bytes allocated, by component.
	AllocComponents []Share `json:"alloc_components"`
	Seconds         int     `json:"seconds"`
}

// Share is a component's percentage of a profile.
type Share struct {
	Component string  `json:"component"`
	Percent   float64 `json:"percent"`
}

// Target is one goal of the issue, met or not.
type Target struct {
	Name string  `json:"name"`
	Want string  `json:"want"`
	Got  float64 `json:"got"`
	Unit string  `json:"unit"`
	Met  bool    `json:"met"`
	Note string  `json:"note,omitempty"`
	// Measured is false when the run could not take the figure.
	Measured bool `json:"measured"`
}

// Write writes r as indented JSON to path.
func (r *Run) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Read reads a run that Write wrote.
func Read(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != Version {
		return nil, fmt.Errorf("%s: layout version %d, want %d", path, r.Version, Version)
	}
	return &r, nil
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
