package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/bench/internal/load"
)

// The operations of the mix and their weights, out of 20.
const (
	opCreate = "create"
	opGet    = "get"
	opList   = "list"
	opUpdate = "update"
	opDelete = "delete"
	opImport = "import"
)

var mix = []struct {
	op     string
	weight int
}{{opCreate, 4}, {opGet, 8}, {opList, 3}, {opUpdate, 3}, {opDelete, 2}}

// opAt returns the operation of the i-th scheduled request: the mix in a
// fixed order, so every window of 20 requests has the same one.
func opAt(i int) string {
	i %= 20
	for _, m := range mix {
		if i < m.weight {
			return m.op
		}
		i -= m.weight
	}
	panic("soak: the mix's weights do not add up to 20")
}

// recorder collects the outcome of every request: latencies of the
// current window (the sampler takes them), and totals per operation.
type recorder struct {
	mu      sync.Mutex
	window  []time.Duration
	winErrs int
	ops     map[string]*opStats
}

type opStats struct {
	lat     []time.Duration
	errs    map[string]int // error description → count
	events  int            // events the operations that succeeded made
	unknown int            // events the operations that failed may have made
}

func newRecorder() *recorder { return &recorder{ops: map[string]*opStats{}} }

func (r *recorder) stats(op string) *opStats {
	s := r.ops[op]
	if s == nil {
		s = &opStats{errs: map[string]int{}}
		r.ops[op] = s
	}
	return s
}

// record counts one operation; events is the number of feed events it
// makes when it succeeds (0 for reads), and may have made when it failed.
func (r *recorder) record(op string, d time.Duration, events int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats(op)
	if err != nil {
		s.errs[err.Error()]++
		r.winErrs++
		s.unknown += events
		return
	}
	s.lat = append(s.lat, d)
	s.events += events
	if op != opImport {
		r.window = append(r.window, d)
	}
}

// take returns the latencies and errors of the window and starts a new one.
func (r *recorder) take() ([]time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, e := r.window, r.winErrs
	r.window, r.winErrs = make([]time.Duration, 0, len(w)), 0
	return w, e
}

// idPool holds the ids of the users the workload made and has not deleted.
// An update or delete takes its id out, so no two of them race on a user.
type idPool struct {
	mu  sync.Mutex
	ids []string
	rnd *rand.Rand
}

func (p *idPool) add(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, id)
}

func (p *idPool) pick() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return "", false
	}
	return p.ids[p.rnd.IntN(len(p.ids))], true
}

func (p *idPool) take() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return "", false
	}
	i := p.rnd.IntN(len(p.ids))
	id := p.ids[i]
	p.ids[i] = p.ids[len(p.ids)-1]
	p.ids = p.ids[:len(p.ids)-1]
	return id, true
}

// workload drives the server at opt.Rate.
type workload struct {
	opt   options
	srv   *server
	rec   *recorder
	pool  *idPool
	grpc  usersv1.UserServiceClient
	nonce string

	// clients are the workers' HTTP clients. Their connections stay open
	// after run returns, until close, so the last samples see the same
	// connections as the first.
	clients []*http.Client
}

// close closes the workers' connections.
func (w *workload) close() {
	for _, c := range w.clients {
		c.CloseIdleConnections()
	}
}

// worker is one request in flight at a time, on its own connection, so
// the number of connections (and the server's goroutines and descriptors
// for them) is fixed once each worker has run once.
type worker struct {
	*workload
	client *http.Client
}

// run sends requests on the schedule until d has passed or ctx ends;
// requests in flight then finish. Each latency counts from the request's
// scheduled start, so a server that falls behind shows it.
func (w *workload) run(ctx context.Context, d time.Duration) error {
	start := time.Now()
	deadline := start.Add(d)
	type job struct {
		i  int
		at time.Time
	}
	sched := make(chan job, 1<<16)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(sched)
		interval := time.Duration(float64(time.Second) / w.opt.Rate)
		i := 0
		for at := start; at.Before(deadline); at = at.Add(interval) {
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
			sched <- job{i, at}
			i++
		}
		return nil
	})
	for range w.opt.Workers {
		wk := &worker{workload: w, client: newClient(1)}
		w.clients = append(w.clients, wk.client)
		g.Go(func() error {
			for j := range sched {
				if ctx.Err() != nil {
					continue
				}
				op := opAt(j.i)
				events, err := wk.do(ctx, op, j.i)
				if fb, ok := err.(fallback); ok {
					op, events, err = opCreate, 1, fb.err
				}
				w.rec.record(op, time.Since(j.at), events, err)
			}
			return nil
		})
	}
	g.Go(func() error { return w.imports(ctx, deadline) })
	return g.Wait()
}

