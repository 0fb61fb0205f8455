package ratelimit_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/ratelimit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// clock is a settable time source, safe for concurrent use.
type clock struct{ ns atomic.Int64 }

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *clock) now() time.Time          { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) set(d time.Duration)     { c.ns.Store(int64(d)) }

// newLimiter returns a Limiter of cfg on a clock stopped at epoch.
func newLimiter(t testing.TB, cfg ratelimit.Config, key func(context.Context) string) (*ratelimit.Limiter, *clock) {
	t.Helper()
	l, err := ratelimit.New(cfg, key)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{}
	ratelimit.SetClock(l, c.now)
	return l, c
}

// TestBurstAndRefill drains a bucket, then checks that refused calls are
// told when the next token is due, cost nothing, and are admitted once it
// is.
func TestBurstAndRefill(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 2}, nil)
	for i := range 2 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("call %d of the burst refused", i+1)
		}
	}
	steps := []struct {
		at        time.Duration
		wantOK    bool
		wantRetry time.Duration
	}{
		{0, false, time.Second},
		{0, false, time.Second}, // refused calls take nothing
		{250 * time.Millisecond, false, 750 * time.Millisecond},
		{750 * time.Millisecond, false, 250 * time.Millisecond},
		{time.Second, true, 0},
		{time.Second, false, time.Second},
		{3500 * time.Millisecond, true, 0}, // 2.5 tokens refilled, capped at 2
		{3500 * time.Millisecond, true, 0},
		{3500 * time.Millisecond, false, time.Second},
	}
	for i, s := range steps {
		c.set(s.at)
		ok, retry := l.Allow("a")
		if ok != s.wantOK || retry != s.wantRetry {
			t.Errorf("step %d at %v: Allow = %v, %v; want %v, %v", i, s.at, ok, retry, s.wantOK, s.wantRetry)
		}
	}
}

// TestCallersIndependent checks that one caller draining its bucket leaves
// another's alone.
func TestCallersIndependent(t *testing.T) {
	l, _ := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 3}, nil)
	for range 10 {
		l.Allow("greedy")
	}
	if ok, _ := l.Allow("greedy"); ok {
		t.Fatal("greedy caller admitted past its burst")
	}
	for i := range 3 {
		if ok, retry := l.Allow("quiet"); !ok {
			t.Fatalf("quiet caller's call %d refused (retry after %v)", i+1, retry)
		}
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name      string
		cfg       ratelimit.Config
		wantBurst int // calls admitted at once; -1: all
	}{
		{"burst defaults to the rate", ratelimit.Config{Rate: 5}, 5},
		{"rounded up", ratelimit.Config{Rate: 2.5}, 3},
		{"at least 1", ratelimit.Config{Rate: 0.1}, 1},
		{"explicit burst", ratelimit.Config{Rate: 5, Burst: 2}, 2},
		{"rate 0: no limit", ratelimit.Config{Burst: 1}, -1},
		{"negative rate: no limit", ratelimit.Config{Rate: -1, Burst: 1}, -1},
		{"rate.Inf: no limit", ratelimit.Config{Rate: rate.Inf, Burst: 1}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := newLimiter(t, tt.cfg, nil)
			got := 0
			for range 100 {
				if ok, _ := l.Allow("a"); !ok {
					break
				}
				got++
			}
			if want := tt.wantBurst; want == -1 {
				want = 100
				if n := l.Len(); n != 0 {
					t.Errorf("Len() = %d with no limit, want 0", n)
				}
				tt.wantBurst = want
			}
			if got != tt.wantBurst {
				t.Errorf("calls admitted at once = %d, want %d", got, tt.wantBurst)
			}
		})
	}
}

func TestNilLimiter(t *testing.T) {
	var l *ratelimit.Limiter
	if ok, _ := l.Allow("a"); !ok {
		t.Error("nil Limiter refused a call")
	}
	if n := l.Len(); n != 0 {
		t.Errorf("Len() = %d, want 0", n)
	}
	resp, err := l.UnaryServerInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{},
		func(context.Context, any) (any, error) { return "ok", nil })
	if resp != "ok" || err != nil {
		t.Errorf("interceptor = %v, %v; want ok, nil", resp, err)
	}
}

