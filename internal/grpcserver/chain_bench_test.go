package grpcserver_test

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"buf.build/go/protovalidate"
	"github.com/fullstorydev/grpchan/inprocgrpc"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/users"
)

// BenchmarkInterceptorChain measures what each observability layer adds to
// one GetUser call, against the chain with none of them (validation, error
// mapping, recovery, deadline). Calls go through an in-process channel, so
// no network cost hides the difference. Logging writes JSON to io.Discard;
// tracing uses the SDK with the default sampler and no exporter, as usersd
// runs when no OTEL_* variable is set.
func BenchmarkInterceptorChain(b *testing.B) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		b.Fatal(err)
	}
	svc := users.NewService(sqlite.NewStore(db), users.Config{})
	u, err := svc.Create(ctx, users.CreateRequest{User: &users.User{Email: "bench@example.com", DisplayName: "Bench"}})
	if err != nil {
		b.Fatal(err)
	}
	v, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	log := zerolog.New(io.Discard)
	metrics := telemetry.NewMetrics(prometheus.NewRegistry(), telemetry.BuildInfo{})
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(ctx)

	for _, mode := range []struct {
		name                     string
		logging, metrics, traces bool
	}{
		{name: "none"},
		{name: "logging", logging: true},
		{name: "metrics", metrics: true},
		{name: "tracing", traces: true},
		{name: "all", logging: true, metrics: true, traces: true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var chain []grpc.UnaryServerInterceptor
			if mode.traces {
				spans, _ := telemetry.GRPCSpans(tp, nil)
				chain = append(chain, spans)
			}
			if mode.metrics {
				chain = append(chain, metrics.UnaryServerInterceptor())
			}
			if mode.logging {
				chain = append(chain, telemetry.AccessLogInterceptor(log))
			}
			chain = append(chain, grpcserver.RecoveryInterceptor, grpcserver.DeadlineInterceptor(30*time.Second),
				grpcserver.ErrorInterceptor, grpcserver.ValidateInterceptor(v))
			ch := (&inprocgrpc.Channel{}).WithServerUnaryInterceptor(grpcserver.Chain(chain...))
			usersv1.RegisterUserServiceServer(ch, grpcserver.New(svc))
			client := usersv1.NewUserServiceClient(ch)
			req := &usersv1.GetUserRequest{Id: u.ID}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := client.GetUser(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
