package webhooks_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// received is a request as a receiver saw it.
type received struct {
	at     time.Time
	path   string
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint on loopback that records what it receives
// and counts the requests in flight.
type receiver struct {
	*httptest.Server
	mu          sync.Mutex
	reqs        []received
	inFlight    atomic.Int64
	maxInFlight atomic.Int64
}

// newReceiver starts a receiver that answers with handle, or 204 if handle
// is nil, after reading and recording the request.
func newReceiver(t *testing.T, handle http.HandlerFunc) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := rc.inFlight.Add(1)
		defer rc.inFlight.Add(-1)
		for m := rc.maxInFlight.Load(); n > m && !rc.maxInFlight.CompareAndSwap(m, n); m = rc.maxInFlight.Load() {
		}
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{at: at, path: r.URL.Path, header: r.Header.Clone(), body: body})
		rc.mu.Unlock()
		if handle == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		handle(w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// newDeliverer returns a Deliverer, closed when the test ends.
func newDeliverer(t testing.TB, cfg webhooks.Config) *webhooks.Deliverer {
	t.Helper()
	d, err := webhooks.NewDeliverer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// loopback is the Config of a Deliverer that may reach loopback receivers,
// with no rate limit.
func loopback() webhooks.Config {
	return webhooks.Config{AllowPrivate: true, Rate: rate.Inf}
}

func target(url string) webhooks.Target {
	return webhooks.Target{URL: url, Secrets: []string{webhooks.NewSecret()}}
}

// TestDeliverSigned checks a delivery as the receiver sees it: the
// Standard Webhooks headers, verified by the reference library with each
// secret of a rotation, and the body.
func TestDeliverSigned(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newDeliverer(t, loopback())
	newSecret, oldSecret := webhooks.NewSecret(), webhooks.NewSecret()
	ev := testEvent()

	before := time.Now()
	res := d.Deliver(t.Context(), webhooks.Target{URL: rc.URL + "/hook?token=x", Secrets: []string{newSecret, oldSecret}}, ev)
	if res.Err != nil || res.Status != http.StatusNoContent || res.Retry || res.Latency <= 0 {
		t.Fatalf("Deliver() = %+v, want status 204, no error, a latency", res)
	}
	reqs := rc.received()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	for _, secret := range []string{newSecret, oldSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(got.body, got.header); err != nil {
			t.Errorf("standardwebhooks Verify() = %v", err)
		}
	}
	if id := got.header.Get("webhook-id"); id != ev.ID {
		t.Errorf("webhook-id = %q, want %q", id, ev.ID)
	}
	ts, err := strconv.ParseInt(got.header.Get("webhook-timestamp"), 10, 64)
	if err != nil || ts < before.Unix() || ts > time.Now().Unix() {
		t.Errorf("webhook-timestamp = %q, want the time of sending", got.header.Get("webhook-timestamp"))
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	want, _ := webhooks.Payload(ev)
	if string(got.body) != string(want) {
		t.Errorf("body = %s, want Payload(ev) = %s", got.body, want)
	}
}

func TestDeliverTraceParent(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newDeliverer(t, loopback())
	span := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	inSpan := trace.ContextWithSpanContext(t.Context(), span)
	fromEvent := testEvent().TraceParent
	tests := []struct {
		name        string
		ctx         context.Context
		traceParent string // the event's
		want        string
	}{
		{"from the event", inSpan, fromEvent, fromEvent},
		{"from the context", inSpan, "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"none", t.Context(), "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := testEvent()
			ev.TraceParent = tt.traceParent
			if res := d.Deliver(tt.ctx, target(rc.URL), ev); res.Err != nil {
				t.Fatalf("Deliver() err = %v", res.Err)
			}
			h := rc.received()[i].header
			if got := h.Get("traceparent"); got != tt.want {
				t.Errorf("traceparent = %q, want %q", got, tt.want)
			}
			if _, ok := h["Traceparent"]; !ok && tt.want != "" {
				t.Errorf("no traceparent header")
			}
		})
	}
}

// TestDeliverClassification checks the Result of each kind of response.
func TestDeliverClassification(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("retry-after"); v != "" {
			w.Header().Set("Retry-After", v)
		}
		code, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(code)
		io.WriteString(w, `{"error":"whatever"}`)
	})
	d := newDeliverer(t, loopback())
	date := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(http.TimeFormat) }
	tests := []struct {
		name       string
		status     int
		retryAfter string
		retry      bool
		after      [2]time.Duration // RetryAfter's range
		errIs      error
	}{
		{name: "200", status: 200},
		{name: "204", status: 204},
		{name: "400", status: 400},
		{name: "400 with Retry-After", status: 400, retryAfter: "10"},
		{name: "404", status: 404},
		{name: "410", status: 410, errIs: webhooks.ErrGone},
		{name: "408", status: 408, retry: true},
		{name: "429", status: 429, retry: true},
		{name: "429 Retry-After seconds", status: 429, retryAfter: "7", retry: true, after: [2]time.Duration{7 * time.Second, 7 * time.Second}},
		{name: "429 Retry-After capped", status: 429, retryAfter: "86400", retry: true, after: [2]time.Duration{time.Hour, time.Hour}},
		{name: "429 Retry-After malformed", status: 429, retryAfter: "soon", retry: true},
		{name: "500", status: 500, retry: true},
		{name: "502", status: 502, retry: true},
		{name: "503", status: 503, retry: true},
		{name: "503 Retry-After date", status: 503, retryAfter: date(30 * time.Second), retry: true, after: [2]time.Duration{28 * time.Second, 30 * time.Second}},
		{name: "503 Retry-After date past", status: 503, retryAfter: date(-time.Minute), retry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"status": {strconv.Itoa(tt.status)}}
			if tt.retryAfter != "" {
				q.Set("retry-after", tt.retryAfter)
			}
			res := d.Deliver(t.Context(), target(rc.URL+"/?"+q.Encode()), testEvent())
			if res.Status != tt.status {
				t.Errorf("Status = %d, want %d", res.Status, tt.status)
			}
			if ok := tt.status < 300; (res.Err == nil) != ok {
				t.Errorf("Err = %v, want nil: %v", res.Err, ok)
			}
			if tt.errIs != nil && !errors.Is(res.Err, tt.errIs) {
				t.Errorf("Err = %v, want %v", res.Err, tt.errIs)
			}
			if res.Retry != tt.retry {
				t.Errorf("Retry = %v, want %v (Err %v)", res.Retry, tt.retry, res.Err)
			}
			if res.RetryAfter < tt.after[0] || res.RetryAfter > tt.after[1] {
				t.Errorf("RetryAfter = %v, want %v to %v", res.RetryAfter, tt.after[0], tt.after[1])
			}
		})
	}
}

