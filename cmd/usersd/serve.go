package main

import (
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strings"
	"time"

	"github.com/rs/zerolog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/attrschema"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/certs"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/health"
	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/natsevents"
	"github.com/usersd/usersd/internal/overload"
	"github.com/usersd/usersd/internal/ratelimit"
	"github.com/usersd/usersd/internal/scim"
	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/tenantrate"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// serve is the serve command: the gRPC API, the HTTP/JSON gateway and the
// admin endpoints, until ctx ends; then the shutdown sequence of
// docs/operations.md, which hard cuts short. What it builds, in order, is
// docs/architecture.md's "Wiring order": each part needs only those before
// it.
func serve(ctx, hard context.Context, cfg config, getenv func(string) string, log zerolog.Logger) error {
	tp, flushTraces, err := newTracing(ctx, traceConfig(getenv, version), log)
	if err != nil {
		return err
	}
	// Last of all: the spans of the whole run, shutdown included.
	defer flushTraces()
	metrics := newMetrics()

	deps, closeDeps, err := jobDeps(ctx, cfg, tp, metrics, log)
	if err != nil {
		return err
	}
	defer closeDeps()

	db, err := openDatabase(ctx, cfg.DatabaseURL, cfg.Migrate, cfg.DatabaseAcquireTimeout, tp, log)
	if err != nil {
		return err
	}
	defer func() {
		db.close()
		log.Info().Msg("database closed")
	}()
	stored, err := db.withJobs(jobsConfig(cfg, metrics, log))
	if err != nil {
		return err
	}
	svc := newService(stored.store, stored.jobs, cfg)

	// The workers stop in the shutdown sequence, not when ctx ends (River
	// would cancel running jobs at once); the deferred Stop only matters
	// when serve fails before that.
	workers, err := stored.jobs.Start(context.WithoutCancel(ctx), svc, deps)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
		defer cancel()
		workers.Stop(sctx)
	}()
	if db.pool != nil {
		metrics.InstrumentPool(db.pool)
	}
	checker := health.NewChecker(
		health.Check{Name: "database", Fn: stored.ping},
		health.Check{Name: "migrations", Fn: db.migrated},
	)
	return serveAPIs(ctx, hard, cfg, log, tp, metrics, checker, svc, workers.Stop)
}

// jobDeps returns what the job workers hand their work to: the webhook
// deliverer, the NATS publisher when --events-nats-url is set, and the
// tracer provider; and the function that closes them.
func jobDeps(ctx context.Context, cfg config, tp trace.TracerProvider, metrics *telemetry.Metrics, log zerolog.Logger) (jobs.Deps, func(), error) {
	deliverer, err := webhooks.NewDeliverer(webhooks.Config{
		Timeout:       cfg.WebhookTimeout,
		MaxConcurrent: cfg.WebhookMaxConcurrent,
		Rate:          rate.Limit(cfg.WebhookRate),
		Burst:         cfg.WebhookBurst,
		AllowPrivate:  cfg.WebhookAllowPrivate,
		UserAgent:     "usersd/" + version,
		Registerer:    metrics.Registerer(),
	})
	if err != nil {
		return jobs.Deps{}, nil, err
	}
	deps := jobs.Deps{Deliverer: deliverer, TracerProvider: tp}
	if cfg.EventsNATSURL == "" {
		return deps, deliverer.Close, nil
	}
	p, err := natsevents.Connect(ctx, cfg.EventsNATSURL)
	if err != nil {
		deliverer.Close()
		return jobs.Deps{}, nil, err
	}
	log.Info().Str("url", redactURL(cfg.EventsNATSURL)).Str("stream", natsevents.StreamName).Msg("publishing events to NATS JetStream")
	deps.Publisher = p
	return deps, func() {
		p.Close()
		deliverer.Close()
	}, nil
}

