package gateway_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// profileStores open an empty store of each kind, with a job queue, for
// BenchmarkExportProfiles and TestExportHTTPProfiles; Postgres's skips
// without a test server.
var profileStores = []struct {
	name string
	open func(tb testing.TB) users.Store
}{
	{"sqlite", func(tb testing.TB) users.Store {
		ctx := context.Background()
		db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "users.db"))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		if err := sqlite.Migrate(ctx, db, nil); err != nil {
			tb.Fatal(err)
		}
		return sqlite.NewStore(db, sqlite.WithJobs(&userstest.Queue[*sql.Tx]{}))
	}},
	{"postgres", func(tb testing.TB) users.Store {
		pool, err := pgxpool.New(context.Background(), pgtest.NewMigratedDatabase(tb))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(pool.Close)
		return postgres.NewStore(pool, postgres.WithJobs(&userstest.Queue[pgx.Tx]{}))
	}},
}

// profileTenant is the tenant of BenchmarkExportProfiles and
// TestExportHTTPProfiles.
const profileTenant = "profiles"

// profileGateway returns the gateway on store, through the in-process
// channel and the unary chain with JWT authentication (as serve.go has
// it), and the Authorization of a users.admin token bound to
// profileTenant.
func profileGateway(tb testing.TB, store users.Store) (http.Handler, string) {
	tb.Helper()
	ctx := context.Background()
	key := authtest.NewKey(tb, jose.ES256)
	jwks := filepath.Join(tb.TempDir(), "jwks.json")
	authtest.WriteJWKS(tb, jwks, key)
	a, err := auth.New(ctx, auth.Config{Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience, JWKS: jwks})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.Close)
	svc := users.NewService(store, users.Config{})
	ch := inproc.New(grpcserver.Chain(grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop(), Auth: a.UnaryInterceptor()})...))
	usersv2.RegisterUserServiceServer(ch, grpcserver.NewV2(svc))
	h, err := gateway.NewHandler(ctx, ch, gateway.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return h, "Bearer " + key.Token(tb, authtest.Claims{Subject: "exporter", Scopes: []string{auth.ScopeAdmin},
		Extra: map[string]any{auth.DefaultTenantClaim: profileTenant}})
}

// lineCounter counts the bytes and the lines written to it.
type lineCounter struct{ bytes, lines int }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.bytes += len(p)
	c.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

// BenchmarkExportProfiles exports 20,000 users with full profiles
// (userstest.ProfileUser: every profile field, attributes, labels on half)
// of each store through the whole HTTP path, as a client of usersd does:
// GET /v2/tenants/{tenant}/users:export with a bound users.admin token,
// over HTTP/1.1 on 127.0.0.1, the unary chain with JWT authentication,
// the in-process stream, the NDJSON encoding, plain and gzipped, the
// client reading every line (and gunzipping). It reports users/s and the
// body's bytes per user as sent. usersd runs with GOGC=400 unless GOGC is
// set (cmd/usersd/run.go); set it to measure as usersd runs.
func BenchmarkExportProfiles(b *testing.B) {
	const n = 20_000
	for _, st := range profileStores {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
			userstest.SeedProfiles(b, store.(userstest.ImportStore), profileTenant, n)
			h, authz := profileGateway(b, store)
			srv := httptest.NewServer(h)
			b.Cleanup(srv.Close)
			for _, enc := range []string{"identity", "gzip"} {
				b.Run(enc, func(b *testing.B) {
					var sent int
					for b.Loop() {
						req, err := http.NewRequest("GET", srv.URL+"/v2/tenants/"+profileTenant+"/users:export", nil)
						if err != nil {
							b.Fatal(err)
						}
						req.Header.Set("Authorization", authz)
						req.Header.Set("Accept-Encoding", enc) // set by hand: the transport does not gunzip
						res, err := srv.Client().Do(req)
						if err != nil {
							b.Fatal(err)
						}
						var wire, lines lineCounter
						body := io.TeeReader(res.Body, &wire)
						if res.Header.Get("Content-Encoding") == "gzip" {
							if body, err = gzip.NewReader(body); err != nil {
								b.Fatal(err)
							}
						}
						_, err = io.Copy(&lines, body)
						res.Body.Close()
						if err != nil || res.StatusCode != http.StatusOK || lines.lines != n {
							b.Fatalf("export = %d, %d lines, %v; want 200 and %d", res.StatusCode, lines.lines, err, n)
						}
						sent = wire.bytes
					}
					b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
					b.ReportMetric(float64(sent)/n, "body-B/user")
				})
			}
		})
	}
}