func TestDeliverTimeout(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the Deliverer hangs up
	})
	cfg := loopback()
	cfg.Timeout = 100 * time.Millisecond
	d := newDeliverer(t, cfg)
	res := d.Deliver(t.Context(), target(rc.URL), testEvent())
	if !res.Retry || res.Status != 0 || !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("Deliver() = %+v, want Retry, no status, %v", res, context.DeadlineExceeded)
	}
	if res.Latency < cfg.Timeout {
		t.Errorf("Latency = %v, want at least the timeout, %v", res.Latency, cfg.Timeout)
	}
}

func TestDeliverConnectionRefused(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	d := newDeliverer(t, loopback())
	res := d.Deliver(t.Context(), target("http://"+addr+"/"), testEvent())
	if !res.Retry || res.Status != 0 || !errors.Is(res.Err, syscall.ECONNREFUSED) {
		t.Errorf("Deliver() = %+v, want Retry, no status, %v", res, syscall.ECONNREFUSED)
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	for _, code := range []int{301, 302, 307, 308} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/hook" {
					http.Redirect(w, r, "/elsewhere?secret=x", code)
				}
			})
			d := newDeliverer(t, loopback())
			res := d.Deliver(t.Context(), target(rc.URL+"/hook?token=sekret"), testEvent())
			if res.Status != code || res.Retry || res.Err == nil {
				t.Fatalf("Deliver() = %+v, want status %d, an error, no Retry", res, code)
			}
			if msg := res.Err.Error(); strings.Contains(msg, "sekret") || strings.Contains(msg, "secret=x") {
				t.Errorf("Err = %q: it shows a query", msg)
			}
			if n := len(rc.received()); n != 1 {
				t.Errorf("receiver got %d requests, want 1: the redirect was followed", n)
			}
		})
	}
}