// jobsConfig is the job queue's settings.
func jobsConfig(cfg config, metrics *telemetry.Metrics, log zerolog.Logger) jobs.Config {
	return jobs.Config{
		WebhookWorkers:     cfg.WebhookWorkers,
		RelayEvery:         cfg.EventRelayInterval,
		ImportWorkers:      cfg.ImportWorkers,
		MaintenanceWorkers: cfg.MaintenanceWorkers,
		Lease:              cfg.JobLease,
		MaxAttempts:        cfg.JobMaxAttempts,
		RetryBase:          cfg.JobRetryBase,
		RetryMax:           cfg.JobRetryMax,
		PurgeEvery:         cfg.PurgeInterval,
		PollInterval:       cfg.JobPollInterval,
		Log:                log,
		Registerer:         metrics.Registerer(),
	}
}

// newService is the domain service on store, which reads the
// subscriptions' backlogs from backlogs.
func newService(store users.Store, backlogs users.BacklogReader, cfg config) *users.Service {
	var key []byte
	if cfg.PageTokenKey != "" {
		key = []byte(cfg.PageTokenKey)
	}
	tenants := tenantrate.New(store, 0, 0) // the tenants' settings, cached, shared by the two checks
	return users.NewService(store, users.Config{
		PageTokenKey:        key,
		ImportChunkSize:     cfg.ImportChunkSize,
		DeletedRetention:    cfg.DeletedRetention,
		EventRetention:      cfg.EventRetention,
		CheckWebhookURL:     func(u string) error { return webhooks.ValidateURL(u, cfg.WebhookAllowPrivate) },
		NewWebhookSecret:    webhooks.NewSecret,
		DisableWebhookAfter: cfg.WebhookDisableAfter,
		Backlogs:            backlogs,
		TenantGate:          tenants,
		AttributeSchemas:    attrschema.NewTenants(tenants, 0),
	})
}

// serveAPIs serves svc over gRPC and the HTTP/JSON gateway, and the admin
// endpoints, until ctx ends; then it runs the shutdown sequence, whose last
// step is stopJobs.
func serveAPIs(ctx, hard context.Context, cfg config, log zerolog.Logger, tp trace.TracerProvider, metrics *telemetry.Metrics, checker *health.Checker, svc *users.Service, stopJobs func(context.Context) error) error {
	api := grpcserver.New(svc)
	apiV2 := api.V2() // one Drain (api.Drain) ends the streams of both versions
	tenants := grpcserver.NewTenantsV2(svc)
	groups := grpcserver.NewGroupsV2(svc)
	limiter := overload.New(cfg.MaxInFlight, metrics.RejectedInc)
	authn, err := newAuthenticator(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer authn.Close()
	callers, err := ratelimit.New(ratelimit.Config{
		Rate:       rate.Limit(cfg.RateLimit),
		Burst:      cfg.RateBurst,
		MaxCallers: cfg.RateLimitCallers,
		Registerer: metrics.Registerer(),
	}, ratelimit.SubjectKey(auth.Subject))
	if err != nil {
		return err
	}

	// Metrics run outermost, so they count rejected, failed and panicking
	// calls too; calls from the gateway count under their RPC as well.
	chain := grpcserver.ChainConfig{
		Log:       log,
		Metrics:   metrics.UnaryServerInterceptor(),
		Limit:     limiter.UnaryServerInterceptor(),
		Timeout:   cfg.RequestTimeout,
		Sunset:    cfg.V1Sunset,
		Auth:      authn.UnaryInterceptor(),
		RateLimit: callers.UnaryServerInterceptor(),

		CountStoreError: metrics.CountStoreError,
	}
	interceptors := grpcserver.Interceptors(chain)
	// The gateway's channel skips the in-flight limiter and the sunset
	// metadata: HTTP requests are bounded, and v1 responses announce the
	// sunset, at the HTTP edge. Authentication and the per-caller rate
	// limit apply to both.
	chain.Limit, chain.Sunset = nil, time.Time{}
	inprocInterceptors := grpcserver.Interceptors(chain)

	tlsSrc, err := tlsSource(cfg, log)
	if err != nil {
		return err
	}
	grpcSrv := newGRPCServer(cfg, tp, tlsSrc, checker, interceptors, authn.StreamInterceptor(), api, apiV2, tenants, groups)

	// The gateway reaches the same services in-process, through the same
	// interceptors, in the HTTP request's goroutine and context: no network
	// hop, no serialisation, no span of its own (see docs/gateway.md for
	// the measurements behind this choice).
	inprocConn := inproc.New(grpcserver.Chain(inprocInterceptors...))
	usersv1.RegisterUserServiceServer(inprocConn, api)
	usersv2.RegisterUserServiceServer(inprocConn, apiV2)
	usersv2.RegisterTenantServiceServer(inprocConn, tenants)
	usersv2.RegisterGroupServiceServer(inprocConn, groups)
	gw, err := gateway.NewHandler(ctx, inprocConn, gateway.Options{MaxBodyBytes: cfg.MaxBodyBytes, V1Sunset: cfg.V1Sunset, Version: version})
	if err != nil {
		return err
	}
	// SCIM is served next to the gateway, through the same edge
	// (telemetry, the in-flight limit, the body limit); it calls svc
	// directly, authenticated by its own scope (docs/scim.md).
	public := withSCIM(gw, newSCIMHandler(svc, authn, cfg))
	httpSrv, adminSrv := httpServers(cfg, log, tp, metrics, limiter, checker, public)
	if tlsSrc != nil {
		httpSrv.TLSConfig = tlsSrc.HTTPConfig()
	}

	return runServers(ctx, hard, cfg, log, checker, grpcSrv, httpSrv, adminSrv, api.Drain, stopJobs)
}

// newSCIMHandler is the SCIM service of svc: authenticated by bearer JWTs
// with the scim scope, or, with --auth=none, not at all (as the rest of
// the API in that mode).
func newSCIMHandler(svc *users.Service, authn *auth.Authenticator, cfg config) http.Handler {
	var scimAuthn scim.Authenticator // nil: --auth=none
	if authn.Mode() == auth.ModeJWT {
		scimAuthn = auth.NewSCIMAuthenticator(authn)
	}
	h := scim.NewHandler(svc, scimAuthn, scim.Options{MaxBodyBytes: cfg.MaxBodyBytes})
	if cfg.RequestTimeout <= 0 {
		return h
	}
	// The API's default deadline (--request-timeout) bounds SCIM's
	// requests too: their service calls then end as a 503.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), cfg.RequestTimeout)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// withSCIM returns the public handler: SCIM under scim.Prefix, the gateway
// for everything else, which reaches it as it came (no ServeMux's path
// cleaning or redirects in front of the gateway).
func withSCIM(gw, scimHandler http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, scim.Prefix+"/") {
			scimHandler.ServeHTTP(w, r)
			return
		}
		gw.ServeHTTP(w, r)
	})
}

