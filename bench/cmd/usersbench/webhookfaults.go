package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/report"
)

// The webhook fault figure (issue 14): faultWriters writers for
// faultWriteFor, each at faultWriteRate writes a second (together about
// the 500 events a second of the account), a receiver that fails
// the first attempt of one event in three, then the wait for every
// subscribed event, at most faultSettle after the writers stop.
const (
	faultWriters   = 4
	faultWriteRate = 125
	faultWriteFor  = 10 * time.Second
	faultSettle    = 30 * time.Second
	faultWant      = 15 * time.Second // the bound after the writers stop
)

// webhookFaults measures delivery under failures on st: faultWriters
// clients create and update users over HTTP for faultWriteFor, one
// subscription on user.created and user.updated points at a receiver that
// answers the first attempt of one event in three with 503 (one in six of
// all events: 429 with Retry-After: 1 instead) and every other attempt
// with 204, and verifies every signature itself. With crash set, usersd is
// killed (SIGKILL) halfway through the writes and started again on the
// same database. The events that should arrive are read from the feed
// afterwards: those of the two types after the feed's head when the
// subscription was made.
func (h *harness) webhookFaults(ctx context.Context, st *store, crash bool) (report.WebhookFaults, error) {
	res := report.WebhookFaults{Store: st.name, Crash: crash, Writers: faultWriters, WriteFor: faultWriteFor}
	rcv := newFlakyReceiver()
	url, closeReceiver, err := serveReceiver(rcv)
	if err != nil {
		return res, err
	}
	defer closeReceiver()
	srv, err := h.startServer(ctx, st, report.ServerUsersd, webhookFlags...)
	if err != nil {
		return res, err
	}
	var cur atomic.Pointer[server]
	cur.Store(srv)
	defer func() { cur.Load().stop() }()
	_, secret, err := h.createWebhook(ctx, srv, url, "user.created", "user.updated")
	if err != nil {
		return res, err
	}
	rcv.setSecret(secret)
	head, err := h.feedHead(ctx, srv, "")
	if err != nil {
		return res, err
	}

	h.logf("webhooks under faults (%s%s): %d writers for %s", st.name, map[bool]string{true: ", kill -9 halfway", false: ""}[crash], faultWriters, faultWriteFor)
	wctx, stopWriters := context.WithTimeout(ctx, faultWriteFor)
	defer stopWriters()
	var wg sync.WaitGroup
	var writes, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	fail := func(err error) {
		failed.Add(1)
		msg := err.Error()
		firstErr.CompareAndSwap(nil, &msg)
	}
	for i := range faultWriters {
		wg.Go(func() { h.write(wctx, &cur, i, &writes, fail) })
	}
	if crash {
		select {
		case <-ctx.Done():
		case <-time.After(faultWriteFor / 2):
			cur.Load().p.Kill() // the deferred stop then finds it gone
			restarted, err := h.startServer(ctx, st, report.ServerUsersd, webhookFlags...)
			if err != nil {
				stopWriters()
				wg.Wait()
				return res, fmt.Errorf("restart after kill -9: %w", err)
			}
			old := cur.Swap(restarted)
			old.stop()
		}
	}
	wg.Wait()
	stopped := time.Now()
	res.Writes, res.FailedWrites = int(writes.Load()), int(failed.Load())
	if e := firstErr.Load(); e != nil {
		res.FirstWriteError = *e
	}

	// What should arrive: the subscribed events after the head.
	want, err := h.subscribedEvents(ctx, cur.Load(), head)
	if err != nil {
		return res, err
	}
	res.Events = len(want)
	deadline := stopped.Add(faultSettle)
	for {
		got := rcv.received(want)
		if got == len(want) {
			res.AllAfter = time.Since(stopped)
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	rcv.summarizeFaults(&res, want)
	res.Met = res.Received == res.Events && res.BadSignatures == 0 && res.AllAfter > 0 && res.AllAfter <= faultWant
	return res, nil
}

// write creates a user, then updates it, at faultWriteRate writes a second
// until ctx ends, through whichever server cur holds; failures (a server
// being killed) are counted and the writer goes on.
func (h *harness) write(ctx context.Context, cur *atomic.Pointer[server], writer int, writes *atomic.Int64, fail func(error)) {
	tick := time.NewTicker(time.Second / faultWriteRate * 2) // a create and an update per tick
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		srv := cur.Load()
		body, _ := json.Marshal(map[string]any{"email": fmt.Sprintf("w%d-%d-%s@faults.example", writer, n, h.nonce), "displayName": "Writer"})
		var u struct{ Name string }
		if err := h.send(ctx, http.MethodPost, "http://"+srv.httpAddr+"/v2/users", body, &u); err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			continue
		}
		writes.Add(1)
		body, _ = json.Marshal(map[string]any{"displayName": fmt.Sprintf("Writer %d", n)})
		if err := h.send(ctx, http.MethodPatch, "http://"+srv.httpAddr+"/v2/"+u.Name, body, nil); err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			continue
		}
		writes.Add(1)
	}
}

