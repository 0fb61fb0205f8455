package main

// User events end to end: webhooks delivered through faults within their
// rate limit, disabled when they keep failing, and delivered after a kill
// -9; the NATS JetStream relay.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/usersd/usersd/internal/natsevents"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/testkit"
	"github.com/usersd/usersd/internal/users"
)

// receiver is a webhook endpoint that verifies signatures with the
// Standard Webhooks library and answers each delivery as fault says.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string

	mu       sync.Mutex
	arrivals []time.Time
	attempts map[string]int  // webhook-id → requests
	ok       map[string]bool // webhook-ids answered 2xx
	types    map[string]string
	// happened and okAt are, per webhook-id answered 2xx, the event's
	// time and when the first 2xx was answered.
	happened, okAt map[string]time.Time
	badSigs        int
	// fault answers attempt n (from 1) of a webhook-id; nil: always 204.
	fault func(w http.ResponseWriter, id string, n int) bool
}

func newReceiver(t *testing.T, fault func(w http.ResponseWriter, id string, n int) bool) *receiver {
	r := &receiver{t: t, attempts: map[string]int{}, ok: map[string]bool{}, types: map[string]string{},
		happened: map[string]time.Time{}, okAt: map[string]time.Time{}, fault: fault}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	r.arrivals = append(r.arrivals, time.Now())
	r.attempts[id]++
	n := r.attempts[id]
	secret := r.secret
	r.mu.Unlock()
	if wh, err := standardwebhooks.NewWebhook(secret); err != nil || wh.Verify(body, req.Header) != nil {
		r.mu.Lock()
		r.badSigs++
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if r.fault != nil && r.fault(w, id, n) {
		return
	}
	var ev struct {
		Type      string
		Timestamp time.Time
	}
	json.Unmarshal(body, &ev)
	r.mu.Lock()
	if !r.ok[id] {
		r.happened[id], r.okAt[id] = ev.Timestamp, time.Now()
	}
	r.ok[id] = true
	r.types[id] = ev.Type
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// delivered returns the webhook-ids answered 2xx so far.
func (r *receiver) delivered() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.ok))
	for id := range r.ok {
		out[id] = true
	}
	return out
}

// maxInWindow is the most requests that arrived within any window of d.
func (r *receiver) maxInWindow(d time.Duration) int {
	r.mu.Lock()
	ts := slices.Clone(r.arrivals)
	r.mu.Unlock()
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	most := 0
	for i := range ts {
		j := i
		for j < len(ts) && ts[j].Sub(ts[i]) < d {
			j++
		}
		most = max(most, j-i)
	}
	return most
}

// createWebhook subscribes url to every event type and returns the id and
// the secret.
func createWebhook(t *testing.T, s *testServer, url string) (string, string) {
	t.Helper()
	r := s.do(t, "POST", "/v1/webhooks", `{"url":"`+url+`","enabled":true}`)
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", r.Status, r.Raw)
	}
	if r.str("secret") == "" || r.str("id") == "" {
		t.Fatalf("create webhook answered %s, want its id and secret", r.Raw)
	}
	return r.str("id"), r.str("secret")
}

// feedIDs returns the ids of every event in the feed.
func feedIDs(t *testing.T, s *testServer) map[string]string {
	t.Helper()
	ids := map[string]string{}
	after := ""
	for {
		r := s.do(t, "GET", "/v1/userEvents?pageSize=1000&after="+after, "")
		r.wantStatus(t, http.StatusOK)
		evs, _ := r.Body["events"].([]any)
		for _, e := range evs {
			m := e.(map[string]any)
			ids[m["id"].(string)] = m["type"].(string)
		}
		next := r.str("nextCursor")
		if len(evs) == 0 || next == after {
			return ids
		}
		after = next
	}
}