// fallback is what an operation that needs an existing user returns when
// there is none yet: it made a user instead, with the outcome err.
type fallback struct{ err error }

func (f fallback) Error() string { return fmt.Sprint(f.err) }

// do runs op and returns the number of events its success made.
func (wk *worker) do(ctx context.Context, op string, i int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch op {
	case opCreate:
		return 1, wk.create(ctx, i)
	case opGet:
		id, ok := wk.pool.pick()
		if !ok {
			return 0, fallback{wk.create(ctx, i)}
		}
		return 0, wk.get(ctx, id, i)
	case opList:
		return 0, wk.list(ctx, i)
	case opUpdate, opDelete:
		id, ok := wk.pool.take()
		if !ok {
			return 0, fallback{wk.create(ctx, i)}
		}
		if op == opDelete {
			return 1, wk.delete(ctx, id)
		}
		err := wk.update(ctx, id, i)
		wk.pool.add(id)
		return 1, err
	}
	return 0, fmt.Errorf("unknown operation %q", op)
}

func (wk *worker) create(ctx context.Context, i int) error {
	body := map[string]any{
		"email":       fmt.Sprintf("c%d.%s@soak.example", i, wk.nonce),
		"displayName": fmt.Sprintf("Soak User %d", i),
		"labels":      map[string]string{"team": fmt.Sprintf("team-%d", i%8)},
	}
	var u struct {
		ID string `json:"id"`
	}
	hdr := http.Header{"Idempotency-Key": {fmt.Sprintf("soak-%s-%d", wk.nonce, i)}}
	if err := wk.call(ctx, http.MethodPost, "/v1/users", hdr, body, http.StatusCreated, &u); err != nil {
		return err
	}
	if u.ID == "" {
		return fmt.Errorf("create: no id in the answer")
	}
	wk.pool.add(u.ID)
	return nil
}

// get reads a user over HTTP v1, gRPC v1 and HTTP v2 in turn. The user
// may have been deleted meanwhile: v1 and v2 still return it.
func (wk *worker) get(ctx context.Context, id string, i int) error {
	switch i % 3 {
	case 0:
		return wk.call(ctx, http.MethodGet, "/v1/users/"+id, nil, nil, http.StatusOK, nil)
	case 1:
		_, err := wk.grpc.GetUser(ctx, &usersv1.GetUserRequest{Id: id})
		return grpcErr("GetUser", err)
	default:
		return wk.call(ctx, http.MethodGet, "/v2/users/"+id, nil, nil, http.StatusOK, nil)
	}
}

// list reads a first page over HTTP v1 (filtered, newest first, and every
// other time its second page too), gRPC v1 (by email) and HTTP v2 in turn.
func (wk *worker) list(ctx context.Context, i int) error {
	switch i % 3 {
	case 0:
		q := url.Values{"pageSize": {"20"}, "filter": {`state = "ACTIVE"`}, "orderBy": {"create_time desc"}}
		var page struct {
			NextPageToken string `json:"nextPageToken"`
		}
		if err := wk.call(ctx, http.MethodGet, "/v1/users?"+q.Encode(), nil, nil, http.StatusOK, &page); err != nil {
			return err
		}
		if page.NextPageToken == "" || i%2 == 0 {
			return nil
		}
		q.Set("pageToken", page.NextPageToken)
		return wk.call(ctx, http.MethodGet, "/v1/users?"+q.Encode(), nil, nil, http.StatusOK, nil)
	case 1:
		_, err := wk.grpc.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 50, OrderBy: "email"})
		return grpcErr("ListUsers", err)
	default:
		return wk.call(ctx, http.MethodGet, "/v2/users?pageSize=20", nil, nil, http.StatusOK, nil)
	}
}

func (wk *worker) update(ctx context.Context, id string, i int) error {
	body := map[string]any{"displayName": fmt.Sprintf("Soak User %d renamed", i)}
	return wk.call(ctx, http.MethodPatch, "/v1/users/"+id, nil, body, http.StatusOK, nil)
}

func (wk *worker) delete(ctx context.Context, id string) error {
	return wk.call(ctx, http.MethodDelete, "/v1/users/"+id, nil, nil, http.StatusOK, nil)
}

// call sends an HTTP request with a JSON body (nil: none) and decodes the
// answer into out (nil: discarded) when its status is want.
func (wk *worker) call(ctx context.Context, method, path string, hdr http.Header, body any, want int, out any) error {
	return httpCall(ctx, wk.client, "http://"+wk.srv.httpAddr, method, path, hdr, body, want, out)
}

func httpCall(ctx context.Context, client *http.Client, base, method, path string, hdr http.Header, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, route(path), errClass(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, route(path), errClass(err))
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d", method, route(path), resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, route(path), err)
		}
	}
	return nil
}