// TestMemoryBound sends 100,000 distinct callers and checks that at most
// MaxCallers buckets remain, and the heap with them.
func TestMemoryBound(t *testing.T) {
	const maxCallers, callers = 1000, 100_000
	reg := prometheus.NewRegistry()
	l, _ := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, MaxCallers: maxCallers, Registerer: reg}, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range callers {
		if ok, _ := l.Allow("ip:10.0." + strconv.Itoa(i)); !ok {
			t.Fatalf("new caller %d refused", i)
		}
		if i%10_000 == 0 && l.Len() > maxCallers {
			t.Fatalf("after %d callers Len() = %d, want <= %d", i+1, l.Len(), maxCallers)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := l.Len(); n != maxCallers {
		t.Errorf("Len() = %d, want %d", n, maxCallers)
	}
	// About 250 bytes a bucket; allow 4 KB.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 4096*maxCallers {
		t.Errorf("heap grew %d bytes for %d buckets, want <= %d", grown, maxCallers, 4096*maxCallers)
	} else {
		t.Logf("heap grew %d bytes for %d buckets", grown, maxCallers)
	}
	runtime.KeepAlive(l)
	if got, want := gauge(t, reg, "usersd_rate_limit_callers"), float64(maxCallers); got != want {
		t.Errorf("usersd_rate_limit_callers = %v, want %v", got, want)
	}
	// The callers were all fresh: none had refilled when pushed out.
	if got, want := counter(t, reg, "usersd_rate_limit_evicted_total", ""), float64(callers-maxCallers); got != want {
		t.Errorf("usersd_rate_limit_evicted_total = %v, want %v", got, want)
	}
}

// TestEviction shows the trade-off documented on the package: the least
// recently used bucket makes room for a new caller, and if it had not
// refilled, its caller gets a fresh burst.
func TestEviction(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, _ := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, MaxCallers: 2, Registerer: reg}, nil)
	l.Allow("a")
	l.Allow("b")
	if ok, _ := l.Allow("a"); ok { // a is drained, and now the most recent
		t.Fatal("a admitted past its burst")
	}
	l.Allow("c") // pushes out b, the least recently used
	if ok, _ := l.Allow("a"); ok {
		t.Error("a admitted: its bucket was pushed out instead of b's")
	}
	l.Allow("d") // pushes out c
	l.Allow("e") // pushes out a, drained
	if ok, _ := l.Allow("a"); !ok {
		t.Error("a refused after its bucket was pushed out; want a fresh burst")
	}
	if got := counter(t, reg, "usersd_rate_limit_evicted_total", ""); got != 4 {
		t.Errorf("usersd_rate_limit_evicted_total = %v, want 4", got)
	}
}

// TestIdleBucketsDropped checks that buckets idle long enough to refill
// are dropped on later calls, which is not counted as an eviction and
// changes nothing for their callers.
func TestIdleBucketsDropped(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, c := newLimiter(t, ratelimit.Config{Rate: 2, Burst: 4, MaxCallers: 100, Registerer: reg}, nil) // refills in 2s
	for i := range 10 {
		for range 5 {
			l.Allow(fmt.Sprint("old", i))
		}
	}
	c.advance(1999 * time.Millisecond)
	l.Allow("new")
	if n := l.Len(); n != 11 {
		t.Errorf("Len() before the buckets refilled = %d, want 11", n)
	}
	l.Allow("old0")
	c.advance(time.Second) // all but old0 and new idle for 3s
	for range 3 {
		l.Allow("new")
	}
	if n := l.Len(); n != 2 {
		t.Errorf("Len() after the buckets refilled = %d, want 2 (new, old0)", n)
	}
	if got := counter(t, reg, "usersd_rate_limit_evicted_total", ""); got != 0 {
		t.Errorf("usersd_rate_limit_evicted_total = %v, want 0", got)
	}
	for i := range 4 {
		if ok, _ := l.Allow("old5"); !ok {
			t.Errorf("old5's call %d refused after its bucket was dropped", i+1)
		}
	}
}

