package webhooks

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/ratelimit"
	"github.com/usersd/usersd/internal/users"
)

// Defaults of Config.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMaxConcurrent = 64
	DefaultRate          = rate.Limit(10)
	DefaultMaxWait       = time.Second
	DefaultMaxTargets    = 10_000
	DefaultUserAgent     = "usersd-webhooks"
)

// MaxRetryAfter caps Result.RetryAfter: a target cannot put its webhooks
// off for longer than this with one Retry-After.
const MaxRetryAfter = time.Hour

// maxResponseBody is the most of a response body read, and discarded, so
// that the connection can carry the next attempt.
const maxResponseBody = 16 << 10

// Config configures a Deliverer. The zero value is usable.
type Config struct {
	// Timeout bounds each attempt, from connecting to the response's
	// headers and its body read. Zero or negative means DefaultTimeout.
	Timeout time.Duration
	// MaxConcurrent bounds the attempts in flight at once, over all
	// targets; further calls of Deliver wait for a slot. Zero or negative
	// means DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxConcurrentPerTarget bounds the attempts in flight to one target
	// (Target.ID), so that a slow target leaves slots to the others. Zero
	// or negative means half of MaxConcurrent, at least 1.
	MaxConcurrentPerTarget int
	// Rate is the attempts per second each target receives, on average;
	// Target.Rate overrides it. Zero or negative means DefaultRate, and
	// rate.Inf no limit.
	Rate rate.Limit
	// Burst is the attempts a target may receive at once after being idle.
	// Zero or negative means Rate rounded up, at least 1.
	Burst int
	// MaxWait is the longest Deliver waits for the target's rate limit
	// before it gives up and returns ErrRateLimited with the wait as
	// RetryAfter, for the caller to snooze the attempt. Zero means
	// DefaultMaxWait; negative, never wait.
	MaxWait time.Duration
	// MaxTargets bounds the rate limit buckets kept in memory, about 250
	// bytes each. Zero or negative means DefaultMaxTargets. Make it more
	// than the targets active within a few refill times (Burst/Rate): a
	// bucket pushed out while in use gives its target a fresh burst, which
	// usersd_webhook_rate_limit_evicted_total counts.
	MaxTargets int
	// AllowPrivate lets webhooks reach loopback, private, link-local and
	// other non-public addresses (see ValidateURL). Only for tests and for
	// deployments whose targets are all trusted.
	AllowPrivate bool
	// UserAgent is the requests' User-Agent. Empty means DefaultUserAgent.
	UserAgent string
	// Registerer, if not nil, receives the metrics:
	// usersd_webhook_deliveries_total{result="success"|"retry"|"failed"}
	// (attempts made and targets refused as invalid; not attempts put off
	// by the rate limit or abandoned by the caller before they started),
	// usersd_webhook_delivery_duration_seconds (attempts, to the response
	// headers or the error), usersd_webhook_deliveries_in_flight,
	// usersd_webhook_rate_limited_total{action="wait"|"defer"},
	// usersd_webhook_rate_limit_targets and
	// usersd_webhook_rate_limit_evicted_total.
	Registerer prometheus.Registerer
}

// Target is where, and how, to deliver webhooks.
type Target struct {
	// ID identifies the target (say, the subscription) for its rate
	// limit: the targets with one ID share a bucket. Empty means the URL.
	ID string
	// URL receives the POSTs. See ValidateURL.
	URL string
	// Secrets sign every attempt, each with its own signature (see Sign).
	// There must be at least one. Pass two while rotating: the new and the
	// old.
	Secrets []string
	// Rate and Burst, if Rate is not zero, override Config.Rate and
	// Config.Burst for this target (Burst zero or negative means Rate
	// rounded up, at least 1).
	Rate  rate.Limit
	Burst int
	// Admit, if set, is asked after the waits for a slot and the rate
	// limit, just before the request is sent; false gives the attempt up
	// unsent, with ErrHeld (say, a circuit that opened while it waited).
	Admit func() bool
}

// key identifies t for its rate limit and its slots: its ID, or else its
// URL.
func (t Target) key() string { return cmp.Or(t.ID, t.URL) }

