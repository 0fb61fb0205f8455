package ratelimit_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"

	"github.com/usersd/usersd/internal/ratelimit"
)

// BenchmarkInterceptor measures the interceptor's cost per call, keyed by
// PeerKey on TCP peers, against a handler that does nothing:
//
//   - off: no limit (Rate 0), the interceptor passes calls through;
//   - 1-caller: one caller, always admitted;
//   - 10k-callers: 10,000 callers in turn, all within MaxCallers;
//   - churn: 1,000,000 callers in turn with MaxCallers 10,000, so every
//     call makes a bucket and evicts one;
//   - refused: one caller past its limit, every call refused.
//
// The -parallel variants call from GOMAXPROCS goroutines at once.
func BenchmarkInterceptor(b *testing.B) {
	// Never refuses in a benchmark's time, and buckets take days to refill
	// (so they stay in memory however slowly the benchmark cycles).
	const lots, burst = rate.Limit(1000), 1 << 30
	cases := []struct {
		name    string
		cfg     ratelimit.Config
		callers int
	}{
		{"off", ratelimit.Config{}, 1},
		{"1-caller", ratelimit.Config{Rate: lots, Burst: burst}, 1},
		{"10k-callers", ratelimit.Config{Rate: lots, Burst: burst, MaxCallers: 10_000}, 10_000},
		{"churn", ratelimit.Config{Rate: lots, Burst: burst, MaxCallers: 10_000}, 1_000_000},
		{"refused", ratelimit.Config{Rate: 1e-9, Burst: 1}, 1},
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/users.v1.UserService/GetUser"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	for _, bc := range cases {
		l, err := ratelimit.New(bc.cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		ic := l.UnaryServerInterceptor()
		ctxs := make([]context.Context, bc.callers)
		for i := range ctxs {
			ctxs[i] = peerCtx(&net.TCPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 40000})
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ic(ctxs[i], nil, info, handler)
				if i++; i == len(ctxs) {
					i = 0
				}
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ic(ctxs[int(next.Add(1))%len(ctxs)], nil, info, handler)
				}
			})
		})
	}
}
