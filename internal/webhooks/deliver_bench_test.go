package webhooks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/usersd/usersd/internal/webhooks"
)

// BenchmarkDeliver measures the delivery path alone: the payload, the
// signature, the rate limit (none here) and the POST to a loopback receiver
// that answers 204 at once, with DefaultMaxConcurrent deliveries in flight.
// Its deliveries/s is the ceiling of one replica's webhook throughput on
// this machine, without the queue and the store (docs/events.md).
func BenchmarkDeliver(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d := newDeliverer(b, loopback())
	tg, ev := target(srv.URL), testEvent()
	ctx := context.Background()
	b.SetParallelism(max(1, webhooks.DefaultMaxConcurrent/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := d.Deliver(ctx, tg, ev); res.Err != nil {
				b.Error(res.Err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
}