// waitDelivered waits until the feed holds at least atLeast events and
// every one of them has been delivered. (On Postgres the feed holds back
// events behind a transaction still in progress, such as the job queue's:
// right after the writes it may show none yet.)
func waitDelivered(t *testing.T, s *testServer, r *receiver, atLeast int, limit time.Duration) map[string]string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		want, got := feedIDs(t, s), r.delivered()
		missing := max(atLeast-len(want), 0)
		for id := range want {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			return want
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d of %d events not delivered", limit, missing, len(want))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// webhookArgs are the settings of the webhook tests: quick relays and
// retries, a loopback receiver, and a tight rate limit.
var webhookArgs = []string{"--webhook-allow-private", "--event-relay-interval", "100ms", "--job-poll-interval", "50ms",
	"--job-retry-base", "100ms", "--webhook-timeout", "300ms", "--webhook-rate", "10", "--webhook-burst", "1"}

// TestWebhookFaults delivers the events of ten users to a receiver that
// fails every event's first attempt with 500, then answers 429 with
// Retry-After or too slowly (in turns), then 204: every event arrives, signed, within
// the rate limit, and the attempts are recorded.
func TestWebhookFaults(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		var second atomic.Int32 // second attempts so far: they take turns
		r := newReceiver(t, func(w http.ResponseWriter, id string, n int) bool {
			switch {
			case n == 1:
				w.WriteHeader(http.StatusInternalServerError)
			case n == 2 && second.Add(1)%2 == 1:
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			case n == 2:
				time.Sleep(500 * time.Millisecond) // past --webhook-timeout
				w.WriteHeader(http.StatusNoContent)
			default:
				return false
			}
			return true
		})
		hookID, secret := createWebhook(t, s, r.srv.URL)
		r.mu.Lock()
		r.secret = secret
		r.mu.Unlock()
		start := time.Now()
		for i := range 10 {
			createUser(t, s, fmt.Sprintf("hook%d@example.com", i), "Hooked")
		}
		want := waitDelivered(t, s, r, 10, 30*time.Second)
		took := time.Since(start)

		r.mu.Lock()
		requests, bad := len(r.arrivals), r.badSigs
		for id, typ := range r.types {
			if want[id] != typ {
				t.Errorf("event %s delivered as %q, the feed says %q", id, typ, want[id])
			}
		}
		r.mu.Unlock()
		if bad > 0 {
			t.Errorf("%d deliveries failed signature verification", bad)
		}
		// Rate 10/s, burst 1: at most 1 + 10 sent in any second. Arrival
		// times carry the network's jitter: one request delayed past the
		// next token's time can land in the same second as 11 others, so
		// one more is tolerated; a limiter off by a single token shows as
		// 13 or more, a missing limiter as all 30 within a second or two.
		if most := r.maxInWindow(time.Second); most > 12 {
			t.Errorf("%d deliveries within one second, want at most 11 (rate 10/s, burst 1), 12 with arrival jitter", most)
		}
		t.Logf("%d events delivered in %v with %d requests (%.1f per event); most in one second: %d",
			len(want), took.Round(10*time.Millisecond), requests, float64(requests)/float64(len(want)), r.maxInWindow(time.Second))

		// An attempt is recorded once its answer is back: the last ones
		// may trail the receiver by a moment.
		var statuses map[float64]int
		deadline := time.Now().Add(5 * time.Second)
		for {
			d := s.do(t, "GET", "/v1/webhooks/"+hookID+"/deliveries?pageSize=500", "")
			d.wantStatus(t, http.StatusOK)
			statuses = map[float64]int{}
			list, _ := d.Body["deliveries"].([]any)
			for _, x := range list {
				st, _ := x.(map[string]any)["status"].(float64)
				statuses[st]++
			}
			if statuses[204] >= len(want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if statuses[500] < len(want) || statuses[204] < len(want) || statuses[429] == 0 {
			t.Errorf("recorded attempts by status %v; want a 500 and a 204 per event (%d) and some 429s", statuses, len(want))
		}
	}, webhookArgs...)
}

// TestWebhookDisabled disables a subscription whose receiver always fails,
// after --webhook-disable-after failures in a row.
func TestWebhookDisabled(t *testing.T) {
	s := startServer(t, append(slices.Clone(webhookArgs), "--webhook-disable-after", "3")...)
	r := newReceiver(t, func(w http.ResponseWriter, id string, n int) bool {
		w.WriteHeader(http.StatusBadGateway)
		return true
	})
	hookID, secret := createWebhook(t, s, r.srv.URL)
	r.mu.Lock()
	r.secret = secret
	r.mu.Unlock()
	createUser(t, s, "failing@example.com", "Failing")
	deadline := time.Now().Add(20 * time.Second)
	for {
		h := s.do(t, "GET", "/v1/webhooks/"+hookID, "")
		h.wantStatus(t, http.StatusOK)
		if h.Body["enabled"] != true {
			if !strings.Contains(h.str("disabledReason"), "3") {
				t.Errorf("disabled with reason %q, want it to name the 3 failures", h.str("disabledReason"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook still enabled after 20s: %s", h.Raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWebhookSurvivesKill9 kills the real binary while it delivers the
// events of 30 users to a slow receiver, starts it again, and every event
// is delivered.
func TestWebhookSurvivesKill9(t *testing.T) {
	bin := buildUsersd(t)
	dbURL := pgtest.NewDatabase(t)
	r := newReceiver(t, func(w http.ResponseWriter, id string, n int) bool {
		time.Sleep(20 * time.Millisecond)
		return false
	})
	args := append(slices.Clone(webhookArgs), "--database-url", dbURL, "--job-lease", "4s", "--webhook-rate", "20")
	p := startUsersd(t, bin, args...)
	s := &testServer{HTTP: p.HTTP}
	_, secret := createWebhook(t, s, r.srv.URL)
	r.mu.Lock()
	r.secret = secret
	r.mu.Unlock()
	for i := range 30 {
		createUser(t, s, fmt.Sprintf("kill%d@example.com", i), "Killed")
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(r.delivered()) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("no deliveries within 20s\n%s", p.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	atKill := len(r.delivered())

	p2 := startUsersd(t, bin, args...)
	s2 := &testServer{HTTP: p2.HTTP}
	want := waitDelivered(t, s2, r, 30, 60*time.Second)
	r.mu.Lock()
	repeated := 0
	for _, n := range r.attempts {
		if n > 1 {
			repeated++
		}
	}
	r.mu.Unlock()
	t.Logf("killed after %d of %d deliveries; after the restart all %d arrived (%d event ids arrived more than once)", atKill, len(want), len(want), repeated)
}

// TestEventsNATS publishes every event to JetStream through the relay, each
// with its id as Nats-Msg-Id.
func TestEventsNATS(t *testing.T) {
	url := os.Getenv("USERSD_TEST_NATS_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("USERSD_TEST_NATS_URL is not set and CI=true: the NATS test must run in CI")
		}
		t.Skip("set USERSD_TEST_NATS_URL (e.g. nats://127.0.0.1:4222) to run the NATS test")
	}
	start := time.Now()
	s := startServer(t, "--events-nats-url", url, "--event-relay-interval", "100ms", "--job-poll-interval", "50ms")
	for i := range 5 {
		createUser(t, s, fmt.Sprintf("nats%d@example.com", i), "NATS")
	}
	want := feedIDs(t, s)

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.OrderedConsumer(t.Context(), natsevents.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{natsevents.SubjectPrefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < len(want) && time.Now().Before(deadline) {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			id := m.Headers().Get("Nats-Msg-Id")
			if typ, ok := want[id]; ok {
				got[id]++
				if want := natsevents.Subject(users.DefaultTenant, users.EventType(typ)); m.Subject() != want {
					t.Errorf("event %s on subject %s, want %s", id, m.Subject(), want)
				}
			}
		}
	}
	for id := range want {
		if got[id] != 1 {
			t.Errorf("event %s is in the stream %d times, want once", id, got[id])
		}
	}
	t.Logf("%d events published to JetStream", len(got))
}

// TestWebhookShutdown sends SIGTERM to the real binary while a delivery
// hangs on a slow receiver: the process exits within its shutdown budget,
// the delivery goes back to the queue, and after a restart it arrives.
func TestWebhookShutdown(t *testing.T) {
	bin := buildUsersd(t)
	var hang atomic.Bool
	hang.Store(true)
	r := newReceiver(t, func(w http.ResponseWriter, id string, n int) bool {
		if hang.Load() {
			time.Sleep(3 * time.Second) // past the shutdown budget below
		}
		return false
	})
	db := "sqlite:" + t.TempDir() + "/hooks.db"
	args := append(slices.Clone(webhookArgs), "--database-url", db, "--webhook-timeout", "10s", "--shutdown-timeout", "1s")
	p := startUsersd(t, bin, args...)
	s := &testServer{HTTP: p.HTTP}
	_, secret := createWebhook(t, s, r.srv.URL)
	r.mu.Lock()
	r.secret = secret
	r.mu.Unlock()
	createUser(t, s, "slow@example.com", "Slow")
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.arrivals)
		r.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery started within 20s\n%s", p.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	sent := p.signal(t, syscall.SIGTERM)
	budget := testShutdownDelay + time.Second
	_, exitAt := p.waitExit(t, sent.Add(budget+5*time.Second))
	if took := exitAt.Sub(sent); took > budget+2*time.Second {
		t.Errorf("exited %v after SIGTERM, want within the budget %v (+2s)", took, budget)
	}
	if e, ok := p.event("shutdown: job workers stopped"); !ok || e.Fields["cancelled"] != float64(1) {
		t.Errorf("shutdown did not cancel the hanging delivery: %v\n%s", e.Fields, p.output())
	}

	hang.Store(false)
	p2 := startUsersd(t, bin, args...)
	waitDelivered(t, &testServer{HTTP: p2.HTTP}, r, 1, 30*time.Second)
}

// TestWebhookLag: while a subscription's receiver is down, GET
// /v2/webhooks/{id} and /metrics show its backlog (events and age) and
// its last failure; once the receiver answers, the backlog drains to
// nothing and the last success is set.
func TestWebhookLag(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		var down atomic.Bool
		down.Store(true)
		r, hookID := subscribe(t, s, unavailableWhile(&down))
		const users = 4
		for i := range users {
			createUser(t, s, fmt.Sprintf("lag%d@example.com", i), "Behind")
		}
		type backlog struct {
			Events          string
			OldestEventTime time.Time
			Age             string
		}
		type hook struct {
			Backlog         backlog
			LastSuccessTime *time.Time
			LastFailureTime *time.Time
		}
		get := func() hook {
			res := s.do(t, "GET", "/v2/webhooks/"+hookID, "")
			res.wantStatus(t, http.StatusOK)
			var h hook
			if err := json.Unmarshal([]byte(res.Raw), &h); err != nil {
				t.Fatalf("GET /v2/webhooks/%s: %v in %s", hookID, err, res.Raw)
			}
			return h
		}
		metric := func(name string) string {
			text := testkit.ScrapeURL(t, "http://"+s.Admin+"/metrics", "")
			m := regexp.MustCompile(`(?m)^` + name + `\{enabled="true",webhook="` + hookID + `"\} (\S+)$`).FindStringSubmatch(text)
			if m == nil {
				t.Fatalf("/metrics has no %s of webhook %s", name, hookID)
			}
			return m[1]
		}

		// Down: every event waits, and the backlog says since when.
		deadline := time.Now().Add(20 * time.Second)
		var h hook
		for h = get(); h.Backlog.Events != fmt.Sprint(users) || h.LastFailureTime == nil; h = get() {
			if time.Now().After(deadline) {
				t.Fatalf("receiver down: webhook shows %+v, want a backlog of %d events and a last failure", h, users)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if h.LastSuccessTime != nil || h.Backlog.OldestEventTime.IsZero() || h.Backlog.Age == "0s" || time.Since(h.Backlog.OldestEventTime) > time.Minute {
			t.Errorf("receiver down: webhook shows %+v, want no success, and the age of a recent oldest event", h)
		}
		if n := metric("usersd_webhook_backlog_events"); n != fmt.Sprint(users) {
			t.Errorf("usersd_webhook_backlog_events = %s, want %d", n, users)
		}
		if age, _ := strconv.ParseFloat(metric("usersd_webhook_backlog_age_seconds"), 64); age <= 0 || age > 60 {
			t.Errorf("usersd_webhook_backlog_age_seconds = %v, want the age of a recent event", age)
		}

		// Up again: the backlog drains.
		down.Store(false)
		waitDelivered(t, s, r, users, 30*time.Second)
		deadline = time.Now().Add(10 * time.Second)
		for h = get(); h.Backlog.Events != "0" || h.LastSuccessTime == nil; h = get() {
			if time.Now().After(deadline) {
				t.Fatalf("receiver up: webhook shows %+v, want no backlog and a last success", h)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if h.Backlog.Age != "0s" || !h.Backlog.OldestEventTime.IsZero() || !h.LastSuccessTime.After(*h.LastFailureTime) {
			t.Errorf("receiver up: webhook shows %+v, want an empty backlog and a success after the last failure", h)
		}
		if n := metric("usersd_webhook_backlog_events"); n != "0" {
			t.Errorf("after the backlog drained: usersd_webhook_backlog_events = %s", n)
		}
		if !strings.Contains(testkit.ScrapeURL(t, "http://"+s.Admin+"/metrics", ""), `usersd_webhook_last_success_timestamp_seconds{webhook="`+hookID+`"}`) {
			t.Error("/metrics has no last success of the webhook")
		}
	}, webhookArgs...)
}