// TestConcurrent hammers a few callers from many goroutines on a stopped
// clock: each caller is admitted exactly its burst, whatever the
// interleaving, and refused calls take no token.
func TestConcurrent(t *testing.T) {
	const burst, callers, goroutines, calls = 50, 4, 16, 200
	l, c := newLimiter(t, ratelimit.Config{Rate: 10, Burst: burst}, nil)
	var admitted [callers]atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				k := (g + i) % callers
				if ok, _ := l.Allow(strconv.Itoa(k)); ok {
					admitted[k].Add(1)
				}
			}
		})
	}
	// Meanwhile, distinct callers churn through the buckets.
	wg.Go(func() {
		for i := range 1000 {
			l.Allow(fmt.Sprint("churn", i))
			_ = l.Len()
		}
	})
	wg.Wait()
	for k := range callers {
		if got := admitted[k].Load(); got != burst {
			t.Errorf("caller %d admitted %d calls, want %d", k, got, burst)
		}
	}
	c.advance(time.Second) // 10 tokens each
	for k := range callers {
		n := 0
		for range 20 {
			if ok, _ := l.Allow(strconv.Itoa(k)); ok {
				n++
			}
		}
		if n != 10 {
			t.Errorf("caller %d admitted %d calls a second later, want 10", k, n)
		}
	}
}

func TestRegistrationConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := ratelimit.New(ratelimit.Config{Rate: 1, Registerer: reg}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ratelimit.New(ratelimit.Config{Rate: 1, Registerer: reg}, nil); err == nil {
		t.Error("second New on the same Registerer: err = nil, want a registration error")
	}
}

// testSubject is the metadata key the tests use in place of an
// authenticated subject.
const testSubject = "x-test-subject"

func subject(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, testSubject); len(v) > 0 {
		return v[0]
	}
	return ""
}

// serveHealth serves the health service through l's interceptor on a TCP
// port of 127.0.0.1 and returns a client.
func serveHealth(t *testing.T, l *ratelimit.Limiter) healthpb.HealthClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(l.UnaryServerInterceptor()))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(lis) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// check calls Check as subject (none if ""), with extra outgoing metadata
// pairs, and returns the retry-after header and the error.
func check(t *testing.T, c healthpb.HealthClient, subj string, kv ...string) (retryAfter string, err error) {
	t.Helper()
	ctx := t.Context()
	if subj != "" {
		kv = append(kv, testSubject, subj)
	}
	if len(kv) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	var header metadata.MD
	_, err = c.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header))
	return strings.Join(header.Get(ratelimit.MDRetryAfter), ","), err
}

// TestInterceptor checks the refusal a gRPC client sees: RESOURCE_EXHAUSTED
// naming the limit, retry-after in whole seconds, and RetryInfo; and that
// callers are keyed by subject, or else by address.
func TestInterceptor(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, c := newLimiter(t, ratelimit.Config{Rate: 0.4, Burst: 2, Registerer: reg}, ratelimit.SubjectKey(subject))
	client := serveHealth(t, l)

	for range 2 {
		if _, err := check(t, client, "alice"); err != nil {
			t.Fatalf("alice within her burst: %v", err)
		}
	}
	retry, err := check(t, client, "alice")
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("alice past her burst: code = %v (%v), want ResourceExhausted", st.Code(), err)
	}
	if want := "rate limit exceeded: 0.4 requests/s per caller, burst 2; retry after 3s"; st.Message() != want {
		t.Errorf("message = %q, want %q", st.Message(), want)
	}
	if retry != "3" { // 2.5s, rounded up
		t.Errorf("retry-after = %q, want 3", retry)
	}
	var info *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			info = ri
		}
	}
	if info == nil || info.GetRetryDelay().AsDuration() != 3*time.Second {
		t.Errorf("details = %v, want RetryInfo of 3s", st.Details())
	}

	c.advance(2400 * time.Millisecond)
	if retry, _ := check(t, client, "alice"); retry != "1" { // 100ms, rounded up
		t.Errorf("100ms before the next token: retry-after = %q, want 1", retry)
	}
	c.advance(100 * time.Millisecond)
	if _, err := check(t, client, "alice"); err != nil {
		t.Errorf("alice once a token refilled: %v", err)
	}

	// Another subject, and calls without one (keyed by 127.0.0.1), have
	// their own buckets.
	for _, subj := range []string{"bob", "bob", "", ""} {
		if _, err := check(t, client, subj); err != nil {
			t.Errorf("subject %q: %v", subj, err)
		}
	}
	// x-forwarded-for is ignored on calls over the network.
	if _, err := check(t, client, "", "x-forwarded-for", "198.51.100.7"); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("third call from 127.0.0.1 claiming another address: %v, want ResourceExhausted", err)
	}
	// A subject spelt like the address is another caller.
	if _, err := check(t, client, "ip:127.0.0.1"); err != nil {
		t.Errorf("subject spelt like an address: %v", err)
	}

	if got := counter(t, reg, "usersd_rate_limited_total", "grpc"); got != 3 {
		t.Errorf(`usersd_rate_limited_total{transport="grpc"} = %v, want 3`, got)
	}
	if got := counter(t, reg, "usersd_rate_limited_total", "http"); got != 0 {
		t.Errorf(`usersd_rate_limited_total{transport="http"} = %v, want 0`, got)
	}
}

