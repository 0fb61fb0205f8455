// Package health answers whether the process is alive and whether it should
// get traffic: /livez and /readyz on the admin address, and grpc.health.v1 on
// the gRPC port, both from the same readiness checks.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// CheckTimeout bounds each readiness check.
const CheckTimeout = time.Second

// Check is one readiness condition; it returns nil when met.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Result is the outcome of one check.
type Result struct {
	Name string
	Err  error
}

// Checker decides readiness: not shutting down, and every check met.
type Checker struct {
	checks   []Check
	stopping atomic.Bool
	draining chan struct{} // closed by Drain
	drainOne sync.Once
	// watchEvery is how often Watch re-evaluates readiness.
	watchEvery time.Duration
}

// NewChecker returns a Checker over the given checks, ready unless one fails.
func NewChecker(checks ...Check) *Checker {
	return &Checker{checks: checks, watchEvery: time.Second, draining: make(chan struct{})}
}

// ShutDown marks the process as shutting down: from now on it is not ready.
func (c *Checker) ShutDown() { c.stopping.Store(true) }

// Drain tells the health service that the servers are about to drain: Watch
// streams, which stay open through the shutdown delay so that clients do not
// reconnect to them in a loop, end now and so never hold up a graceful stop.
func (c *Checker) Drain() {
	c.ShutDown()
	c.drainOne.Do(func() { close(c.draining) })
}

// CloseConnections answers every request with "Connection: close" once the
// process is shutting down, so each keep-alive connection closes cleanly
// after its own response and clients reconnect, to other replicas, for the
// next. (http.Server.SetKeepAlivesEnabled(false) would instead close idle
// connections at once, racing clients that are sending on them.)
func (c *Checker) CloseConnections(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.stopping.Load() {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}

// Ready runs the checks, each within CheckTimeout, and reports whether all
// were met, with every check's result in order.
func (c *Checker) Ready(ctx context.Context) (bool, []Result) {
	ok := true
	res := make([]Result, 0, len(c.checks)+1)
	var stop error
	if c.stopping.Load() {
		stop, ok = errors.New("shutting down"), false
	}
	res = append(res, Result{Name: "shutdown", Err: stop})
	for _, ch := range c.checks {
		cctx, cancel := context.WithTimeout(ctx, CheckTimeout)
		err := ch.Fn(cctx)
		cancel()
		if err != nil {
			ok = false
		}
		res = append(res, Result{Name: ch.Name, Err: err})
	}
	return ok, res
}

// Livez answers 200 while the process can serve HTTP at all; it checks no
// dependency, so a database outage never gets the process restarted.
func Livez(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// Readyz answers 200 when ready and 503 when not; the body lists every
// check, one per line, as "name: ok" or "name: <problem>".
func (c *Checker) Readyz(w http.ResponseWriter, r *http.Request) {
	ok, res := c.Ready(r.Context())
	var b strings.Builder
	for _, x := range res {
		if x.Err != nil {
			fmt.Fprintf(&b, "%s: %v\n", x.Name, x.Err)
		} else {
			fmt.Fprintf(&b, "%s: ok\n", x.Name)
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write([]byte(b.String()))
}

// GRPCServer is grpc.health.v1.Health following the Checker. The overall
// service "" and the names in services are known; others are NOT_FOUND.
type GRPCServer struct {
	healthpb.UnimplementedHealthServer
	checker  *Checker
	services map[string]bool
}

var _ healthpb.HealthServer = (*GRPCServer)(nil)

// NewGRPCServer returns the gRPC health service for c.
func NewGRPCServer(c *Checker, services ...string) *GRPCServer {
	known := map[string]bool{"": true}
	for _, s := range services {
		known[s] = true
	}
	return &GRPCServer{checker: c, services: known}
}

func (s *GRPCServer) status(ctx context.Context) healthpb.HealthCheckResponse_ServingStatus {
	if ok, _ := s.checker.Ready(ctx); ok {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// Check implements grpc.health.v1.Health.
func (s *GRPCServer) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if !s.services[req.GetService()] {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: s.status(ctx)}, nil
}

// Watch implements grpc.health.v1.Health: it sends the status now and on
// every change. When the process shuts down it sends NOT_SERVING and keeps
// the stream open, quiet, until Drain: a stream that ended at once would be
// re-opened at once by gRPC's client health checker, over and over, for the
// whole shutdown delay. At Drain it ends, so it never holds up a graceful
// stop.
func (s *GRPCServer) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	if !s.services[req.GetService()] {
		return stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN})
	}
	ctx := stream.Context()
	last := healthpb.HealthCheckResponse_UNKNOWN
	tick := time.NewTicker(s.checker.watchEvery)
	defer tick.Stop()
	for {
		st := s.status(ctx)
		if st != last {
			if err := stream.Send(&healthpb.HealthCheckResponse{Status: st}); err != nil {
				return err
			}
			last = st
		}
		if s.checker.stopping.Load() {
			if last != healthpb.HealthCheckResponse_NOT_SERVING {
				// The shutdown began after st was computed: go round
				// again at once so that NOT_SERVING is sent before
				// the stream goes quiet.
				continue
			}
			select {
			case <-s.checker.draining:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
