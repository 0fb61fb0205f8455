package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/proc"
	"github.com/usersd/usersd/bench/internal/soak"
)

// maxErrorRatio is the share of requests that may fail before the soak
// does: none should, but a 10 s client timeout on a machine shared with
// others' tests is not a leak.
const maxErrorRatio = 0.001

// figure is one judged series: how to read it from a sample, how a window
// of samples is summed up, and how much it may grow. The tolerances are
// wide enough for the noise of a shared two-core machine and tight enough
// for a leak of anything per request (60,000 requests in 10 minutes at
// 100/s): see docs/operations.md, "Soak".
type figure struct {
	name    string
	get     func(sample) float64
	stat    soak.Stat
	tol     soak.Tolerance
	latency bool // slowed by a busier machine as much as by usersd
}

var figures = []figure{
	{name: "RSS MiB", get: func(s sample) float64 { return s.rss }, tol: soak.Tolerance{Frac: 0.25, Abs: 16}},
	{name: "heap in use MiB", get: func(s sample) float64 { return s.heap }, tol: soak.Tolerance{Frac: 0.5, Abs: 16}},
	{name: "heap after GC MiB", get: func(s sample) float64 { return s.live }, tol: soak.Tolerance{Frac: 0.2, Abs: 4}},
	{name: "goroutines", get: func(s sample) float64 { return s.goroutines }, stat: soak.Floor, tol: soak.Tolerance{Abs: 10}},
	{name: "open fds", get: func(s sample) float64 { return s.fds }, stat: soak.Floor, tol: soak.Tolerance{Abs: 5}},
	{name: "pool conns", get: func(s sample) float64 { return s.pool }, stat: soak.Floor, tol: soak.Tolerance{Abs: 2}},
	{name: "pg backends", get: func(s sample) float64 { return s.pg }, stat: soak.Floor, tol: soak.Tolerance{Abs: 2}},
	{name: "CPU ms/req", get: func(s sample) float64 { return s.cpu }, tol: soak.Tolerance{Frac: 0.5, Abs: 0.5}},
	{name: "p50 ms", get: func(s sample) float64 { return s.p50 }, tol: soak.Tolerance{Frac: 1, Abs: 2}, latency: true},
	{name: "p99 ms", get: func(s sample) float64 { return s.p99 }, tol: soak.Tolerance{Frac: 2, Abs: 20}, latency: true},
}

// loadFigure is the machine's 1-minute load average: context for the
// latencies, not judged.
var loadFigure = figure{name: "load average", get: func(s sample) float64 { return s.load1 }}

// sample is what one look at the server saw. Figures that could not be
// read, or do not apply (the pool on SQLite), are NaN.
type sample struct {
	at               time.Duration // since the load started
	warm             bool          // taken during the warm-up
	rss, heap, live  float64       // MiB
	goroutines, fds  float64
	pool, pg         float64 // pgxpool connections, backends on the database
	reqs, errs       int     // in the window
	p50, p99         float64 // ms, in the window
	cpu              float64 // ms of the server's CPU per request in the window, background work included
	events, hooks    int     // so far, by the feed consumer and the receiver
	feedLag, hookLag time.Duration
	load1            float64       // the machine's 1-minute load average
	window           time.Duration // since the previous sample
}