// untraced reports the methods whose calls have no span: health checks
// and reflection.
func untraced(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") || strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// newGRPCServer returns the gRPC server of the two API versions (v2's
// users, tenants and groups), health and reflection, with the interceptors
// given, traced through tp, over TLS when tlsSrc is set.
func newGRPCServer(cfg config, tp trace.TracerProvider, tlsSrc *certs.Source, checker *health.Checker, interceptors []grpc.UnaryServerInterceptor, stream grpc.StreamServerInterceptor, api usersv1.UserServiceServer, apiV2 usersv2.UserServiceServer, tenants usersv2.TenantServiceServer, groups usersv2.GroupServiceServer) *grpc.Server {
	spanUnary, spanStream := telemetry.GRPCSpans(tp, untraced)
	grpcOpts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: false}),
		grpc.KeepaliveParams(keepaliveParams(cfg)),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{spanUnary}, interceptors...)...),
		grpc.ChainStreamInterceptor(spanStream, stream),
		grpc.NumStreamWorkers(streamWorkers()),
	}
	if tlsSrc != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(tlsSrc.GRPCCredentials()))
	}
	grpcSrv := grpc.NewServer(grpcOpts...)
	usersv1.RegisterUserServiceServer(grpcSrv, api)
	usersv2.RegisterUserServiceServer(grpcSrv, apiV2)
	usersv2.RegisterTenantServiceServer(grpcSrv, tenants)
	usersv2.RegisterGroupServiceServer(grpcSrv, groups)
	healthpb.RegisterHealthServer(grpcSrv, health.NewGRPCServer(checker,
		usersv1.UserService_ServiceDesc.ServiceName, usersv2.UserService_ServiceDesc.ServiceName,
		usersv2.TenantService_ServiceDesc.ServiceName, usersv2.GroupService_ServiceDesc.ServiceName))
	reflection.Register(grpcSrv)
	return grpcSrv
}

