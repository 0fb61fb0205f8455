package natsevents

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// TestMain fails the package when a test leaves a goroutine running: every
// connection must be closed, on the error paths too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// natsURL returns the URL of the NATS server (with JetStream) the tests
// use, skipping the test without one unless CI=true.
func natsURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("USERSD_TEST_NATS_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("USERSD_TEST_NATS_URL is not set and CI=true: the NATS tests must run in CI")
		}
		t.Skip("set USERSD_TEST_NATS_URL (e.g. nats://127.0.0.1:4222) to run the NATS tests")
	}
	return url
}

// admin returns a JetStream client of its own on url, closed when the test
// ends, to look at streams apart from the Publisher under test.
func admin(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("nats.Connect(%s) err = %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// testStream is a stream of the test's own: a unique name and subject
// prefix, so that tests (and the relay's USERSD_EVENTS) do not see each
// other's messages. It is deleted when the test ends.
type testStream struct {
	url, name, prefix string
	js                jetstream.JetStream // admin client
}

func newTestStream(t *testing.T) *testStream {
	t.Helper()
	url := natsURL(t)
	id := strings.ToLower(rand.Text()[:12])
	s := &testStream{
		url:    url,
		name:   "USERSD_TEST_" + strings.ToUpper(id),
		prefix: "usersdtest." + id + ".events.",
		js:     admin(t, url),
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.js.DeleteStream(ctx, s.name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("deleting stream %s: %v", s.name, err)
		}
	})
	return s
}

// connect returns a Publisher on the test's stream, closed when the test
// ends.
func (s *testStream) connect(t *testing.T) *Publisher {
	t.Helper()
	p, err := connect(t.Context(), s.url, s.name, s.prefix)
	if err != nil {
		t.Fatalf("connect(%s, %s) err = %v", s.url, s.name, err)
	}
	t.Cleanup(p.Close)
	return p
}

// config returns the stream's configuration on the server.
func (s *testStream) config(t *testing.T) jetstream.StreamConfig {
	t.Helper()
	info, err := s.stream(t).Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.Config
}

func (s *testStream) stream(t *testing.T) jetstream.Stream {
	t.Helper()
	st, err := s.js.Stream(t.Context(), s.name)
	if err != nil {
		t.Fatalf("stream %s: %v", s.name, err)
	}
	return st
}

// messages returns every message of the stream, in order.
func (s *testStream) messages(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	st := s.stream(t)
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatalf("GetMsg(%d) err = %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// newEvent returns an event of type typ about a user, with a fresh id.
func newEvent(t *testing.T, typ users.EventType) users.Event {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	u := &users.User{
		Tenant: users.DefaultTenant, ID: "0194d0a0-0000-7000-8000-00000000000a", Email: "ada@example.com", DisplayName: "Ada",
		State: users.StateActive, CreateTime: now, UpdateTime: now, Revision: 1,
	}
	ev := users.Event{ID: newID(t), Tenant: users.DefaultTenant, Type: typ, UserID: u.ID, User: u, Time: now}
	if typ == users.EventPurged {
		ev.User = nil
	}
	return ev
}

// newID returns a fresh UUIDv7, as the stores make event ids.
func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func TestSubject(t *testing.T) {
	for _, tt := range []struct {
		tenant string
		typ    users.EventType
		want   string
	}{
		{"default", users.EventCreated, "usersd.events.default.user.created"},
		{"acme", users.EventUpdated, "usersd.events.acme.user.updated"},
		{"acme-eu-2", users.EventDeleted, "usersd.events.acme-eu-2.user.deleted"},
		{"default", users.EventUndeleted, "usersd.events.default.user.undeleted"},
		{"default", users.EventPurged, "usersd.events.default.user.purged"},
	} {
		if got := Subject(tt.tenant, tt.typ); got != tt.want {
			t.Errorf("Subject(%s, %s) = %q, want %q", tt.tenant, tt.typ, got, tt.want)
		}
	}
}

// TestConnect connects to the real stream, USERSD_EVENTS, and checks the
// configuration it promises. The stream is shared with the relay (and
// cmd/usersd's TestEventsNATS, which may run at the same time), so the
// test neither publishes to it nor deletes it.
func TestConnect(t *testing.T) {
	url := natsURL(t)
	p, err := Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("Connect(%s) err = %v", url, err)
	}
	defer p.Close()
	st, err := admin(t, url).Stream(t.Context(), StreamName)
	if err != nil {
		t.Fatalf("stream %s after Connect: %v", StreamName, err)
	}
	checkConfig(t, st.CachedInfo().Config, StreamName, SubjectPrefix)
}

// checkConfig checks the parts of a stream's configuration that Connect
// sets.
func checkConfig(t *testing.T, got jetstream.StreamConfig, name, prefix string) {
	t.Helper()
	if got.Name != name {
		t.Errorf("stream name = %q, want %q", got.Name, name)
	}
	if want := []string{prefix + ">"}; !cmp.Equal(got.Subjects, want) {
		t.Errorf("stream %s subjects = %q, want %q", name, got.Subjects, want)
	}
	if got.Duplicates != DuplicateWindow {
		t.Errorf("stream %s duplicate window = %v, want %v", name, got.Duplicates, DuplicateWindow)
	}
	if got.Storage != jetstream.FileStorage {
		t.Errorf("stream %s storage = %v, want file", name, got.Storage)
	}
}

// TestConnectCreatesStream: a stream that does not exist is created.
func TestConnectCreatesStream(t *testing.T) {
	s := newTestStream(t)
	if _, err := s.js.Stream(t.Context(), s.name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("stream %s before connect: err = %v, want not found", s.name, err)
	}
	s.connect(t)
	checkConfig(t, s.config(t), s.name, s.prefix)
}

// TestConnectIdempotent connects again, as every replica and restart does:
// the stream and its messages stay.
func TestConnectIdempotent(t *testing.T) {
	s := newTestStream(t)
	ev := newEvent(t, users.EventCreated)
	if err := s.connect(t).Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	p := s.connect(t)
	checkConfig(t, s.config(t), s.name, s.prefix)
	// The duplicate window survives too: the same event is still dropped.
	if err := p.Publish(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	msgs := s.messages(t)
	if len(msgs) != 1 || msgs[0].Header.Get(jetstream.MsgIDHeader) != ev.ID {
		t.Errorf("after connecting again and publishing the same event, the stream holds %d messages, want the first one only", len(msgs))
	}
}

// TestConnectUpdatesStream: a stream that exists with other settings gets
// the subjects and duplicate window Connect promises.
func TestConnectUpdatesStream(t *testing.T) {
	s := newTestStream(t)
	if _, err := s.js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name:       s.name,
		Subjects:   []string{s.prefix + "user.created"},
		Duplicates: time.Minute,
		Storage:    jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	s.connect(t)
	checkConfig(t, s.config(t), s.name, s.prefix)
}

// TestConnectStreamError: a stream that cannot be made what Connect
// promises (here, one kept in memory: the storage of a stream cannot
// change) fails the connect, naming the stream, and leaves it as it was.
func TestConnectStreamError(t *testing.T) {
	s := newTestStream(t)
	if _, err := s.js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name:     s.name,
		Subjects: []string{s.prefix + ">"},
		Storage:  jetstream.MemoryStorage,
	}); err != nil {
		t.Fatal(err)
	}
	p, err := connect(t.Context(), s.url, s.name, s.prefix)
	if err == nil {
		p.Close()
		t.Fatalf("connect to a stream in memory err = nil, want an error")
	}
	if !strings.Contains(err.Error(), "stream "+s.name) {
		t.Errorf("connect err = %q, want it to name stream %s", err, s.name)
	}
	if got := s.config(t).Storage; got != jetstream.MemoryStorage {
		t.Errorf("storage after a failed connect = %v, want memory", got)
	}
}

// TestConnectCancelled: the stream is made under the caller's context.
func TestConnectCancelled(t *testing.T) {
	s := newTestStream(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p, err := connect(ctx, s.url, s.name, s.prefix)
	if !errors.Is(err, context.Canceled) {
		if p != nil {
			p.Close()
		}
		t.Fatalf("connect with a cancelled context err = %v, want context.Canceled", err)
	}
	if _, err := s.js.Stream(t.Context(), s.name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream %s after a cancelled connect: err = %v, want not found", s.name, err)
	}
}

// TestConnectUnreachable connects to a loopback port nobody listens on: the
// connect fails at once with nats.ErrNoServers, naming the URL, and keeps
// no connection trying in the background (goleak checks).
func TestConnectUnreachable(t *testing.T) {
	url := "nats://" + closedPort(t)
	start := time.Now()
	p, err := Connect(t.Context(), url)
	if err == nil {
		p.Close()
		t.Fatalf("Connect(%s) err = nil, want an error", url)
	}
	if !errors.Is(err, nats.ErrNoServers) || !strings.Contains(err.Error(), url) {
		t.Errorf("Connect(%s) err = %v, want nats.ErrNoServers naming the URL", url, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect to a closed port took %v, want it to fail at once", d)
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestPublish checks each message: its subject, its id, its trace parent
// and its body, the webhooks' payload.
func TestPublish(t *testing.T) {
	s := newTestStream(t)
	p := s.connect(t)
	traced := newEvent(t, users.EventCreated)
	traced.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	updated := newEvent(t, users.EventUpdated)
	updated.Paths = []string{"display_name"}
	other := newEvent(t, users.EventDeleted)
	other.Tenant = "acme"
	evs := []users.Event{traced, updated, other, newEvent(t, users.EventUndeleted), newEvent(t, users.EventPurged)}
	for _, ev := range evs {
		if err := p.Publish(t.Context(), ev); err != nil {
			t.Fatalf("Publish(%s %s) err = %v", ev.Type, ev.ID, err)
		}
	}
	msgs := s.messages(t)
	if len(msgs) != len(evs) {
		t.Fatalf("the stream holds %d messages, want %d", len(msgs), len(evs))
	}
	for i, ev := range evs {
		m := msgs[i]
		if want := s.prefix + ev.Tenant + "." + string(ev.Type); m.Subject != want {
			t.Errorf("event %s: subject %q, want %q", ev.Type, m.Subject, want)
		}
		if got := m.Header.Get(HeaderTenant); got != ev.Tenant {
			t.Errorf("event %s: %s = %q, want %q", ev.Type, HeaderTenant, got, ev.Tenant)
		}
		if got := m.Header.Get(jetstream.MsgIDHeader); got != ev.ID {
			t.Errorf("event %s: %s = %q, want the event id %q", ev.Type, jetstream.MsgIDHeader, got, ev.ID)
		}
		if got, ok := m.Header["traceparent"]; ev.TraceParent == "" && ok {
			t.Errorf("event %s without a trace: traceparent header %q, want none", ev.Type, got)
		} else if ev.TraceParent != "" && m.Header.Get("traceparent") != ev.TraceParent {
			t.Errorf("event %s: traceparent %q, want %q", ev.Type, m.Header.Get("traceparent"), ev.TraceParent)
		}
		want, err := webhooks.Payload(ev)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(m.Data)); diff != "" {
			t.Errorf("event %s: body differs from webhooks.Payload (-want +got):\n%s", ev.Type, diff)
		}
	}
}

// TestPublishDeduplicates publishes an event again, as the relay does after
// a crash: the stream keeps one copy.
func TestPublishDeduplicates(t *testing.T) {
	s := newTestStream(t)
	p := s.connect(t)
	a, b := newEvent(t, users.EventCreated), newEvent(t, users.EventCreated)
	for _, ev := range []users.Event{a, a, b, a, b} {
		if err := p.Publish(t.Context(), ev); err != nil {
			t.Fatalf("Publish(%s) err = %v", ev.ID, err)
		}
	}
	var got []string
	for _, m := range s.messages(t) {
		got = append(got, m.Header.Get(jetstream.MsgIDHeader))
	}
	if diff := cmp.Diff([]string{a.ID, b.ID}, got); diff != "" {
		t.Errorf("message ids in the stream (-want +got):\n%s", diff)
	}
}

// TestPublishConcurrent publishes from several goroutines on one Publisher.
func TestPublishConcurrent(t *testing.T) {
	s := newTestStream(t)
	p := s.connect(t)
	const goroutines, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	want := map[string]bool{}
	var mu sync.Mutex
	for range goroutines {
		wg.Go(func() {
			for range each {
				ev := newEvent(t, users.EventCreated)
				mu.Lock()
				want[ev.ID] = true
				mu.Unlock()
				if err := p.Publish(t.Context(), ev); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	msgs := s.messages(t)
	got := map[string]bool{}
	for _, m := range msgs {
		got[m.Header.Get(jetstream.MsgIDHeader)] = true
	}
	if len(msgs) != goroutines*each || !cmp.Equal(got, want) {
		t.Errorf("the stream holds %d messages (%d distinct ids), want the %d events published", len(msgs), len(got), len(want))
	}
}

// TestPublishInvalidEvent: an event the payload cannot carry (an empty id,
// or one with a '.', see webhooks.Payload) is not published.
func TestPublishInvalidEvent(t *testing.T) {
	s := newTestStream(t)
	p := s.connect(t)
	for _, id := range []string{"", "0194d0a0.1"} {
		ev := newEvent(t, users.EventCreated)
		ev.ID = id
		if err := p.Publish(t.Context(), ev); err == nil {
			t.Errorf("Publish of an event with id %q err = nil, want an error", ev.ID)
		}
	}
	if msgs := s.messages(t); len(msgs) != 0 {
		t.Errorf("the stream holds %d messages after failed publishes, want 0", len(msgs))
	}
}

// TestPublishWithoutStream deletes the stream under a Publisher: publishing
// fails with jetstream.ErrNoStreamResponse, naming the event, rather than
// leaving the event unsaved in silence.
func TestPublishWithoutStream(t *testing.T) {
	s := newTestStream(t)
	p := s.connect(t)
	if err := s.js.DeleteStream(t.Context(), s.name); err != nil {
		t.Fatal(err)
	}
	ev := newEvent(t, users.EventCreated)
	err := p.Publish(t.Context(), ev)
	if !errors.Is(err, jetstream.ErrNoStreamResponse) || !strings.Contains(err.Error(), ev.ID) {
		t.Errorf("Publish without a stream err = %v, want jetstream.ErrNoStreamResponse naming event %s", err, ev.ID)
	}
}

// TestPublishCancelled: a cancelled context publishes nothing.
func TestPublishCancelled(t *testing.T) {
	s := newTestStream(t)
	p := s.connect(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Publish(ctx, newEvent(t, users.EventCreated)); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context err = %v, want context.Canceled", err)
	}
	if msgs := s.messages(t); len(msgs) != 0 {
		t.Errorf("the stream holds %d messages after a cancelled publish, want 0", len(msgs))
	}
}

// TestPublishServerGone connects through a loopback proxy and then cuts
// it, so the server is unreachable: Publish waits for the acknowledgement
// no longer than its context allows, and Close stops the reconnecting
// (goleak checks).
func TestPublishServerGone(t *testing.T) {
	s := newTestStream(t)
	px := newProxy(t, strings.TrimPrefix(s.url, "nats://"))
	p, err := connect(t.Context(), "nats://"+px.addr(), s.name, s.prefix)
	if err != nil {
		t.Fatalf("connect through the proxy err = %v", err)
	}
	defer p.Close()
	if err := p.Publish(t.Context(), newEvent(t, users.EventCreated)); err != nil {
		t.Fatalf("Publish through the proxy err = %v", err)
	}
	px.stop()

	const timeout = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	err = p.Publish(ctx, newEvent(t, users.EventCreated))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish with the server unreachable err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Errorf("Publish with the server unreachable returned after %v, want about %v", d, timeout)
	}
	if n := len(s.messages(t)); n != 1 {
		t.Errorf("the stream holds %d messages, want only the one published before the cut", n)
	}
}

// proxy forwards TCP connections from a loopback port to upstream until
// stop, which closes the port and every connection and waits for its
// goroutines.
type proxy struct {
	l        net.Listener
	upstream string
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
	stopped  bool
}

func newProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{l: l, upstream: upstream}
	px.wg.Go(px.accept)
	t.Cleanup(px.stop)
	return px
}

func (px *proxy) addr() string { return px.l.Addr().String() }

func (px *proxy) accept() {
	for {
		c, err := px.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", px.upstream)
		if err != nil {
			c.Close()
			continue
		}
		if !px.track(c, u) {
			return
		}
		px.wg.Go(func() { io.Copy(u, c); u.Close() })
		px.wg.Go(func() { io.Copy(c, u); c.Close() })
	}
}

// track remembers conns for stop, or closes them when stop has run.
func (px *proxy) track(conns ...net.Conn) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.stopped {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	px.conns = append(px.conns, conns...)
	return true
}

func (px *proxy) stop() {
	px.mu.Lock()
	px.stopped = true
	px.l.Close()
	for _, c := range px.conns {
		c.Close()
	}
	px.mu.Unlock()
	px.wg.Wait()
}