func runSoak(ctx context.Context, opt options, stdout, stderr io.Writer) (err error) {
	work, err := os.MkdirTemp("", "usersoak-")
	if err != nil {
		return err
	}
	keep := opt.Keep
	defer func() {
		if keep || err != nil {
			fmt.Fprintf(stderr, "usersoak: work directory kept (server logs): %s\n", work)
			return
		}
		os.RemoveAll(work)
	}()
	g := proc.NewGroup()
	defer g.StopAll(20 * time.Second)

	logf(stdout, "usersoak: %s per store (%s warm-up) on %s, %.0f req/s over %d connections, an import of %d every %s, samples every %s",
		opt.Duration, opt.Warmup, strings.Join(opt.Stores, " then "), opt.Rate, opt.Workers, opt.ImportSize, opt.ImportEvery, opt.Interval)
	logf(stdout, "host: %d CPUs, load average %.2f, %s", runtime.NumCPU(), proc.LoadAvg(), time.Now().UTC().Format(time.RFC3339))
	logf(stdout, "building usersd (CGO_ENABLED=0)")
	bin, err := build(ctx, opt, work)
	if err != nil {
		return err
	}
	var errs []error
	for _, store := range opt.Stores {
		if err := soakStore(ctx, opt, g, bin, work, store, stdout); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", store, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

func soakStore(ctx context.Context, opt options, g *proc.Group, bin, work, store string, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, opt.Duration+5*time.Minute)
	defer cancel()
	nonce := randomHex(4)
	db, err := newDatabase(ctx, store, work, opt.PostgresURL, nonce)
	if err != nil {
		return err
	}
	defer func() {
		if derr := db.drop(); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	var pg *pgx.Conn // counts the database's backends
	if db.pgName != "" {
		if pg, err = pgx.Connect(ctx, db.admin); err != nil {
			return err
		}
		defer pg.Close(context.Background())
	}
	srv, err := startServer(ctx, g, bin, work, db)
	if err != nil {
		return err
	}
	defer srv.stop()
	logf(out, "%s: usersd pid %d ready (%s)", store, srv.p.Pid(), redact(db.url))

	loadConn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer loadConn.Close()
	feedConn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer feedConn.Close()

	// The sinks run until the end, after the load, to drain.
	rcv, err := newReceiver()
	if err != nil {
		return err
	}
	fd := newFeed(usersv1.NewUserServiceClient(feedConn), opt.FeedReconnect)
	sinkCtx, stopSinks := context.WithCancel(ctx)
	sinks, sinkCtx := errgroup.WithContext(sinkCtx)
	sinks.Go(func() error { return rcv.serve(sinkCtx) })
	sinks.Go(func() error { return fd.run(sinkCtx) })
	defer func() {
		stopSinks()
		err = errors.Join(err, sinks.Wait())
	}()
	if err := subscribe(ctx, srv, rcv); err != nil {
		return err
	}

	w := &workload{
		opt: opt, srv: srv, rec: newRecorder(), nonce: nonce,
		pool: &idPool{rnd: mrand.New(mrand.NewPCG(1, 2))},
		grpc: usersv1.NewUserServiceClient(loadConn),
	}
	defer w.close()
	sm := &sampler{srv: srv, db: db, pg: pg, rec: w.rec, feed: fd, rcv: rcv, client: newClient(1)}
	defer sm.client.CloseIdleConnections()

	logf(out, "%s: load for %s", store, opt.Duration)
	printHeader(out)
	start := time.Now()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	lg, loadCtx := errgroup.WithContext(loadCtx)
	lg.Go(func() error { return w.run(loadCtx, opt.Duration) })
	var samples []sample
	lg.Go(func() error {
		t := time.NewTicker(opt.Interval)
		defer t.Stop()
		for {
			select {
			case <-loadCtx.Done():
				return nil
			case <-srv.p.Exited():
				return srv.p.Err()
			case <-t.C:
			}
			if time.Since(start) > opt.Duration+opt.Interval/2 {
				stopLoad() // the workload has stopped scheduling; let the last requests finish
				return nil
			}
			s := sm.take(loadCtx, time.Since(start), opt.Warmup, opt.Interval)
			samples = append(samples, s)
			printRow(out, s)
		}
	})
	if err := lg.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}

	// Drain: every event the workload made reaches the feed and the
	// receiver (the relay runs every second, webhooks are retried with
	// back-off), within a minute.
	lo, hi := w.rec.expectedEvents()
	drainStart := time.Now()
	for time.Since(drainStart) < time.Minute {
		n, _, _ := fd.set.counts()
		if n >= lo && fd.set.missing(rcv.set) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	drained := time.Since(drainStart)
	return report(out, store, opt, samples, w.rec, fd, rcv, lo, hi, drained)
}

// subscribe creates the webhook subscription to the receiver, for every
// event type, before any event exists.
func subscribe(ctx context.Context, srv *server, rcv *receiver) error {
	client := newClient(1)
	defer client.CloseIdleConnections()
	var hook struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	err := httpCall(ctx, client, "http://"+srv.httpAddr, http.MethodPost, "/v1/webhooks", nil,
		map[string]any{"url": rcv.url(), "enabled": true}, http.StatusCreated, &hook)
	if err != nil {
		return fmt.Errorf("create webhook: %w", err)
	}
	return rcv.setSecret(hook.Secret)
}

// sampler takes samples of the server.
type sampler struct {
	srv    *server
	db     *database
	pg     *pgx.Conn
	rec    *recorder
	feed   *feed
	rcv    *receiver
	client *http.Client
	cpu    time.Duration // the server's CPU time at the previous sample
}

func (sm *sampler) take(ctx context.Context, at, warmup, window time.Duration) sample {
	nan := math.NaN()
	s := sample{at: at, warm: at < warmup, window: window, rss: nan, heap: nan, live: nan, goroutines: nan, fds: nan, pool: nan, pg: nan, load1: proc.LoadAvg()}
	pid := sm.srv.p.Pid()
	if m, err := proc.Memory(pid); err == nil {
		s.rss = float64(m.RSS) / 1024
	}
	cpu, cpuErr := proc.CPU(pid)
	if ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd"); err == nil {
		s.fds = float64(len(ents))
	}
	if m, err := scrape(ctx, sm.client, "http://"+sm.srv.adminAddr+"/metrics"); err == nil {
		const mib = 1 << 20
		s.heap = m.get("go_memstats_heap_inuse_bytes") / mib
		s.goroutines = m.get("go_goroutines")
		// The heap goal is the live heap after the last collection plus
		// GOGC% of it (and of the roots, small here): the live heap is
		// about goal/(1+GOGC/100). Go's floor on the goal (4 MiB at
		// GOGC=100) makes this a floor of 3.2 MiB at GOGC=400.
		if gogc := m.get("go_gc_gogc_percent"); gogc > 0 {
			s.live = m.get("go_memstats_next_gc_bytes") / (1 + gogc/100) / mib
		}
		if sm.db.pgName != "" {
			s.pool = m.get("usersd_db_pool_connections")
		}
	}
	if sm.pg != nil {
		var n int
		if err := sm.pg.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", sm.db.pgName).Scan(&n); err == nil {
			s.pg = float64(n)
		}
	}
	lat, errs := sm.rec.take()
	slices.Sort(lat)
	s.reqs, s.errs = len(lat)+errs, errs
	s.cpu = nan
	if cpuErr == nil && sm.cpu > 0 && s.reqs > 0 {
		s.cpu = ms(cpu-sm.cpu) / float64(s.reqs)
	}
	if cpuErr == nil {
		sm.cpu = cpu
	}
	s.p50, s.p99 = ms(load.Percentile(lat, 50)), ms(load.Percentile(lat, 99))
	if len(lat) == 0 {
		s.p50, s.p99 = nan, nan
	}
	s.events, _, s.feedLag = sm.feed.set.counts()
	s.hooks, _, s.hookLag = sm.rcv.set.counts()
	return s
}