// TestDeliverRefusesPrivateAddresses checks that without AllowPrivate no
// request reaches a non-public address, whether the URL names it or a host
// name resolves to it when dialled.
func TestDeliverRefusesPrivateAddresses(t *testing.T) {
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.Listener.Addr().String())
	cfg := loopback()
	cfg.AllowPrivate = false
	d := newDeliverer(t, cfg)
	for _, host := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "[fc00::1]", "localhost"} {
		t.Run(host, func(t *testing.T) {
			res := d.Deliver(t.Context(), target("http://"+host+":"+port+"/hook"), testEvent())
			if res.Retry || res.Status != 0 || !errors.Is(res.Err, webhooks.ErrForbiddenAddress) {
				t.Errorf("Deliver() = %+v, want no Retry, no status, %v", res, webhooks.ErrForbiddenAddress)
			}
		})
	}
	if n := len(rc.received()); n != 0 {
		t.Errorf("receiver got %d requests, want 0", n)
	}
}

func TestDeliverInvalidTarget(t *testing.T) {
	d := newDeliverer(t, loopback())
	badID := testEvent()
	badID.ID = "a.b"
	tests := []struct {
		name   string
		target webhooks.Target
		ev     users.Event
	}{
		{"no secret", webhooks.Target{URL: "http://127.0.0.1:1/"}, testEvent()},
		{"bad secret", webhooks.Target{URL: "http://127.0.0.1:1/", Secrets: []string{webhooks.NewSecret(), "whsec_short"}}, testEvent()},
		{"bad URL", target("ftp://127.0.0.1/"), testEvent()},
		{"bad event id", target("http://127.0.0.1:1/"), badID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := d.Deliver(t.Context(), tt.target, tt.ev)
			if res.Retry || res.Status != 0 || !errors.Is(res.Err, webhooks.ErrInvalidTarget) {
				t.Errorf("Deliver() = %+v, want no Retry, no status, %v", res, webhooks.ErrInvalidTarget)
			}
		})
	}
}

// TestDeliverRateLimit checks that a target never receives more than its
// rate: 20 deliveries at once to a target limited to 5 a second with a
// burst of 1 must arrive at least 200ms apart, as the receiver's clock
// sees them.
func TestDeliverRateLimit(t *testing.T) {
	const n, every = 20, 200 * time.Millisecond
	// slack absorbs the scheduling and network delays between a token's
	// time and the arrival; a broken limit bunches arrivals much closer.
	const slack = 40 * time.Millisecond
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	d := newDeliverer(t, webhooks.Config{AllowPrivate: true, Rate: 5, Burst: 1, MaxWait: 10 * time.Second, Registerer: reg})
	tg := target(rc.URL)

	var wg sync.WaitGroup
	results := make([]webhooks.Result, n)
	for i := range n {
		wg.Go(func() { results[i] = d.Deliver(t.Context(), tg, testEvent()) })
	}
	wg.Wait()
	for i, res := range results {
		if res.Err != nil {
			t.Errorf("Deliver() #%d err = %v", i, res.Err)
		}
	}
	var at []time.Time
	for _, r := range rc.received() {
		at = append(at, r.at)
	}
	slices.SortFunc(at, time.Time.Compare)
	for i := range at {
		for j := i + 1; j < len(at); j++ {
			if gap, least := at[j].Sub(at[i]), time.Duration(j-i)*every-slack; gap < least {
				t.Errorf("arrivals %d and %d %v apart, want at least %v", i, j, gap, least)
			}
		}
	}
	if got := metricValue(t, reg, "usersd_webhook_rate_limited_total", "action", "wait"); got != n-1 {
		t.Errorf("rate limit waits = %v, want %d", got, n-1)
	}
}