// Result is the outcome of an attempt, and what to do next.
//
//	outcome                            Err wraps            Retry  RetryAfter
//	2xx                                (nil)                false  0
//	3xx (redirects are not followed)   -                    false  0
//	410 Gone                           ErrGone              false  0
//	408, 429                           -                    true   Retry-After
//	other 4xx                          -                    false  0
//	5xx                                -                    true   Retry-After
//	timeout, connection or TLS error   -                    true   0
//	address not public (at dial time)  ErrForbiddenAddress  false  0
//	invalid URL, secret or event       ErrInvalidTarget     false  0
//	rate limit wait over MaxWait       ErrRateLimited       true   until a token
//	Target.Admit said no               ErrHeld              true   0
//	ctx done before or during it       ctx.Err()            true   0
//
// Retry-After is read as seconds or an HTTP date, capped at MaxRetryAfter;
// 0 means none was given (the caller backs off as it sees fit).
type Result struct {
	// Status is the response's status code, or 0 if there was none.
	Status int
	// Latency is the time from sending the request to receiving the
	// response's headers, or the error; 0 if no request was sent.
	Latency time.Duration
	// Err is nil if and only if the target took the webhook (2xx).
	Err error
	// Retry reports whether a later attempt may succeed.
	Retry bool
	// RetryAfter, if more than zero, is how long the target, or its rate
	// limit, asks to wait before the next attempt.
	RetryAfter time.Duration
}

// Deliverer sends webhooks. Its methods are safe for concurrent use. Close
// it when done.
type Deliverer struct {
	timeout      time.Duration
	maxWait      time.Duration
	rate         rate.Limit
	burst        int
	allowPrivate bool
	userAgent    string

	transport *http.Transport
	client    *http.Client
	slots     *semaphore.Weighted
	perTarget *keyedSlots
	limits    *ratelimit.Keyed

	success, retry, failed prometheus.Counter
	latency                prometheus.Histogram
	inFlight               prometheus.Gauge
	waited, deferred       prometheus.Counter
}

// NewDeliverer returns a Deliverer configured by cfg. It fails only if
// cfg's Registerer refuses the metrics.
func NewDeliverer(cfg Config) (*Deliverer, error) {
	d := &Deliverer{
		timeout:      cfg.Timeout,
		maxWait:      cfg.MaxWait,
		rate:         cfg.Rate,
		burst:        cfg.Burst,
		allowPrivate: cfg.AllowPrivate,
		userAgent:    cmp.Or(cfg.UserAgent, DefaultUserAgent),
	}
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	switch {
	case d.maxWait == 0:
		d.maxWait = DefaultMaxWait
	case d.maxWait < 0:
		d.maxWait = 0
	}
	if d.rate <= 0 {
		d.rate = DefaultRate
	}
	if d.burst <= 0 {
		d.burst = defaultBurst(d.rate)
	}
	maxConcurrent := cfg.MaxConcurrent
	if maxConcurrent <= 0 {
		maxConcurrent = DefaultMaxConcurrent
	}
	maxTargets := cfg.MaxTargets
	if maxTargets <= 0 {
		maxTargets = DefaultMaxTargets
	}
	d.slots = semaphore.NewWeighted(int64(maxConcurrent))
	perTarget := cfg.MaxConcurrentPerTarget
	if perTarget <= 0 {
		perTarget = max(1, maxConcurrent/2)
	}
	d.perTarget = newKeyedSlots(perTarget)

	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivate {
		dialer.Control = checkDial
	}
	d.transport = &http.Transport{
		// No Proxy: the dialer's check must see the target's address.
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	d.client = &http.Client{
		Transport: d.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}

	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usersd_webhook_deliveries_total",
		Help: "Webhook attempts by result: success (2xx), retry (may succeed later) or failed (will not).",
	}, []string{"result"})
	d.success = deliveries.WithLabelValues("success")
	d.retry = deliveries.WithLabelValues("retry")
	d.failed = deliveries.WithLabelValues("failed")
	d.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "usersd_webhook_delivery_duration_seconds",
		Help:    "Time from sending a webhook to its response's headers, or the error.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	d.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "usersd_webhook_deliveries_in_flight",
		Help: "Webhook attempts in flight.",
	})
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "usersd_webhook_rate_limited_total",
		Help: "Webhook attempts held by their target's rate limit: wait (waited, then sent) or defer (returned for a later retry).",
	}, []string{"action"})
	d.waited = limited.WithLabelValues("wait")
	d.deferred = limited.WithLabelValues("defer")
	evicted := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "usersd_webhook_rate_limit_evicted_total",
		Help: "Webhook rate limit buckets dropped for another target before they had refilled; each gives its target a fresh burst. If it keeps rising, raise the maximum number of targets.",
	})
	d.limits = ratelimit.NewKeyed(maxTargets, evicted)
	targets := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "usersd_webhook_rate_limit_targets",
		Help: "Webhook targets with a rate limit bucket in memory.",
	}, func() float64 { return float64(d.limits.Len()) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{deliveries, d.latency, d.inFlight, limited, evicted, targets} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("webhooks: registering metrics: %w", err)
			}
		}
	}
	return d, nil
}

