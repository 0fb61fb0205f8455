// Command bareusers is the ceiling the benchmark harness compares usersd
// with: GetUser, CreateUser, ListUsers (first page) and BatchGetUsers of
// users.v1, served by a bare net/http handler and a bare grpc-go server
// over pgx (Postgres) or database/sql with modernc.org/sqlite (SQLite).
//
// It runs the same SQL as usersd's stores and writes the same encodings:
// protojson with EmitUnpopulated over HTTP, as usersd's gateway does, and
// protobuf over gRPC, with the same ETag and Location headers and the same
// page token. It has nothing else: no middleware, no interceptors, no
// validation, no logging, metrics or tracing, no domain layer, no in-flight
// limit. Malformed input gets a plain error, since the harness sends none.
//
//	bareusers --database-url URL --http-addr 127.0.0.1:8081 --grpc-addr 127.0.0.1:9091
//
// GET /readyz answers 200 once both servers listen. SIGINT or SIGTERM
// stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

func main() {
	if err := run(context.Background(), os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bareusers:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet("bareusers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://…")
	httpAddr := fs.String("http-addr", "127.0.0.1:8081", "`address` of the HTTP/JSON API")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:9093", "`address` of the gRPC API")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}

	var (
		db  store
		err error
	)
	switch {
	case strings.HasPrefix(*dbURL, "sqlite:"):
		db, err = openSQLite(ctx, strings.TrimPrefix(*dbURL, "sqlite:"))
	case strings.HasPrefix(*dbURL, "postgres://"), strings.HasPrefix(*dbURL, "postgresql://"):
		db, err = openPostgres(ctx, *dbURL)
	default:
		err = fmt.Errorf("--database-url %q: want sqlite:PATH or postgres://…", *dbURL)
	}
	if err != nil {
		return err
	}
	defer db.close()

	var lc net.ListenConfig
	httpLis, err := lc.Listen(ctx, "tcp", *httpAddr)
	if err != nil {
		return err
	}
	grpcLis, err := lc.Listen(ctx, "tcp", *grpcAddr)
	if err != nil {
		httpLis.Close()
		return err
	}
	httpSrv := &http.Server{Handler: newHandler(db), ReadHeaderTimeout: 10 * time.Second}
	grpcSrv := grpc.NewServer()
	usersv1.RegisterUserServiceServer(grpcSrv, &grpcServer{db: db})
	reflection.Register(grpcSrv) // ghz finds the methods by reflection, as on usersd
	fmt.Fprintf(stdout, "listening http=%s grpc=%s\n", httpLis.Addr(), grpcLis.Addr())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := httpSrv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error { return grpcSrv.Serve(grpcLis) })
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := httpSrv.Shutdown(sctx)
		grpcSrv.Stop()
		return err
	})
	return g.Wait()
}
