package overload_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/overload"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// blocker is a handler that holds every request until released.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) wait() {
	b.entered <- struct{}{}
	<-b.release
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// TestHTTPOverload fills the limit with requests that block, then sends a
// burst: every extra request is answered 503 with Retry-After at once, the
// goroutine count stays bounded, and once the blockers finish requests are
// admitted again.
func TestHTTPOverload(t *testing.T) {
	const limit, burst = 4, 200
	var rejected atomic.Int64
	l := overload.New(limit, func(transport string) {
		if transport == "http" {
			rejected.Add(1)
		}
	})
	b := newBlocker()
	var block atomic.Bool
	block.Store(true)
	srv := httptest.NewServer(l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if block.Load() {
			b.wait()
		}
		w.Write([]byte("ok"))
	})))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()

	var wg sync.WaitGroup
	for range limit {
		wg.Go(func() {
			res, err := client.Get(srv.URL)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		})
	}
	for range limit {
		<-b.entered
	}
	if got := l.InFlight(); got != limit {
		t.Fatalf("InFlight = %d, want %d", got, limit)
	}

	before := runtime.NumGoroutine()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		statuses  = map[int]int{}
		retry     atomic.Int64
		peak      atomic.Int64
	)
	var burstWG sync.WaitGroup
	for range burst / 20 {
		burstWG.Go(func() {
			for range 20 {
				start := time.Now()
				res, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				d := time.Since(start)
				if res.Header.Get("Retry-After") != "" {
					retry.Add(1)
				}
				if n := int64(runtime.NumGoroutine()); n > peak.Load() {
					peak.Store(n)
				}
				mu.Lock()
				latencies = append(latencies, d)
				statuses[res.StatusCode]++
				mu.Unlock()
			}
		})
	}
	burstWG.Wait()
	if statuses[http.StatusServiceUnavailable] != burst || retry.Load() != burst || rejected.Load() != burst {
		t.Errorf("burst: statuses %v, with Retry-After %d, rejections counted %d; want all %d rejected", statuses, retry.Load(), rejected.Load(), burst)
	}
	// Rejection costs no waiting: well under the time a queued request would take.
	if m := median(latencies); m > 50*time.Millisecond {
		t.Errorf("median rejection took %v, want it immediate", m)
	}
	// 10 client workers plus their connections' server goroutines; nothing
	// accumulates per rejected request.
	if grew := peak.Load() - int64(before); grew > 60 {
		t.Errorf("goroutines grew by %d during a burst of %d rejected requests", grew, burst)
	}
	t.Logf("%d rejections, median %v, goroutines %d → peak %d", burst, median(latencies), before, peak.Load())

	block.Store(false)
	close(b.release)
	wg.Wait()
	if got := l.InFlight(); got != 0 {
		t.Errorf("InFlight after the blockers = %d, want 0", got)
	}
	res, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("after the overload: status %d, want 200", res.StatusCode)
	}
}

// blockingHealth is a gRPC service whose Check blocks until released.
type blockingHealth struct {
	healthpb.UnimplementedHealthServer
	b     *blocker
	block *atomic.Bool
}

func (h blockingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if h.block.Load() {
		h.b.wait()
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func TestGRPCOverload(t *testing.T) {
	const limit, burst = 3, 150
	l := overload.New(limit, nil)
	b := newBlocker()
	var block atomic.Bool
	block.Store(true)
	srv := grpc.NewServer(grpc.UnaryInterceptor(l.UnaryServerInterceptor()))
	healthpb.RegisterHealthServer(srv, blockingHealth{b: b, block: &block})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var serveWG sync.WaitGroup
	serveWG.Go(func() { srv.Serve(lis) })
	defer func() {
		srv.Stop()
		serveWG.Wait()
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx := context.Background()

	var wg sync.WaitGroup
	for range limit {
		wg.Go(func() {
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
				t.Error(err)
			}
		})
	}
	for range limit {
		<-b.entered
	}
	var latencies []time.Duration
	for range burst {
		var hdr metadata.MD
		start := time.Now()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr))
		latencies = append(latencies, time.Since(start))
		if status.Code(err) != codes.ResourceExhausted || len(hdr.Get("retry-after")) != 1 {
			t.Fatalf("over the limit: err %v, retry-after %v; want RESOURCE_EXHAUSTED with retry-after", err, hdr.Get("retry-after"))
		}
	}
	if m := median(latencies); m > 50*time.Millisecond {
		t.Errorf("median rejection took %v, want it immediate", m)
	}
	block.Store(false)
	close(b.release)
	wg.Wait()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("after the overload: %v", err)
	}
}

// TestNoLimit: a nil Limiter and a limit of 0 admit any number of
// concurrent requests.
func TestNoLimit(t *testing.T) {
	for _, l := range []*overload.Limiter{nil, overload.New(0, nil)} {
		const n = 500
		release := make(chan struct{})
		ic := l.UnaryServerInterceptor()
		h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				_, err := ic(context.Background(), nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, req any) (any, error) {
					admitted.Add(1)
					<-release
					return nil, nil
				})
				if err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
				if rec.Code != http.StatusOK {
					t.Errorf("status %d", rec.Code)
				}
			})
		}
		for admitted.Load() < n {
			runtime.Gosched()
		}
		close(release)
		wg.Wait()
	}
}
