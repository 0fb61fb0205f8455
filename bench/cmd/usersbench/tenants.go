package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/bench/internal/report"
)

// seedImports is how many tenants' imports the tenant figure runs at once.
const seedImports = 4

// tenantPages takes the tenant figure on every store: opt.ScaleUsers users
// spread evenly over opt.Tenants tenants, and ListUsers pages of 50 in a
// few of them (the first, the last and three between), the first, middle
// and last page of each order, one call at a time.
func (h *harness) tenantPages(ctx context.Context) error {
	for _, st := range h.stores {
		if err := h.tenantPagesOn(ctx, st); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

func (h *harness) tenantPagesOn(ctx context.Context, st *store) error {
	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return err
	}
	defer srv.stop()
	n, per := h.opt.Tenants, h.opt.ScaleUsers/h.opt.Tenants
	fig := report.TenantPages{Store: st.name, Tenants: n, UsersPerTenant: per}
	h.logf("tenants (%s): %d users in each of %d tenants, through POST /v2/tenants/{tenant}/users:import", st.name, per, n)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(seedImports)
	for i := range n {
		g.Go(func() error {
			t := benchTenant(h.nonce, i)
			if err := h.post(gctx, srv, "/v2/tenants?tenantId="+t, `{"displayName":"Bench tenant"}`, http.StatusCreated); err != nil {
				return err
			}
			for first := 0; first < per; first += importSize {
				_, err := h.importUsersAt(gctx, srv, st, "/v2/tenants/"+t+"/users:import", fmt.Sprintf("%s-%d-", t, first), first, min(importSize, per-first))
				if err != nil {
					return fmt.Errorf("tenant %s: %w", t, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	fig.SeedSeconds = time.Since(start).Seconds()
	h.logf("  seeded in %.0f s", fig.SeedSeconds)

	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := usersv2.NewUserServiceClient(conn)
	active := per * 9 / 10 // one user in ten is suspended
	pages := slices.Compact([]int{1, max(1, active/50/2), max(1, active/50)})
	for _, i := range slices.Compact([]int{0, n / 5, n / 2, 4 * n / 5, n - 1}) {
		parent := "tenants/" + benchTenant(h.nonce, i)
		for _, order := range pageOrders {
			token, at := "", 0
			for _, page := range pages {
				for need := (page - 1) * 50; at < need; {
					res, err := c.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: parent, PageSize: int32(min(1000, need-at)), PageToken: token, Filter: pageFilter, OrderBy: order})
					if err != nil {
						return err
					}
					at += len(res.GetUsers())
					if token = res.GetNextPageToken(); token == "" {
						return fmt.Errorf("%s, list %q: ended after %d users", parent, order, at)
					}
				}
				req := &usersv2.ListUsersRequest{Parent: parent, PageSize: 50, PageToken: token, Filter: pageFilter, OrderBy: order}
				p, err := h.timePage(func() (int, error) {
					res, err := c.ListUsers(ctx, req)
					return len(res.GetUsers()), err
				})
				if err != nil {
					return err
				}
				p.Tenant, p.OrderBy, p.Page = parent, order, page
				fig.Pages = append(fig.Pages, p)
			}
		}
	}
	worst := fig.Worst()
	h.logf("  ListUsers over %d tenants × %d pages: worst p50 %.2f ms, worst p99 %.2f ms", len(fig.Pages)/len(pageOrders)/len(pages), len(pages), worst.P50ms, worst.P99ms)
	h.res.TenantPages = append(h.res.TenantPages, fig)
	return nil
}

// benchTenant is the id of the i-th tenant of a run.
func benchTenant(nonce string, i int) string { return fmt.Sprintf("bench-%s-%04d", nonce, i) }

// post sends body to path and wants the status back.
func (h *harness) post(ctx context.Context, srv *server, path, body string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.httpAddr+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("POST %s: status %d, want %d: %s", path, resp.StatusCode, want, b)
	}
	return nil
}
