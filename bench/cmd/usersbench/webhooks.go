package main

import (
	"context"
	"encoding/json"
	"fmt"
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

// webhooks measures event delivery on each store, each measurement on a
// database of its own: the import figure (webhookRun), then delivery under
// faults without and with a kill -9 (webhookFaults).
func (h *harness) webhooks(ctx context.Context) error {
	for _, st := range h.stores {
		// Each measurement has a database of its own, so that what one
		// leaves queued does not slow the next.
		fresh := func(tag string) (*store, func(), error) {
			s, err := h.newStore(ctx, st.name, tag)
			if err != nil {
				return nil, nil, err
			}
			return s, func() {
				if s.dbName != "" {
					h.dropDatabase(s.dbName)
				}
			}, nil
		}
		s, drop, err := fresh("_wh")
		if err != nil {
			return err
		}
		w, err := h.webhookRun(ctx, s, webhookEvents, 1, 0)
		drop()
		if err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
		h.res.Webhooks = append(h.res.Webhooks, w)
		h.logf("  %s", webhookLine(w))
		if st.name == "postgres" {
			// Replicas share the deliveries of one subscription: the
			// largest import, on one replica and then on two, to a
			// receiver that answers after replicaLatency.
			for _, replicas := range []int{1, 2} {
				s, drop, err := fresh(fmt.Sprintf("_whr%d", replicas))
				if err != nil {
					return err
				}
				w, err := h.webhookRun(ctx, s, replicaEvents, replicas, replicaLatency)
				drop()
				if err != nil {
					return fmt.Errorf("%s, %d replicas: %w", st.name, replicas, err)
				}
				h.res.Webhooks = append(h.res.Webhooks, w)
				h.logf("  %s", webhookLine(w))
			}
		}
		s, drop, err = fresh("_whc")
		if err != nil {
			return err
		}
		c, err := h.webhookCatchUp(ctx, s)
		drop()
		if err != nil {
			return fmt.Errorf("%s, catching up: %w", st.name, err)
		}
		h.res.CatchUps = append(h.res.CatchUps, c)
		h.logf("  %s", catchUpLine(c))
		for _, crash := range []bool{false, true} {
			s, drop, err := fresh(fmt.Sprintf("_whf%v", crash))
			if err != nil {
				return err
			}
			f, err := h.webhookFaults(ctx, s, crash)
			drop()
			if err != nil {
				return fmt.Errorf("%s, under faults: %w", st.name, err)
			}
			h.res.HookFaults = append(h.res.HookFaults, f)
			h.logf("  %s", faultLine(f))
		}
	}
	return nil
}

// webhookLine describes one import measurement.
func webhookLine(w report.Webhooks) string {
	return fmt.Sprintf("webhooks (%s, %d replica(s), receiver answering after %.0f ms): %d of %d events delivered in %s (first after %s), %.0f/s from the first to the last, lag p99 %.0f ms",
		w.Store, w.Replicas, w.ReceiverLatencyMs, w.Delivered, w.Events, w.Elapsed.Round(time.Millisecond), w.First.Round(time.Millisecond), w.DeliveredPerSec, w.LagP99ms)
}

// faultLine describes one fault measurement.
func faultLine(f report.WebhookFaults) string {
	crash := ""
	if f.Crash {
		crash = ", kill -9 halfway"
	}
	all := "not all within the wait"
	if f.AllAfter > 0 {
		all = fmt.Sprintf("all %.1f s after the writers stopped", f.AllAfter.Seconds())
	}
	return fmt.Sprintf("webhooks under faults (%s%s): %d writes (%d failed) by %d writers in %s; %d of %d subscribed events received, %s; %d attempts failed on purpose, %d duplicates, %d bad signatures; %.0f deliveries/s (median of whole seconds), lag p99 %.0f ms",
		f.Store, crash, f.Writes, f.FailedWrites, f.Writers, f.WriteFor, f.Received, f.Events, all, f.FailedAttempts, f.Duplicates, f.BadSignatures, f.PerSecMedian, f.LagP99ms)
}

// replicaEvents is the size of the import that replicas share: the
// largest one request may carry.
const replicaEvents = 10_000

// replicaLatency is how long the receiver of the replica figure takes to
// answer. To one that answers at once, delivery on this 2-core machine is
// bound by the CPU that Postgres, usersd and the receiver share, which a
// second replica on the same machine cannot add to; a receiver that takes
// as long as one across a network bounds each replica by its slots
// (--webhook-max-concurrent), which a second one adds to.
const replicaLatency = 50 * time.Millisecond

// webhookRun measures an import figure on st: replicas usersd processes on
// it, with their default settings apart from the subscription's rate
// limit, one subscription on user.created whose URL is a receiver of the
// harness on loopback that answers 204 after latency, and events users imported
// in one request. It records the time from the import's POST to the first
// and the last delivery, the deliveries in each second between them, and
// each event's lag (receipt minus the event's time).
func (h *harness) webhookRun(ctx context.Context, st *store, events, replicas int, latency time.Duration) (report.Webhooks, error) {
	res := report.Webhooks{Store: st.name, Events: events, Rate: webhookRate, Replicas: replicas, ReceiverLatencyMs: float64(latency) / float64(time.Millisecond)}
	rcv := newReceiver()
	rcv.latency = latency
	url, closeReceiver, err := serveReceiver(rcv)
	if err != nil {
		return res, err
	}
	defer closeReceiver()
	var srv *server
	for i := range replicas {
		s, err := h.startServer(ctx, st, report.ServerUsersd, webhookFlags...)
		if err != nil {
			return res, err
		}
		defer s.stop()
		if i == 0 {
			srv = s
		}
	}
	if _, _, err := h.createWebhook(ctx, srv, url, "user.created"); err != nil {
		return res, err
	}

	h.logf("webhooks (%s, %d replica(s)): importing %d users, one subscription on user.created", st.name, replicas, events)
	start := time.Now()
	if _, err := h.importUsers(ctx, srv, st, "wh-"+h.nonce+"-", 0, events); err != nil {
		return res, err
	}
	deadline := time.NewTimer(webhookWait)
	defer deadline.Stop()
	for rcv.distinct() < events {
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

// webhookFlags are usersd's flags in the webhook figures: its defaults
// apart from the subscription's rate limit, and loopback receivers.
var webhookFlags = []string{"--webhook-allow-private", fmt.Sprintf("--webhook-rate=%d", webhookRate)}

// serveReceiver serves h on a loopback port until closed, and returns
// the URL to subscribe.
func serveReceiver(h http.Handler) (url string, closeIt func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(lis) }()
	return "http://" + lis.Addr().String() + "/hook", func() {
		hs.Close()
		<-served
	}, nil
}

// createWebhook subscribes url to the event types, enabled, and returns
// the subscription's resource name and secret.
func (h *harness) createWebhook(ctx context.Context, srv *server, url string, types ...string) (name, secret string, err error) {
	body, _ := json.Marshal(map[string]any{"url": url, "eventTypes": types, "enabled": true})
	var wh struct {
		Name, Secret string
		Enabled      bool
	}
	if err := h.send(ctx, http.MethodPost, "http://"+srv.httpAddr+"/v2/webhooks", body, &wh); err != nil {
		return "", "", err
	}
	if wh.Name == "" || wh.Secret == "" || !wh.Enabled {
		return "", "", fmt.Errorf("create webhook: got name %q, enabled %v and a secret of %d bytes", wh.Name, wh.Enabled, len(wh.Secret))
	}
	return wh.Name, wh.Secret, nil
}

// receiver is a webhook endpoint that answers 204 (after latency) and records
// each delivery: its webhook-id, when it arrived and the event's time.
type receiver struct {
	latency time.Duration // before each answer

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
	time.Sleep(r.latency)
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
	if span := ats[len(ats)-1].Sub(ats[0]); span > 0 {
		res.DeliveredPerSec = float64(len(ats)-1) / span.Seconds()
	}
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