// runServers serves on the listeners of cfg until ctx ends, then runs the
// shutdown sequence.
func runServers(ctx, hard context.Context, cfg config, log zerolog.Logger, checker *health.Checker, grpcSrv *grpc.Server, httpSrv, adminSrv *http.Server, drainStreams func(), stopJobs func(context.Context) error) error {
	lis, err := listen(ctx, log, [2]string{"grpc", cfg.GRPCAddr}, [2]string{"http", cfg.HTTPAddr}, [2]string{"admin", cfg.AdminAddr})
	if err != nil {
		return err
	}
	grpcLis, httpLis, adminLis := lis[0], lis[1], lis[2]

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(httpSrv, httpLis) })
	g.Go(func() error { return serveHTTP(adminSrv, adminLis) })
	g.Go(func() error {
		// A shutdown that stops the server before Serve began makes Serve
		// return ErrServerStopped: not a failure.
		if err := grpcSrv.Serve(grpcLis); !errors.Is(err, grpc.ErrServerStopped) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		return shutdown(hard, cfg, log, checker, httpSrv, grpcSrv, adminSrv, drainStreams, stopJobs)
	})
	return g.Wait()
}

// streamWorkers is the number of long-lived goroutines the gRPC server runs
// calls on. Without them grpc-go starts a goroutine per call, whose stack
// then grows to what the interceptors, tracing and pgx need, on every call
// (runtime.newstack and copystack were 11% of a gRPC GetUser's CPU in
// docs/performance.md's profile). Calls beyond the workers still get a
// goroutine of their own, so this bounds nothing, and each of them pays the
// growth: with 8 per core, 32 calls in flight on 2 cores ran a third of the
// calls on fresh goroutines and stack copies were 6.5% of the CPU; with 32
// per core they are 0.5%. An idle worker holds its grown stack (tens of KiB).
func streamWorkers() uint32 {
	return uint32(32 * runtime.GOMAXPROCS(0))
}

// newTracing returns the tracer provider of cfg and the function that
// exports the last spans at exit.
func newTracing(ctx context.Context, cfg telemetry.TraceConfig, log zerolog.Logger) (*sdktrace.TracerProvider, func(), error) {
	tp, err := telemetry.NewTracerProvider(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	flush := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn().Err(err).Msg("exporting the last spans")
		}
		log.Info().Msg("traces flushed")
	}
	return tp, flush, nil
}

// httpServers returns the public server of the HTTP/JSON API gw, behind the
// middleware of serve and gateway alike, and the admin server.
func httpServers(cfg config, log zerolog.Logger, tp trace.TracerProvider, metrics *telemetry.Metrics, limiter *overload.Limiter, checker *health.Checker, gw http.Handler) (public, admin *http.Server) {
	// HTTPTelemetry starts the HTTP span, so the access line carries its
	// trace id, and names it after the route the gateway matched.
	h := checker.CloseConnections(telemetry.HTTPTelemetry(log, metrics, tp, limiter.Middleware(gw)))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", health.Livez)
	mux.HandleFunc("GET /readyz", checker.Readyz)
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)

	public = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	if cfg.RequestTimeout <= 0 {
		public.WriteTimeout = 0
	}
	admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	// The servers' own complaints (TLS handshakes that fail, malformed
	// requests) go to the process's log, in its format.
	errLog := stdlog.New(log.With().Str("component", "http").Logger(), "", 0)
	public.ErrorLog, admin.ErrorLog = errLog, errLog
	return public, admin
}

// listen opens a listener on each {name, address} and logs its address;
// on an error it closes those it opened.
func listen(ctx context.Context, log zerolog.Logger, addrs ...[2]string) ([]net.Listener, error) {
	lc := net.ListenConfig{}
	lis := make([]net.Listener, len(addrs))
	for i, a := range addrs {
		var err error
		if lis[i], err = lc.Listen(ctx, "tcp", a[1]); err != nil {
			for _, prev := range lis[:i] {
				prev.Close()
			}
			return nil, fmt.Errorf("%s listener: %w", a[0], err)
		}
		log.Info().Str("server", a[0]).Str("addr", lis[i].Addr().String()).Msg("listening")
	}
	return lis, nil
}