// route is path without its id and query, so errors group by route.
func route(path string) string {
	p, _, _ := strings.Cut(path, "?")
	for _, prefix := range []string{"/v1/users/", "/v2/users/", "/v1/operations/", "/v1/webhooks/"} {
		if len(p) > len(prefix) && strings.HasPrefix(p, prefix) {
			return prefix + "{id}"
		}
	}
	return p
}

// errClass reduces a transport error to its kind, so errors group.
func errClass(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return errors.New("timeout")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func grpcErr(rpc string, err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("gRPC %s: %s", rpc, s.Code())
	}
	return fmt.Errorf("gRPC %s: %w", rpc, err)
}

// imports runs one import every opt.ImportEvery until deadline, each
// polled until done; its latency is from the request to done.
func (w *workload) imports(ctx context.Context, deadline time.Time) error {
	client := newClient(1)
	defer client.CloseIdleConnections()
	base := "http://" + w.srv.httpAddr
	// The first import comes after a third of the interval, so that the
	// warm-up has seen one.
	next := time.Now().Add(w.opt.ImportEvery / 3)
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
		if time.Now().After(deadline) {
			return nil
		}
		next = next.Add(w.opt.ImportEvery)
		start := time.Now()
		rows, err := w.importOnce(ctx, client, base, n)
		if err != nil {
			rows = w.opt.ImportSize // at most
		}
		w.rec.record(opImport, time.Since(start), rows, err)
	}
}

func (w *workload) importOnce(ctx context.Context, client *http.Client, base string, n int) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opt.ImportEvery)
	defer cancel()
	users := make([]map[string]any, w.opt.ImportSize)
	for i := range users {
		users[i] = map[string]any{
			"email":       fmt.Sprintf("i%d.%d.%s@soak.example", n, i, w.nonce),
			"displayName": fmt.Sprintf("Imported %d/%d", n, i),
			"labels":      map[string]string{"team": fmt.Sprintf("team-%d", i%8)},
		}
	}
	body := map[string]any{"requestId": fmt.Sprintf("soak-%s-import-%d", w.nonce, n), "users": users}
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/users:import", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("POST /v1/users:import: %w", errClass(err))
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return 0, fmt.Errorf("POST /v1/users:import: status %d", resp.StatusCode)
	}
	for {
		var op struct {
			Done     bool `json:"done"`
			Metadata struct {
				Imported int `json:"imported"`
				Failed   int `json:"failed"`
			} `json:"metadata"`
		}
		if err := httpCall(ctx, client, base, http.MethodGet, loc, nil, nil, http.StatusOK, &op); err != nil {
			return 0, err
		}
		if op.Done {
			if op.Metadata.Imported != w.opt.ImportSize {
				return op.Metadata.Imported, fmt.Errorf("import: %d imported, %d failed, want %d imported", op.Metadata.Imported, op.Metadata.Failed, w.opt.ImportSize)
			}
			return op.Metadata.Imported, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("import: not done after %s", w.opt.ImportEvery)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// newClient returns an HTTP client with at most n connections, all kept
// alive.
func newClient(n int) *http.Client {
	c := load.NewHTTPClient(n)
	c.Timeout = 15 * time.Second
	return c
}

// opSummary is one operation's totals.
type opSummary struct {
	op            string
	ok, errs      int
	p50, p99, max time.Duration
	errors        []string // "count × description", most frequent first
}

func (r *recorder) summary() []opSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []opSummary
	for _, op := range []string{opCreate, opGet, opList, opUpdate, opDelete, opImport} {
		s := r.ops[op]
		if s == nil {
			continue
		}
		lat := append([]time.Duration(nil), s.lat...)
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		sum := opSummary{op: op, ok: len(lat), p50: load.Percentile(lat, 50), p99: load.Percentile(lat, 99)}
		if len(lat) > 0 {
			sum.max = lat[len(lat)-1]
		}
		type kv struct {
			k string
			v int
		}
		var es []kv
		for k, v := range s.errs {
			sum.errs += v
			es = append(es, kv{k, v})
		}
		sort.Slice(es, func(i, j int) bool { return es[i].v > es[j].v })
		for _, e := range es {
			sum.errors = append(sum.errors, fmt.Sprintf("%d × %s", e.v, e.k))
		}
		out = append(out, sum)
	}
	return out
}

// expectedEvents returns the bounds on the number of events the workload
// made: every change that committed, plus those whose outcome is unknown.
func (r *recorder) expectedEvents() (lo, hi int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.ops {
		lo += s.events
		hi += s.unknown
	}
	return lo, lo + hi
}
