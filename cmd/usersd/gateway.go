package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/usersd/usersd/client"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/health"
	"github.com/usersd/usersd/internal/overload"
	"github.com/usersd/usersd/internal/telemetry"
)

// gatewayCommand is the gateway command: the HTTP/JSON API and the admin
// endpoints, calling the usersd replicas of cfg.Upstream over gRPC, until
// ctx ends; then the shutdown sequence of serve, which hard cuts short.
func gatewayCommand(ctx, hard context.Context, cfg config, getenv func(string) string, log zerolog.Logger) error {
	if cfg.Upstream == "" {
		return errors.New("gateway: --upstream (or USERSD_UPSTREAM) is required")
	}
	tcfg := traceConfig(getenv, version)
	if tcfg.ServiceName == "" {
		tcfg.ServiceName = "usersd-gateway"
	}
	tp, flushTraces, err := newTracing(ctx, tcfg, log)
	if err != nil {
		return err
	}
	defer flushTraces()

	// The client's deadline is the request timeout, and its stats handler
	// carries each request's trace to the replica.
	opts := []client.Option{
		client.WithTracerProvider(tp), client.WithPropagators(telemetry.Propagator()),
		client.WithTimeout(cfg.RequestTimeout),
	}
	tlsOpt, err := upstreamTLS(cfg, log)
	if err != nil {
		return err
	}
	if tlsOpt != nil {
		opts = append(opts, tlsOpt)
	}
	tlsSrc, err := tlsSource(cfg, log)
	if err != nil {
		return err
	}
	conn, err := client.Dial(ctx, cfg.Upstream, opts...)
	if err != nil {
		return fmt.Errorf("upstream %s: %w", cfg.Upstream, err)
	}
	defer func() {
		conn.Close()
		log.Info().Msg("upstream closed")
	}()

	metrics := newMetrics()
	limiter := overload.New(cfg.MaxInFlight, metrics.RejectedInc)
	hc := healthpb.NewHealthClient(conn.ClientConn())
	checker := health.NewChecker(health.Check{Name: "upstream", Fn: func(ctx context.Context) error {
		// Connects if the channel is idle; one replica answers.
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("upstream %v", s)
		}
		return nil
	}})

	gw, err := gateway.NewHandler(ctx, conn.ClientConn(), gateway.Options{MaxBodyBytes: cfg.MaxBodyBytes, V1Sunset: cfg.V1Sunset, Version: version})
	if err != nil {
		return err
	}
	httpSrv, adminSrv := httpServers(cfg, log, tp, metrics, limiter, checker, gw)
	if tlsSrc != nil {
		httpSrv.TLSConfig = tlsSrc.HTTPConfig()
	}
	lis, err := listen(ctx, log, [2]string{"http", cfg.HTTPAddr}, [2]string{"admin", cfg.AdminAddr})
	if err != nil {
		return err
	}
	log.Info().Str("upstream", cfg.Upstream).Msg("gateway started")

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(httpSrv, lis[0]) })
	g.Go(func() error { return serveHTTP(adminSrv, lis[1]) })
	g.Go(func() error {
		<-gctx.Done()
		return shutdown(hard, cfg, log, checker, httpSrv, nil, adminSrv, nil, nil)
	})
	return g.Wait()
}