// defaultBurst is r rounded up, at least 1.
func defaultBurst(r rate.Limit) int {
	if r == rate.Inf {
		return 1
	}
	return int(max(1, math.Ceil(float64(r))))
}

// Close closes the connections kept open for later attempts. Attempts in
// flight go on; the Deliverer remains usable.
func (d *Deliverer) Close() {
	d.transport.CloseIdleConnections()
}

// Deliver makes one attempt to deliver ev to t: a POST of Payload(ev),
// signed with t's secrets, with the webhook-id, webhook-timestamp,
// webhook-signature and Content-Type: application/json headers, and the
// traceparent of ev (or, if ev has none, of the span in ctx). The Result
// says how it went and whether to try again.
//
// Deliver first waits, with ctx, for one of t's
// Config.MaxConcurrentPerTarget slots and one of the Config.MaxConcurrent
// slots, then for t's rate limit: up to Config.MaxWait, holding the slots;
// if the wait would be longer it sends nothing and returns ErrRateLimited
// with RetryAfter set, so that a job queue can snooze the attempt instead
// of tying up a worker. Waiting for the token after the slot, not before,
// makes attempts leave at the times of their tokens, so a target never sees
// more than its rate, whereas a token taken before waiting for a slot could
// be spent late, next to the following one.
func (d *Deliverer) Deliver(ctx context.Context, t Target, ev users.Event) Result {
	where := origin(t.URL)
	if err := ValidateURL(t.URL, d.allowPrivate); err != nil {
		return d.count(Result{Err: fmt.Errorf("webhooks: %s: %w", where, err)})
	}
	keys, err := parseSecrets(t.Secrets)
	if err != nil {
		return d.count(Result{Err: fmt.Errorf("webhooks: %s: %w", where, err)})
	}
	body, err := Payload(ev)
	if err != nil {
		return d.count(Result{Err: fmt.Errorf("webhooks: %s: %w", where, err)})
	}

	release, err := d.perTarget.acquire(ctx, t.key())
	if err != nil {
		return Result{Err: fmt.Errorf("webhooks: %s: waiting for a delivery slot of the target: %w", where, err), Retry: true}
	}
	defer release()
	if err := d.slots.Acquire(ctx, 1); err != nil {
		return Result{Err: fmt.Errorf("webhooks: %s: waiting for a delivery slot: %w", where, err), Retry: true}
	}
	defer d.slots.Release(1)
	if res, ok := d.waitRate(ctx, t, where); !ok {
		return res
	}
	if t.Admit != nil && !t.Admit() {
		return Result{Err: fmt.Errorf("webhooks: %s: %w", where, ErrHeld), Retry: true}
	}
	return d.count(d.post(ctx, t, ev, body, keys, where))
}

// waitRate waits for a token of t's rate limit, and reports false with the
// result to return if Deliver must not send.
func (d *Deliverer) waitRate(ctx context.Context, t Target, where string) (Result, bool) {
	r, b := d.rate, d.burst
	if t.Rate != 0 {
		r, b = t.Rate, t.Burst
		if b <= 0 {
			b = defaultBurst(r)
		}
	}
	if r == rate.Inf || r < 0 {
		return Result{}, true
	}
	now := time.Now()
	res := d.limits.Reserve(t.key(), r, b, now)
	delay := res.DelayFrom(now)
	switch {
	case delay == 0:
		return Result{}, true
	case delay > d.maxWait:
		res.CancelAt(now)
		d.deferred.Inc()
		return Result{
			Err:        fmt.Errorf("webhooks: %s: %w: next attempt allowed in %v", where, ErrRateLimited, delay.Round(time.Millisecond)),
			Retry:      true,
			RetryAfter: min(delay, MaxRetryAfter),
		}, false
	}
	d.waited.Inc()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	select {
	case <-timer.C:
		return Result{}, true
	case <-ctx.Done():
		res.Cancel()
		return Result{Err: fmt.Errorf("webhooks: %s: waiting for the rate limit: %w", where, ctx.Err()), Retry: true}, false
	}
}