// TestDeliverRateLimitDefers checks that a delivery the rate limit would
// hold longer than MaxWait is not sent, but returned to retry when the
// limit allows, and that each target has its own limit.
func TestDeliverRateLimitDefers(t *testing.T) {
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	d := newDeliverer(t, webhooks.Config{AllowPrivate: true, Rate: 1, Burst: 1, MaxWait: 50 * time.Millisecond, Registerer: reg})
	a, b := target(rc.URL), target(rc.URL)
	a.ID, b.ID = "a", "b"
	if res := d.Deliver(t.Context(), a, testEvent()); res.Err != nil {
		t.Fatalf("first Deliver() err = %v", res.Err)
	}
	res := d.Deliver(t.Context(), a, testEvent())
	if !errors.Is(res.Err, webhooks.ErrRateLimited) || !res.Retry || res.RetryAfter <= 900*time.Millisecond || res.RetryAfter > time.Second || res.Status != 0 {
		t.Errorf("second Deliver() = %+v, want %v, Retry, RetryAfter about 1s", res, webhooks.ErrRateLimited)
	}
	if res := d.Deliver(t.Context(), b, testEvent()); res.Err != nil {
		t.Errorf("Deliver() to another target err = %v", res.Err)
	}
	if n := len(rc.received()); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
	if got := metricValue(t, reg, "usersd_webhook_rate_limited_total", "action", "defer"); got != 1 {
		t.Errorf("rate limit deferrals = %v, want 1", got)
	}
}

// TestDeliverRateLimitMemory checks that the rate limit keeps at most
// MaxTargets buckets.
func TestDeliverRateLimitMemory(t *testing.T) {
	rc := newReceiver(t, nil)
	reg := prometheus.NewRegistry()
	d := newDeliverer(t, webhooks.Config{AllowPrivate: true, Rate: 1, MaxTargets: 3, Registerer: reg})
	for i := range 10 {
		tg := target(rc.URL)
		tg.ID = strconv.Itoa(i)
		if res := d.Deliver(t.Context(), tg, testEvent()); res.Err != nil {
			t.Fatalf("Deliver() err = %v", res.Err)
		}
	}
	if got := metricValue(t, reg, "usersd_webhook_rate_limit_targets"); got != 3 {
		t.Errorf("targets tracked = %v, want 3", got)
	}
	if got := metricValue(t, reg, "usersd_webhook_rate_limit_evicted_total"); got != 7 {
		t.Errorf("evicted = %v, want 7", got)
	}
}

// TestDeliverConcurrencyBound checks that no more than MaxConcurrent
// deliveries are in flight at once, counted by the receiver, and that the
// bound is reached.
func TestDeliverConcurrencyBound(t *testing.T) {
	const max, n = 3, 24
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
	})
	cfg := loopback()
	cfg.MaxConcurrent, cfg.MaxConcurrentPerTarget = max, max
	d := newDeliverer(t, cfg)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if res := d.Deliver(t.Context(), target(rc.URL), testEvent()); res.Err != nil {
				t.Errorf("Deliver() err = %v", res.Err)
			}
		})
	}
	wg.Wait()
	if got := rc.maxInFlight.Load(); got != max {
		t.Errorf("at most %d requests in flight, want %d", got, max)
	}
	if got := len(rc.received()); got != n {
		t.Errorf("receiver got %d requests, want %d", got, n)
	}
}

