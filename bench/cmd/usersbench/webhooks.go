package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/report"
)

// webhookEvents is the number of users the webhook figure imports, one
// user.created event each (issue 14's first measurement).
const webhookEvents = 3000

// webhookRate is the subscription's own limit in the webhook figure
// (--webhook-rate), far above what is measured, so that it is not what
// bounds the delivery.
const webhookRate = 10_000

// webhookWait bounds the wait for the last delivery.
const webhookWait = 3 * time.Minute

// webhooks measures event delivery on each store: usersd with its
// default settings apart from the subscription's rate limit, one
// subscription on user.created whose URL is a receiver of the harness on
// loopback that answers 204 at once, and 3,000 users imported in one
// request. It records the time from the import's POST to the first and
// the last delivery, the deliveries in each second between them, and each
// event's lag (receipt minus the event's time).
func (h *harness) webhooks(ctx context.Context) error {
	for _, st := range h.stores {
		w, err := h.webhookRun(ctx, st)
		if err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		h.res.Webhooks = append(h.res.Webhooks, w)
		h.logf("  webhooks (%s): %d of %d events delivered in %s (first after %s), %.0f/s median of 1 s windows, lag p99 %.0f ms",
			st.name, w.Delivered, w.Events, w.Elapsed.Round(time.Millisecond), w.First.Round(time.Millisecond), w.PerSecMedian, w.LagP99ms)
	}
	return nil
}

func (h *harness) webhookRun(ctx context.Context, st *store) (report.Webhooks, error) {
	res := report.Webhooks{Store: st.name, Events: webhookEvents, Rate: webhookRate}
	rcv := newReceiver()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return res, err
	}
	hs := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(lis) }()
	defer func() {
		hs.Close()
		<-served
	}()

	srv, err := h.startServer(ctx, st, report.ServerUsersd, "--webhook-allow-private", fmt.Sprintf("--webhook-rate=%d", webhookRate))
	if err != nil {
		return res, err
	}
	defer srv.stop()
	name, err := h.createWebhook(ctx, srv, "http://"+lis.Addr().String()+"/hook")
	if err != nil {
		return res, err
	}
	defer h.deleteWebhook(srv, name)

	h.logf("webhooks (%s): importing %d users, one subscription on user.created", st.name, webhookEvents)
	start := time.Now()
	if _, err := h.importUsers(ctx, srv, st, "wh-"+h.nonce+"-", 0, webhookEvents); err != nil {
		return res, err
	}
	st.users += webhookEvents
	deadline := time.NewTimer(webhookWait)
	defer deadline.Stop()
	for rcv.distinct() < webhookEvents {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-deadline.C:
			res.Notes = append(res.Notes, fmt.Sprintf("stopped waiting after %s", webhookWait))
			return rcv.summarize(res, start), nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return rcv.summarize(res, start), nil
}

// createWebhook subscribes url to user.created and returns the
// subscription's resource name.
func (h *harness) createWebhook(ctx context.Context, srv *server, url string) (string, error) {
	body, _ := json.Marshal(map[string]any{"url": url, "eventTypes": []string{"user.created"}, "enabled": true})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.httpAddr+"/v2/webhooks", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var wh struct {
		Name    string
		Enabled bool
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &wh) != nil || wh.Name == "" || !wh.Enabled {
		return "", fmt.Errorf("create webhook: status %d: %s", resp.StatusCode, b)
	}
	return wh.Name, nil
}

// deleteWebhook removes the subscription, so that later servers on the
// store deliver nothing.
func (h *harness) deleteWebhook(srv *server, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+srv.httpAddr+"/v2/"+name, nil)
	if resp, err := h.client.Do(req); err != nil {
		h.logf("  deleting %s: %v", name, err)
	} else {
		resp.Body.Close()
	}
}

// receiver is a webhook endpoint that answers 204 at once and records
// each delivery: its webhook-id, when it arrived and the event's time.
type receiver struct {
	mu   sync.Mutex
	seen map[string]bool
	got  []delivery
	dups int
}

type delivery struct {
	at, event time.Time
}

func newReceiver() *receiver { return &receiver{seen: map[string]bool{}} }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	var p struct {
		Timestamp time.Time `json:"timestamp"`
	}
	err := json.NewDecoder(req.Body).Decode(&p)
	id := req.Header.Get("webhook-id")
	if err != nil || id == "" {
		http.Error(w, "not a delivery", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	if r.seen[id] {
		r.dups++
	} else {
		r.seen[id] = true
		r.got = append(r.got, delivery{at: at, event: p.Timestamp})
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// summarize fills res from the deliveries received since start.
func (r *receiver) summarize(res report.Webhooks, start time.Time) report.Webhooks {
	r.mu.Lock()
	got := slices.Clone(r.got)
	res.Duplicates = r.dups
	r.mu.Unlock()
	res.Delivered = len(got)
	if len(got) == 0 {
		return res
	}
	ats := make([]time.Time, len(got))
	lags := make([]time.Duration, len(got))
	for i, d := range got {
		ats[i], lags[i] = d.at, d.at.Sub(d.event)
	}
	slices.SortFunc(ats, time.Time.Compare)
	slices.Sort(lags)
	res.First, res.Elapsed = ats[0].Sub(start), ats[len(ats)-1].Sub(start)
	res.PerSec = perSecond(ats)
	res.PerSecMedian = report.Median(res.PerSec)
	res.PerSecMax = slices.Max(res.PerSec)
	res.LagP50ms = float64(load.Percentile(lags, 50)) / float64(time.Millisecond)
	res.LagP99ms = float64(load.Percentile(lags, 99)) / float64(time.Millisecond)
	return res
}

// perSecond counts the times (sorted) in consecutive one-second windows
// from the first; the last window, cut short by the last time, is left
// out unless it is the only one.
func perSecond(ats []time.Time) []float64 {
	if len(ats) == 0 {
		return nil
	}
	first := ats[0]
	n := int(ats[len(ats)-1].Sub(first)/time.Second) + 1
	counts := make([]float64, n)
	for _, t := range ats {
		counts[int(t.Sub(first)/time.Second)]++
	}
	if n > 1 {
		counts = counts[:n-1]
	}
	return counts
}