// post makes the attempt.
func (d *Deliverer) post(ctx context.Context, t Target, ev users.Event, body []byte, keys [][]byte, where string) Result {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Err: fmt.Errorf("webhooks: %s: %w: URL", where, ErrInvalidTarget)} // ValidateURL passed it
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", d.userAgent)
	h.Set("webhook-id", ev.ID)
	sent := time.Now()
	h.Set("webhook-timestamp", strconv.FormatInt(sent.Unix(), 10))
	h.Set("webhook-signature", sign(ev.ID, sent.Unix(), body, keys))
	if tp := cmp.Or(ev.TraceParent, users.TraceParent(parent)); tp != "" {
		h.Set("traceparent", tp)
	}

	d.inFlight.Inc()
	defer d.inFlight.Dec()
	resp, err := d.client.Do(req)
	latency := time.Since(sent)
	d.latency.Observe(latency.Seconds())
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, whose query may hold a credential
		}
		switch {
		case errors.Is(err, ErrForbiddenAddress):
			return Result{Latency: latency, Err: fmt.Errorf("webhooks: POST %s: %w", where, err)}
		case errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil:
			err = fmt.Errorf("no response within %v: %w", d.timeout, err)
		}
		return Result{Latency: latency, Err: fmt.Errorf("webhooks: POST %s: %w", where, err), Retry: true}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	res := classify(resp.StatusCode, resp.Header, time.Now())
	res.Latency = latency
	if res.Err != nil {
		res.Err = fmt.Errorf("webhooks: POST %s: %w", where, res.Err)
	}
	return res
}

// classify returns the Result of a response with the status code and
// headers, received at now.
func classify(code int, h http.Header, now time.Time) Result {
	res := Result{Status: code}
	switch {
	case code >= 200 && code <= 299:
		return res
	case code >= 300 && code <= 399:
		res.Err = fmt.Errorf("status %d, a redirect to %q, not followed: update the target's URL", code, redact(h.Get("Location")))
	case code == http.StatusGone:
		res.Err = fmt.Errorf("status %d: %w", code, ErrGone)
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		res.Err, res.Retry = fmt.Errorf("status %d", code), true
	case code >= 400 && code <= 499:
		res.Err = fmt.Errorf("status %d", code)
	default: // 5xx, and anything else
		res.Err, res.Retry = fmt.Errorf("status %d", code), true
	}
	if res.Retry {
		res.RetryAfter = retryAfter(h.Get("Retry-After"), now)
	}
	return res
}

// retryAfter parses a Retry-After header, delay-seconds or an HTTP date,
// received at now. It returns 0 if v is empty, malformed or in the past,
// and at most MaxRetryAfter.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	switch secs, err := strconv.ParseUint(v, 10, 64); {
	case err == nil && secs < uint64(MaxRetryAfter/time.Second):
		return time.Duration(secs) * time.Second
	case err == nil, errors.Is(err, strconv.ErrRange): // digits, too many
		return MaxRetryAfter
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), MaxRetryAfter)
	}
	return 0
}

// origin returns the scheme and host of the URL raw, to name a target in
// errors: the rest may hold a credential (a token in the query, or in the
// path as some services' webhook URLs have it), and the caller knows which
// target it asked for.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(malformed URL)"
	}
	return u.Scheme + "://" + u.Host
}

// redact returns the URL raw without its query, fragment and user
// information, which may hold credentials, for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(malformed URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}

// count records res in the deliveries metric and returns it.
func (d *Deliverer) count(res Result) Result {
	switch {
	case res.Err == nil:
		d.success.Inc()
	case res.Retry:
		d.retry.Inc()
	default:
		d.failed.Inc()
	}
	return res
}