// TestDeliverPerTargetBound: a target that does not answer holds at most
// half of the slots (MaxConcurrent 4, per target 2 by default); another
// target is delivered meanwhile.
func TestDeliverPerTargetBound(t *testing.T) {
	release := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	fast := newReceiver(t, nil)
	cfg := loopback()
	cfg.MaxConcurrent = 4
	d := newDeliverer(t, cfg)
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if res := d.Deliver(t.Context(), webhooks.Target{ID: "slow", URL: slow.URL, Secrets: target(slow.URL).Secrets}, testEvent()); res.Err != nil {
				t.Errorf("Deliver(slow) err = %v", res.Err)
			}
		})
	}
	for slow.inFlight.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for range 2 {
		if res := d.Deliver(ctx, webhooks.Target{ID: "fast", URL: fast.URL, Secrets: target(fast.URL).Secrets}, testEvent()); res.Err != nil {
			t.Errorf("Deliver(fast) while the slow target holds its slots: err = %v", res.Err)
		}
	}
	if got := slow.inFlight.Load(); got != 2 {
		t.Errorf("%d requests in flight to the slow target, want 2 (half of MaxConcurrent)", got)
	}
	close(release)
	wg.Wait()
	if got := slow.maxInFlight.Load(); got != 2 {
		t.Errorf("at most %d requests in flight to the slow target, want 2", got)
	}
	if got := len(slow.received()); got != 6 {
		t.Errorf("slow target got %d requests, want 6", got)
	}
}

// TestDeliverAdmit: an attempt whose Target.Admit says no after the waits
// is not sent, and says so with ErrHeld; one it admits is.
func TestDeliverAdmit(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newDeliverer(t, loopback())
	tg := target(rc.URL)
	tg.Admit = func() bool { return false }
	if res := d.Deliver(t.Context(), tg, testEvent()); !errors.Is(res.Err, webhooks.ErrHeld) || !res.Retry || res.Status != 0 {
		t.Errorf("Deliver() held = %+v, want Retry, %v", res, webhooks.ErrHeld)
	}
	if n := len(rc.received()); n != 0 {
		t.Errorf("receiver got %d requests for an attempt held back", n)
	}
	tg.Admit = func() bool { return true }
	if res := d.Deliver(t.Context(), tg, testEvent()); res.Err != nil {
		t.Errorf("Deliver() admitted err = %v", res.Err)
	}
	if n := len(rc.received()); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

// TestDeliverWaitsForSlotWithContext checks that a delivery waiting for a
// slot gives up with its context, without sending.
func TestDeliverWaitsForSlotWithContext(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	cfg := loopback()
	cfg.MaxConcurrent = 1
	d := newDeliverer(t, cfg)
	done := make(chan webhooks.Result)
	go func() { done <- d.Deliver(t.Context(), target(rc.URL), testEvent()) }()
	for rc.inFlight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	res := d.Deliver(ctx, target(rc.URL), testEvent())
	if !res.Retry || !errors.Is(res.Err, context.DeadlineExceeded) || res.Status != 0 {
		t.Errorf("Deliver() = %+v, want Retry, %v", res, context.DeadlineExceeded)
	}
	close(release)
	if res := <-done; res.Err != nil {
		t.Errorf("first Deliver() err = %v", res.Err)
	}
	if n := len(rc.received()); n != 1 {
		t.Errorf("receiver got %d requests, want 1", n)
	}
}

func TestDeliverMetrics(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("status"))
		w.WriteHeader(code)
	})
	reg := prometheus.NewRegistry()
	cfg := loopback()
	cfg.Registerer = reg
	d := newDeliverer(t, cfg)
	for _, status := range []string{"200", "202", "500", "404"} {
		d.Deliver(t.Context(), target(rc.URL+"/?status="+status), testEvent())
	}
	d.Deliver(t.Context(), target("gopher://x/"), testEvent())
	for result, want := range map[string]float64{"success": 2, "retry": 1, "failed": 2} {
		if got := metricValue(t, reg, "usersd_webhook_deliveries_total", "result", result); got != want {
			t.Errorf("deliveries{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got := metricValue(t, reg, "usersd_webhook_delivery_duration_seconds"); got != 4 {
		t.Errorf("latency observations = %v, want 4", got)
	}
	if got := metricValue(t, reg, "usersd_webhook_deliveries_in_flight"); got != 0 {
		t.Errorf("in flight = %v, want 0", got)
	}
	if _, err := webhooks.NewDeliverer(cfg); err == nil {
		t.Errorf("NewDeliverer() registering the metrics twice: no error")
	}
}

// metricValue returns the value of the metric with the name and label
// pairs in reg: a counter's or gauge's value, a histogram's count.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
					return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}) {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}
