package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/report"
)

// The catch-up figure (issue 14, item 3): a subscriber down while the
// largest import is written, then back.
const (
	catchUpEvents = 10_000
	// catchUpRate is the subscription's limit: the catch-up should take
	// about catchUpEvents / catchUpRate seconds.
	catchUpRate = 1000
	// catchUpWrite is how often the writer creates a user during the
	// catch-up.
	catchUpWrite = 100 * time.Millisecond
)

// outage is a receiver that answers 503 while down, and as r otherwise.
type outage struct {
	*receiver
	down     atomic.Bool
	failures atomic.Int64
}

func (o *outage) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if o.down.Load() {
		o.failures.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	o.receiver.ServeHTTP(w, req)
}

// webhookCatchUp measures the catch-up figure on st (report.WebhookCatchUp).
func (h *harness) webhookCatchUp(ctx context.Context, st *store) (report.WebhookCatchUp, error) {
	res := report.WebhookCatchUp{Store: st.name, Events: catchUpEvents, Rate: catchUpRate, Burst: catchUpRate}
	rcv := &outage{receiver: newReceiver()}
	rcv.down.Store(true)
	url, closeReceiver, err := serveReceiver(rcv)
	if err != nil {
		return res, err
	}
	defer closeReceiver()
	srv, err := h.startServer(ctx, st, report.ServerUsersd, append(slices.Clone(webhookFlags), fmt.Sprintf("--webhook-rate=%d", catchUpRate))...)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	name, _, err := h.createWebhook(ctx, srv, url, "user.created")
	if err != nil {
		return res, err
	}

	h.logf("webhooks (%s): importing %d users while the receiver answers 503", st.name, catchUpEvents)
	if _, err := h.importUsers(ctx, srv, st, "whc-"+h.nonce+"-", 0, catchUpEvents); err != nil {
		return res, err
	}
	// Until the subscription's backlog holds every event.
	deadline := time.Now().Add(webhookWait)
	for {
		var wh struct {
			Enabled bool
			Backlog struct{ Events string }
		}
		if err := h.send(ctx, http.MethodGet, "http://"+srv.httpAddr+"/v2/"+name, nil, &wh); err != nil {
			return res, err
		}
		if !wh.Enabled {
			return res, fmt.Errorf("the subscription was disabled while its receiver was down")
		}
		if wh.Backlog.Events == fmt.Sprint(catchUpEvents) {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("the backlog holds %s events after %s, want %d", wh.Backlog.Events, webhookWait, catchUpEvents)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.RequestsWhileDown = int(rcv.failures.Load())

	h.logf("webhooks (%s): the receiver answers again; a user created every %s meanwhile", st.name, catchUpWrite)
	up := time.Now()
	rcv.down.Store(false)
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	var writes atomic.Int64
	written := make(chan error, 1)
	go func() { written <- h.writeEvery(wctx, srv, catchUpWrite, &writes) }()

	old := func() (n int) {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for _, d := range rcv.got {
			if d.event.Before(up) {
				n++
			}
		}
		return n
	}
	for old() < catchUpEvents && time.Since(up) < webhookWait {
		time.Sleep(20 * time.Millisecond)
	}
	stopWriter()
	if err := <-written; err != nil {
		return res, err
	}
	// The last writes' events, within the dispatch and a delivery.
	settle := time.Now().Add(10 * time.Second)
	for rcv.distinct()-old() < int(writes.Load()) && time.Now().Before(settle) {
		time.Sleep(20 * time.Millisecond)
	}

	rcv.mu.Lock()
	got := slices.Clone(rcv.got)
	rcv.mu.Unlock()
	var backlog []time.Time
	firstAt := time.Time{} // the first delivery after the return: the probe's
	for _, d := range got {
		if d.event.Before(up) {
			backlog = append(backlog, d.at)
		}
		if firstAt.IsZero() || d.at.Before(firstAt) {
			firstAt = d.at
		}
	}
	slices.SortFunc(backlog, time.Time.Compare)
	res.Delivered = len(backlog)
	if len(backlog) == 0 {
		res.Notes = append(res.Notes, "nothing of the backlog arrived")
		return res, nil
	}
	res.FirstAfter = firstAt.Sub(up)
	// The events written once the probe had found the receiver back: until
	// then usersd cannot tell it from one still down, and puts their
	// deliveries off with the backlog's.
	var lags []time.Duration
	before := 0
	for _, d := range got {
		switch {
		case d.event.Before(up):
		case d.event.Before(firstAt):
			before++
		default:
			lags = append(lags, d.at.Sub(d.event))
		}
	}
	slices.Sort(lags)
	res.NewEvents, res.NewBeforeProbe = len(lags), before
	res.NewMissing = int(writes.Load()) - len(lags) - before
	if len(lags) > 0 {
		res.NewLagP99ms = float64(load.Percentile(lags, 99)) / float64(time.Millisecond)
	}
	if res.Delivered == catchUpEvents {
		res.CaughtUp = backlog[len(backlog)-1].Sub(up)
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("stopped waiting after %s", webhookWait))
	}
	// Every delivery after the return counts against the limit, new
	// events' too.
	all := make([]time.Time, 0, len(got))
	for _, d := range got {
		all = append(all, d.at)
	}
	slices.SortFunc(all, time.Time.Compare)
	res.PerSec = perSecond(all)
	res.PerSecMedian = report.Median(res.PerSec)
	res.PerSecMax = slices.Max(res.PerSec)
	return res, nil
}

// writeEvery creates a user on srv every d until ctx ends, counting the
// creates that succeeded.
func (h *harness) writeEvery(ctx context.Context, srv *server, d time.Duration, writes *atomic.Int64) error {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		body, _ := json.Marshal(map[string]any{"email": fmt.Sprintf("c%d-%s@catchup.example", n, h.nonce), "displayName": "Meanwhile"})
		if err := h.send(ctx, http.MethodPost, "http://"+srv.httpAddr+"/v2/users", body, nil); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("create during the catch-up: %w", err)
		}
		writes.Add(1)
	}
}

// catchUpLine describes one catch-up measurement.
func catchUpLine(c report.WebhookCatchUp) string {
	caught := "not within the wait"
	if c.CaughtUp > 0 {
		caught = fmt.Sprintf("in %.1f s", c.CaughtUp.Seconds())
	}
	return fmt.Sprintf("webhooks catching up (%s): %d requests while down; %d of %d events delivered %s after the receiver came back (first after %.1f s), %.0f/s median, %.0f/s at most (limit %d, burst %d); %d events written meanwhile delivered, lag p99 %.0f ms (and %d written before the first delivery, with the backlog), %d missing",
		c.Store, c.RequestsWhileDown, c.Delivered, c.Events, caught, c.FirstAfter.Seconds(), c.PerSecMedian, c.PerSecMax, c.Rate, c.Burst, c.NewEvents, c.NewLagP99ms, c.NewBeforeProbe, c.NewMissing)
}