// keepaliveParams are the gRPC server's connection lifetimes. Connections
// end after the max connection age (with a GOAWAY, which clients follow by
// reconnecting, re-resolving the replicas), so long-lived clients rebalance.
// Calls still running then get the grace, capped at the shutdown timeout:
// a shutdown would not wait longer for them either.
func keepaliveParams(cfg config) keepalive.ServerParameters {
	p := keepalive.ServerParameters{
		MaxConnectionIdle: 5 * time.Minute,
		Time:              time.Minute,
		Timeout:           20 * time.Second,
	}
	if cfg.GRPCMaxConnectionAge > 0 {
		p.MaxConnectionAge = cfg.GRPCMaxConnectionAge
		// Zero would mean no bound at all.
		p.MaxConnectionAgeGrace = max(min(cfg.GRPCMaxConnectionAgeGrace, cfg.ShutdownTimeout), time.Millisecond)
	}
	return p
}

// shutdown runs the shutdown sequence: readiness off while still serving for
// the shutdown delay, then drain HTTP, then stop gRPC gracefully, then the
// admin endpoints, then the job workers; all within the shutdown timeout
// after the delay. Long-lived streams (health Watch, WatchUserEvents) are
// ended first, or GracefulStop would wait for them. The gateway command
// has no gRPC server and no jobs: grpcSrv, drainStreams and stopJobs are
// nil. A hard
// context that ends (a second signal) skips what is left of the delay and
// cuts the drain off.
func shutdown(hard context.Context, cfg config, log zerolog.Logger, checker *health.Checker, httpSrv *http.Server, grpcSrv *grpc.Server, adminSrv *http.Server, drainStreams func(), stopJobs func(context.Context) error) error {
	start := time.Now()
	checker.ShutDown() // also makes the public handler close connections after each response
	log.Info().Dur("delay", cfg.ShutdownDelay).Msg("shutdown: not ready, still serving")
	select {
	case <-time.After(cfg.ShutdownDelay):
	case <-hard.Done():
	}

	checker.Drain() // health Watch streams end now, before gRPC drains
	if drainStreams != nil {
		drainStreams() // WatchUserEvents streams end too; clients resume from their cursor
	}
	drainStart := time.Now()
	dctx, cancel := context.WithTimeout(hard, cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := httpSrv.Shutdown(dctx); err != nil {
		errs = append(errs, fmt.Errorf("draining HTTP: %w", err))
		httpSrv.Close()
	}
	log.Info().Dur("took", time.Since(drainStart)).Msg("shutdown: HTTP drained")
	if grpcSrv != nil {
		if !gracefulStop(dctx, grpcSrv) {
			errs = append(errs, errors.New("draining gRPC: timed out; calls cut off"))
		}
		log.Info().Dur("took", time.Since(drainStart)).Msg("shutdown: gRPC stopped")
	}
	if err := adminSrv.Shutdown(dctx); err != nil {
		adminSrv.Close()
	}
	if stopJobs != nil {
		// Running jobs get what is left of the timeout; then they are
		// cancelled and go back to the queue.
		if err := stopJobs(dctx); err != nil {
			errs = append(errs, err)
		}
	}
	if hard.Err() != nil {
		errs = append(errs, errors.New("shutdown cut short by a second signal"))
	}
	log.Info().Dur("drain", time.Since(drainStart)).Dur("total", time.Since(start)).Msg("shutdown: servers stopped")
	return errors.Join(errs...)
}

// serveHTTP serves until Shutdown, which is not an error; over TLS when
// srv has a TLS config.
func serveHTTP(srv *http.Server, lis net.Listener) error {
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(lis, "", "")
	} else {
		err = srv.Serve(lis)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// gracefulStop lets in-flight RPCs finish until ctx ends, then cuts them
// off. It reports whether every RPC finished.
func gracefulStop(ctx context.Context, srv *grpc.Server) bool {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		srv.Stop()
		<-done
		return false
	}
}
