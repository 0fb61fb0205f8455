package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/bench/internal/report"
)

// importSize is the number of users per import request, the API's largest.
const importSize = 10_000

// seedUser is the i-th user the harness creates: addresses whose order has
// nothing to do with creation order (so lists by email and by create_time
// read different parts of the table), a team label, one in ten suspended.
func seedUser(prefix string, i int) map[string]any {
	h := fnv.New32a()
	fmt.Fprint(h, i)
	u := map[string]any{
		"email":       fmt.Sprintf("%08x.%s%d@bench.example", h.Sum32(), prefix, i),
		"displayName": fmt.Sprintf("Bench User %d", i),
		"labels":      map[string]string{"team": fmt.Sprintf("team-%d", i%8)},
	}
	if i%10 == 9 {
		u["state"] = "STATE_SUSPENDED"
	}
	return u
}

// seed fills st with opt.Users users through the bulk import API, 10,000
// per request, each polled until done (its rate is a figure of the run),
// then picks the ids the load reads.
func (h *harness) seed(ctx context.Context, st *store) error {
	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return err
	}
	defer srv.stop()
	h.logf("seeding %s: %d users through POST /v1/users:import, %d per request", st.name, h.opt.Users, importSize)
	for n := 0; n < h.opt.Users/importSize; n++ {
		imp, err := h.importUsers(ctx, srv, st, fmt.Sprintf("s%d-", n), n*importSize, importSize)
		if err != nil {
			return err
		}
		h.res.Imports = append(h.res.Imports, imp)
		st.users += imp.Users
		h.logf("  import %d: %d users in %s, %.0f users/s", n+1, imp.Users, imp.Elapsed.Round(time.Millisecond), imp.UsersPerSec)
	}
	return h.pickIDs(ctx, srv, st)
}

// importUsers imports n users (at most importSize) into the default
// tenant, through v1, and waits for the operation to be done.
func (h *harness) importUsers(ctx context.Context, srv *server, st *store, prefix string, first, n int) (report.Import, error) {
	return h.importUsersAt(ctx, srv, st, "/v1/users:import", prefix, first, n)
}

// importUsersAt is importUsers through the import call at path.
func (h *harness) importUsersAt(ctx context.Context, srv *server, st *store, path, prefix string, first, n int) (report.Import, error) {
	us := make([]map[string]any, n)
	for i := range us {
		us[i] = seedUser(prefix, first+i)
	}
	return h.importRows(ctx, srv, st, path, "bench-"+h.nonce+"-"+prefix, us, n)
}

// importRows imports the n users of rows (a slice of them, as the import's
// JSON has them) through the import call at path, with the request id,
// and waits for the operation to be done.
func (h *harness) importRows(ctx context.Context, srv *server, st *store, path, requestID string, rows any, n int) (report.Import, error) {
	body, err := json.Marshal(map[string]any{"requestId": requestID, "users": rows})
	if err != nil {
		return report.Import{}, err
	}
	imp := report.Import{Store: st.name, Users: n, Before: st.users}
	start := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+srv.httpAddr+path, bytes.NewReader(body))
	resp, err := h.client.Do(req)
	if err != nil {
		return imp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return imp, fmt.Errorf("import: status %d: %s", resp.StatusCode, b)
	}
	for {
		var op struct {
			Done     bool `json:"done"`
			Metadata struct {
				Imported int `json:"imported"`
				Failed   int `json:"failed"`
			} `json:"metadata"`
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.httpAddr+loc, nil)
		resp, err := h.client.Do(req)
		if err != nil {
			return imp, err
		}
		err = json.NewDecoder(resp.Body).Decode(&op)
		resp.Body.Close()
		if err != nil {
			return imp, fmt.Errorf("operation %s: %w", loc, err)
		}
		if op.Done {
			if op.Metadata.Failed > 0 || op.Metadata.Imported != n {
				return imp, fmt.Errorf("operation %s: %d imported, %d failed", loc, op.Metadata.Imported, op.Metadata.Failed)
			}
			break
		}
		select {
		case <-ctx.Done():
			return imp, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	imp.Elapsed = time.Since(start)
	imp.UsersPerSec = float64(n) / imp.Elapsed.Seconds()
	return imp, nil
}

// pickIDs takes 2,000 ids in email order, which is spread over the
// table: 1,000 for GetUser (and the pgbench scripts) and ten batches of
// 100 for BatchGetUsers.
func (h *harness) pickIDs(ctx context.Context, srv *server, st *store) error {
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	c := usersv1.NewUserServiceClient(conn)
	var ids []string
	token := ""
	for len(ids) < 2000 {
		res, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 1000, OrderBy: "email", PageToken: token})
		if err != nil {
			return err
		}
		for _, u := range res.GetUsers() {
			ids = append(ids, u.GetId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(ids) < 2000 {
		return fmt.Errorf("only %d users stored", len(ids))
	}
	st.ids = ids[:1000]
	st.batches = nil
	for i := 1000; i < 2000; i += 100 {
		st.batches = append(st.batches, ids[i:i+100])
	}
	return nil
}

// grow adds users to the Postgres store with SQL, until it holds n: too
// many to import through the API within the run's time. They have the
// shape of imported users, older create times and v4 ids.
func (h *harness) grow(ctx context.Context, st *store, n int) error {
	add := n - st.users
	if add <= 0 {
		return nil
	}
	h.logf("growing %s to %d users with INSERT … SELECT generate_series", st.name, n)
	start := time.Now()
	conn, err := pgx.Connect(ctx, st.url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	const insert = `INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision)
SELECT 'default', gen_random_uuid(), e, lower(e), 'Scale User ' || i,
       CASE WHEN i % 10 = 9 THEN 'SUSPENDED' ELSE 'ACTIVE' END,
       jsonb_build_object('team', 'team-' || (i % 8)), t, t, NULL, 1
FROM (SELECT i, substr(md5(i::text), 1, 8) || '.scale' || i || '@bench.example' AS e,
             now() - interval '2 days' + i * interval '100 microseconds' AS t
      FROM generate_series($1::int, $2::int) AS i) AS s`
	const batch = 100_000
	for from := 0; from < add; from += batch {
		to := min(from+batch, add) - 1
		if _, err := conn.Exec(ctx, insert, from, to); err != nil {
			return fmt.Errorf("grow: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE users"); err != nil {
		return fmt.Errorf("grow: %w", err)
	}
	st.users = n
	h.logf("  %d users added in %s", add, time.Since(start).Round(time.Millisecond))
	return nil
}
