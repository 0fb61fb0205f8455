package grpcserver_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// openSQLite returns an empty SQLite store with a job queue.
func openSQLite(tb testing.TB) users.Store {
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
}

// openPostgres returns an empty Postgres store with a job queue, or skips
// without a test server.
func openPostgres(tb testing.TB) users.Store {
	pool, err := pgxpool.New(context.Background(), pgtest.NewMigratedDatabase(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return postgres.NewStore(pool, postgres.WithJobs(&userstest.Queue[pgx.Tx]{}))
}

// BenchmarkExportUsersStream exports 20,000 users with full profiles
// (userstest.ProfileUser) of each store over gRPC on 127.0.0.1, as a
// client of usersd does: the server's stream interceptor (JWT
// authentication), ExportUsers, the wire in both directions, the client's
// decoding of each message. It reports users/s.
func BenchmarkExportUsersStream(b *testing.B) {
	const (
		n      = 20_000
		tenant = "profiles"
	)
	for _, st := range []struct {
		name string
		open func(testing.TB) users.Store
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
			userstest.SeedProfiles(b, store.(userstest.ImportStore), tenant, n)
			key := authtest.NewKey(b, jose.ES256)
			jwks := filepath.Join(b.TempDir(), "jwks.json")
			authtest.WriteJWKS(b, jwks, key)
			a, err := auth.New(context.Background(), auth.Config{Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience, JWKS: jwks})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(a.Close)
			ics := grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop(), Auth: a.UnaryInterceptor()})
			srv := grpc.NewServer(grpc.ChainUnaryInterceptor(ics...), grpc.ChainStreamInterceptor(a.StreamInterceptor()))
			usersv2.RegisterUserServiceServer(srv, grpcserver.NewV2(users.NewService(store, users.Config{})))
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(lis)
			b.Cleanup(srv.Stop)
			conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { conn.Close() })
			client := usersv2.NewUserServiceClient(conn)
			token := key.Token(b, authtest.Claims{Subject: "exporter", Scopes: []string{auth.ScopeAdmin},
				Extra: map[string]any{auth.DefaultTenantClaim: tenant}})
			ctx := withAuth(context.Background(), "Bearer "+token)

			for b.Loop() {
				stream, err := client.ExportUsers(ctx, &usersv2.ExportUsersRequest{Parent: "tenants/" + tenant})
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for {
					if _, err = stream.Recv(); err != nil {
						break
					}
					got++
				}
				if !errors.Is(err, io.EOF) || got != n {
					b.Fatalf("export = %d users, %v; want %d", got, err, n)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}
