package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/proc"
	"github.com/usersd/usersd/bench/internal/report"
)

// scaleStore is the store of the scale figures: Postgres when measured.
func (h *harness) scaleStore() *store {
	for _, st := range h.stores {
		if st.name == "postgres" {
			return st
		}
	}
	return h.stores[0]
}

// scale takes the scale figures on usersd: GetUser throughput against
// concurrency, latency at 70% of the peak rate, and (Postgres) ListUsers
// pages deep into many users.
func (h *harness) scale(ctx context.Context) error {
	st := h.scaleStore()
	sc := &h.res.Scale
	sc.Store = st.name
	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return err
	}
	defer srv.stop()
	if _, _, _, err := proc.WaitIdle(ctx, h.opt.MinIdle, h.opt.IdleWait); err != nil {
		return err
	}
	h.logf("scale (%s): GetUser throughput against requests in flight %v", st.name, h.opt.Sweep)
	warm, d := 300*time.Millisecond, 2*time.Second
	if h.opt.Quick {
		warm, d = 200*time.Millisecond, 700*time.Millisecond
	}
	peak := map[string]float64{}
	for _, api := range []string{"http", "grpc"} {
		for _, c := range h.opt.Sweep {
			m, err := h.measure(ctx, 0, st, srv, api, "GetUser", c, warm, d)
			if err != nil {
				return err
			}
			sc.Concurrency = append(sc.Concurrency, report.Point{API: api, Call: "GetUser", Concurrency: c,
				RPS: m.RPS, P50ms: msf(m.P50), P99ms: msf(m.P99), CPUPer1k: m.CPUPer1k, Errors: m.Errors})
			peak[api] = max(peak[api], m.RPS)
			h.logf("  %-4s %3d in flight: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms%s", api, c, m.RPS, msf(m.P50), msf(m.P99), errNote(m.Result))
		}
	}
	// The bare ceiling takes the same rate right after usersd, so the
	// report can tell the tail the machine and the load generator cause
	// from the one usersd adds.
	bare, err := h.startServer(ctx, st, report.ServerBare)
	if err != nil {
		return err
	}
	defer bare.stop()
	for _, api := range []string{"http", "grpc"} {
		const fraction = 0.7
		rate := fraction * peak[api]
		// Enough workers that the schedule, not the workers, sets the pace.
		res, err := h.drive(ctx, st, srv, api, "GetUser", 256, h.opt.Duration, rate)
		if err != nil {
			return err
		}
		base, err := h.drive(ctx, st, bare, api, "GetUser", 256, h.opt.Duration, rate)
		if err != nil {
			return err
		}
		sc.OpenLoop = append(sc.OpenLoop, report.OpenLoop{API: api, Call: "GetUser", PeakRPS: peak[api], Fraction: fraction,
			Rate: rate, RPS: res.RPS, P50ms: msf(res.P50), P99ms: msf(res.P99), Errors: res.Errors,
			BareRPS: base.RPS, BareP50ms: msf(base.P50), BareP99ms: msf(base.P99), BareErrors: base.Errors})
		h.logf("  %-4s at %.0f%% of peak (%.0f req/s): p50 %6.2f ms  p99 %6.2f ms%s; bare ceiling p50 %6.2f ms  p99 %6.2f ms%s",
			api, fraction*100, rate, msf(res.P50), msf(res.P99), errNote(res), msf(base.P50), msf(base.P99), errNote(base))
	}
	srv.stop()
	bare.stop()

	if st.name != "postgres" {
		h.res.Notes = append(h.res.Notes, "list pages over many users are measured on Postgres only; it was not measured")
		return nil
	}
	if err := h.grow(ctx, st, h.opt.ScaleUsers); err != nil {
		return err
	}
	if srv, err = h.startServer(ctx, st, report.ServerUsersd); err != nil {
		return err
	}
	defer srv.stop()
	return h.pages(ctx, st, srv)
}

// pageOrders are the order_by values of ListUsers, each measured with a
// filter on state.
var pageOrders = []string{"create_time", "create_time desc", "email", "email desc"}

const pageFilter = `state = "ACTIVE"`

// pages measures ListUsers pages of 50 over gRPC, one call at a time:
// the first page and deep ones, reached by following page tokens (with
// pages of 1,000 on the way, since a token does not depend on the size).
func (h *harness) pages(ctx context.Context, st *store, srv *server) error {
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := usersv1.NewUserServiceClient(conn)
	sc := &h.res.Scale
	sc.Users = st.users
	h.logf("scale (%s): ListUsers pages of 50 over %d users, filter %s, pages %v", st.name, st.users, pageFilter, h.opt.Pages)
	active := st.users * 9 / 10 // one user in ten is suspended
	for _, order := range pageOrders {
		token, at := "", 0
		for _, page := range h.opt.Pages {
			need := (page - 1) * 50
			if need+50 > active {
				continue
			}
			for at < need {
				res, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: int32(min(1000, need-at)), PageToken: token, Filter: pageFilter, OrderBy: order})
				if err != nil {
					return err
				}
				at += len(res.GetUsers())
				if token = res.GetNextPageToken(); token == "" {
					return fmt.Errorf("list %q: ended after %d users", order, at)
				}
			}
			req := &usersv1.ListUsersRequest{PageSize: 50, PageToken: token, Filter: pageFilter, OrderBy: order}
			p, err := h.timePage(func() (int, error) {
				res, err := c.ListUsers(ctx, req)
				return len(res.GetUsers()), err
			})
			if err != nil {
				return err
			}
			p.OrderBy, p.Page = order, page
			sc.Pages = append(sc.Pages, p)
			h.logf("  order_by %-16q page %5d: p50 %6.2f ms  p99 %6.2f ms", order, page, p.P50ms, p.P99ms)
		}
	}
	return nil
}

// timePage calls list, which reads one page and returns its length,
// PageSamples times after five calls that warm the path up, and returns
// the latencies of those calls and the length of the page.
func (h *harness) timePage(list func() (int, error)) (report.PagePoint, error) {
	var (
		lat      []time.Duration
		returned int
	)
	for i := range h.opt.PageSamples + 5 {
		t0 := time.Now()
		n, err := list()
		if err != nil {
			return report.PagePoint{}, err
		}
		if i >= 5 {
			lat = append(lat, time.Since(t0))
		}
		returned = n
	}
	slices.Sort(lat)
	return report.PagePoint{Filter: pageFilter, Samples: len(lat),
		P50ms: msf(load.Percentile(lat, 50)), P99ms: msf(load.Percentile(lat, 99)), Returned: returned}, nil
}