// TestGateway calls through an in-process channel as the HTTP gateway does,
// with the metadata grpc-gateway derives from the HTTP request: calls are
// keyed by the HTTP client's address, whatever X-Forwarded-For it sends.
func TestGateway(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, _ := newLimiter(t, ratelimit.Config{Rate: 1, Burst: 1, Registerer: reg}, nil)
	ch := inproc.New(l.UnaryServerInterceptor())
	healthpb.RegisterHealthServer(ch, health.NewServer())
	client := healthpb.NewHealthClient(ch)
	mux := gwruntime.NewServeMux()

	call := func(remote, xff string) (string, error) {
		t.Helper()
		req := httptest.NewRequest("GET", "/healthz", nil)
		req.RemoteAddr = remote
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		ctx, err := gwruntime.AnnotateContext(t.Context(), mux, req, healthpb.Health_Check_FullMethodName)
		if err != nil {
			t.Fatal(err)
		}
		var header metadata.MD
		_, err = client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&header))
		return strings.Join(header.Get(ratelimit.MDRetryAfter), ","), err
	}

	if _, err := call("203.0.113.9:41000", ""); err != nil {
		t.Fatalf("first call from 203.0.113.9: %v", err)
	}
	retry, err := call("203.0.113.9:41001", "198.51.100.1")
	if status.Code(err) != codes.ResourceExhausted || retry != "1" {
		t.Errorf("second call from 203.0.113.9, claiming another address: %v, retry-after %q; want ResourceExhausted, 1", err, retry)
	}
	if _, err := call("203.0.113.10:41000", "203.0.113.9"); err != nil {
		t.Errorf("first call from 203.0.113.10, claiming 203.0.113.9: %v", err)
	}
	// One IPv6 /64 is one caller.
	if _, err := call("[2001:db8:1:2::1]:41000", ""); err != nil {
		t.Errorf("first call from 2001:db8:1:2::/64: %v", err)
	}
	if _, err := call("[2001:db8:1:2::ffff]:41000", ""); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second call from 2001:db8:1:2::/64: %v, want ResourceExhausted", err)
	}
	if got := counter(t, reg, "usersd_rate_limited_total", "http"); got != 2 {
		t.Errorf(`usersd_rate_limited_total{transport="http"} = %v, want 2`, got)
	}
}

// metric returns the metric of family name with label transport (none if
// ""), or nil.
func metric(t *testing.T, reg *prometheus.Registry, name, transport string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if transport == "" {
				return m
			}
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "transport" && lp.GetValue() == transport {
					return m
				}
			}
		}
	}
	t.Fatalf("no metric %s{transport=%q}", name, transport)
	return nil
}

func counter(t *testing.T, reg *prometheus.Registry, name, transport string) float64 {
	t.Helper()
	return metric(t, reg, name, transport).GetCounter().GetValue()
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metric(t, reg, name, "").GetGauge().GetValue()
}

// TestTinyRate checks that a wait too long for a Duration is capped, not
// wrapped around to a negative or tiny hint.
func TestTinyRate(t *testing.T) {
	l, _ := newLimiter(t, ratelimit.Config{Rate: 1e-12, Burst: 1}, nil)
	l.Allow("a")
	if ok, retry := l.Allow("a"); ok || retry != math.MaxInt64 {
		t.Errorf("Allow = %v, %v; want false, %v", ok, retry, time.Duration(math.MaxInt64))
	}
}