// send makes one JSON request and decodes a 2xx answer into out.
func (h *harness) send(ctx context.Context, method, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d: %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

type feedEvent struct {
	Name, Type string
}

// readFeed pages through the event feed after cursor to its end and
// returns the events and the last cursor.
func (h *harness) readFeed(ctx context.Context, srv *server, cursor string) ([]feedEvent, string, error) {
	var all []feedEvent
	for {
		var page struct {
			Events     []feedEvent
			NextCursor string
		}
		if err := h.send(ctx, http.MethodGet, "http://"+srv.httpAddr+"/v2/userEvents?pageSize=1000&after="+cursor, nil, &page); err != nil {
			return nil, "", err
		}
		all = append(all, page.Events...)
		if len(page.Events) == 0 {
			return all, cursor, nil
		}
		cursor = page.NextCursor
	}
}

// feedHead returns the cursor after the feed's last event.
func (h *harness) feedHead(ctx context.Context, srv *server, cursor string) (string, error) {
	_, head, err := h.readFeed(ctx, srv, cursor)
	return head, err
}

// subscribedEvents returns the ids of the user.created and user.updated
// events after head.
func (h *harness) subscribedEvents(ctx context.Context, srv *server, head string) (map[string]bool, error) {
	evs, _, err := h.readFeed(ctx, srv, head)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, e := range evs {
		if e.Type == "user.created" || e.Type == "user.updated" {
			want[strings.TrimPrefix(e.Name, "userEvents/")] = true
		}
	}
	return want, nil
}

// flakyReceiver fails the first attempt of one event in three and checks
// every signature per Standard Webhooks, with its own code.
type flakyReceiver struct {
	mu       sync.Mutex
	key      []byte
	attempts map[string]int       // by webhook-id
	first    map[string]time.Time // first successful receipt
	lags     []time.Duration      // of first successful receipts
	dups     int                  // successful receipts after the first
	badSig   int
	failed   int // attempts answered 503 or 429
}

func newFlakyReceiver() *flakyReceiver {
	return &flakyReceiver{attempts: map[string]int{}, first: map[string]time.Time{}}
}

func (r *flakyReceiver) setSecret(secret string) {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	r.mu.Lock()
	r.key = key
	r.mu.Unlock()
}

func (r *flakyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(req.Body)
	id, ts, sigs := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp"), req.Header.Get("webhook-signature")
	var p struct {
		Timestamp time.Time `json:"timestamp"`
	}
	if err != nil || id == "" || json.Unmarshal(body, &p) != nil {
		http.Error(w, "not a delivery", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !validSignature(r.key, id, ts, body, sigs) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.attempts[id]++
	if r.attempts[id] == 1 {
		switch h := idHash(id); {
		case h%6 == 0:
			r.failed++
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		case h%3 == 0:
			r.failed++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	if _, ok := r.first[id]; ok {
		r.dups++
	} else {
		r.first[id] = at
		r.lags = append(r.lags, at.Sub(p.Timestamp))
	}
	w.WriteHeader(http.StatusNoContent)
}

// validSignature checks "v1,<base64 HMAC-SHA256 of id.timestamp.body>"
// among the space-separated signatures.
func validSignature(key []byte, id, ts string, body []byte, sigs string) bool {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", id, ts)
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

func idHash(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()
}

// received counts the events of want received at least once.
func (r *flakyReceiver) received(want map[string]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id := range want {
		if _, ok := r.first[id]; ok {
			n++
		}
	}
	return n
}

func (r *flakyReceiver) summarizeFaults(res *report.WebhookFaults, want map[string]bool) {
	res.Received = r.received(want)
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Duplicates, res.BadSignatures, res.FailedAttempts = r.dups, r.badSig, r.failed
	var ats []time.Time
	for _, t := range r.first {
		ats = append(ats, t)
	}
	if len(ats) > 0 {
		slices.SortFunc(ats, time.Time.Compare)
		res.PerSecMedian = report.Median(perSecond(ats))
	}
	lags := slices.Clone(r.lags)
	slices.Sort(lags)
	res.LagP99ms = float64(load.Percentile(lags, 99)) / float64(time.Millisecond)
}