// metrics are the unlabelled samples of a Prometheus text scrape, and the
// first sample of each labelled one.
type metrics map[string]float64

func (m metrics) get(name string) float64 {
	if v, ok := m[name]; ok {
		return v
	}
	return math.NaN()
}

func scrape(ctx context.Context, client *http.Client, url string) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format: "name value" and
// "name{labels} value" lines; comments are skipped.
func parseMetrics(r io.Reader) (metrics, error) {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		if _, ok := m[name]; !ok {
			m[name] = v
		}
	}
	return m, sc.Err()
}

func printHeader(w io.Writer) {
	fmt.Fprintf(w, "%7s %6s %6s %5s %6s %4s %4s %3s %5s %3s %6s %7s %7s %7s %7s %5s %5s %5s\n",
		"time", "RSS", "heap", "live", "gorout", "fds", "pool", "pg", "req/s", "err", "CPU/r", "p50 ms", "p99 ms", "feed", "hooks", "lag s", "hlag", "load")
}

func printRow(w io.Writer, s sample) {
	mark := " "
	if s.warm {
		mark = "w"
	}
	secs := s.at.Seconds()
	fmt.Fprintf(w, "%6.0fs%s %6s %6s %5s %6s %4s %4s %3s %5.0f %3d %6s %7s %7s %7d %7d %5.1f %5.1f %5.1f\n",
		secs, mark, dec(s.rss, 1), dec(s.heap, 1), dec(s.live, 1), num(s.goroutines), num(s.fds), num(s.pool), num(s.pg),
		float64(s.reqs)/s.window.Seconds(), s.errs, dec(s.cpu, 2), dec(s.p50, 2), dec(s.p99, 2), s.events, s.hooks, s.feedLag.Seconds(), s.hookLag.Seconds(), s.load1)
}

// num and dec format a figure with no or prec decimals, "-" when unknown.
func num(v float64) string { return dec(v, 0) }

func dec(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
