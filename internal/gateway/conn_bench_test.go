//go:build unix

package gateway_test

// BenchmarkGatewayConn compares the ways the HTTP/JSON gateway can reach the
// gRPC server, end to end: a real HTTP/1.1 client on loopback, the gateway,
// the transport under test, the interceptors, the users service and a real
// store. docs/gateway.md holds the figures and the decision they support.
//
//	go test ./internal/gateway -run '^$' -bench BenchmarkGatewayConn -benchtime=2s -count=5
//
// Modes:
//
//   - tcp: grpc.Server with the production interceptor chain on
//     127.0.0.1:0, gateway on a grpc.NewClient connection to it.
//   - bufconn: the same grpc.Server on an in-memory bufconn listener: no
//     sockets, but still HTTP/2 framing and protobuf marshalling.
//   - inprocgrpc: grpchan's inprocgrpc.Channel with the chain folded by
//     grpcserver.Chain (cmd/usersd/serve.go's choice until the profile of
//     docs/performance.md): no framing, messages are copied with
//     proto.Clone, the handler runs on a goroutine of its own.
//   - inproc: internal/inproc's Conn with the same chain (what
//     cmd/usersd/serve.go does): the handler runs in the caller's
//     goroutine and context; messages are copied with proto.Merge.
//   - direct-nointerceptors: RegisterUserServiceHandlerServer. It calls the
//     server's methods directly and SKIPS THE INTERCEPTORS (no protovalidate,
//     no error mapping), so it is the floor, never a production option. Its
//     mux copies the gateway's options (see directHandler).
//
// The benchmarks use b.RunParallel with SetParallelism(4), so 4×GOMAXPROCS
// requests are in flight. A plain loop keeps one request in flight; each
// request is a chain of goroutine hand-offs (HTTP client, HTTP server,
// gateway, transport, handler, store), so on a small machine ns/op would
// mostly measure scheduling latency with idle CPUs, not what each mode costs.
// With the CPUs kept busy, ns/op is the inverse of the throughput the
// process sustains, which is what the transport choice changes. cpu-ns/op
// (getrusage user+sys of the whole process, divided by b.N) is the CPU cost
// of a request independent of parallelism; it includes the HTTP client,
// which runs in the same process and is the same in every mode.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
)

// seedUsers is how many users each store holds before the benchmarks run.
const seedUsers = 1000

// benchParallelism multiplies GOMAXPROCS into the number of requests in
// flight (see the comment at the top of the file).
const benchParallelism = 4

// connMode is one way for the gateway to reach the API server: handler
// builds the HTTP handler, interceptors says whether calls go through the
// interceptor chain.
type connMode struct {
	name         string
	interceptors bool
	handler      func(b *testing.B, api *grpcserver.Server, ics []grpc.UnaryServerInterceptor) http.Handler
}

var connModes = []connMode{
	{"tcp", true, tcpHandler},
	{"bufconn", true, bufconnHandler},
	{"inprocgrpc", true, inprocgrpcHandler},
	{"inproc", true, inprocHandler},
	{"direct-nointerceptors", false, directHandler},
}

// benchStore is a backend to run the modes on.
type benchStore struct {
	name string
	skip func(b *testing.B) // skips b when the store is not available
	// open returns a new empty store, closed when b ends.
	open func(b *testing.B) users.Store
	// ops are the leaf benchmarks. When they include CreateUser, which
	// grows the table, every mode gets a database of its own, so that
	// creates run on tables of the same size in every mode; otherwise the
	// modes share one database (same data, same caches).
	ops []string
}

// seeded is a store with seedUsers users in it.
type seeded struct {
	store users.Store
	ids   []string
}

func BenchmarkGatewayConn(b *testing.B) {
	stores := []benchStore{
		{"sqlite", nil, openSQLite, []string{"GetUser", "CreateUser"}},
		{"postgres", skipPostgres, openPostgres, []string{"GetUser"}},
	}
	for _, st := range stores {
		b.Run("store="+st.name, func(b *testing.B) {
			if st.skip != nil {
				st.skip(b)
			}
			var shared *seeded
			if !slices.Contains(st.ops, "CreateUser") {
				shared = seed(b, st.open(b))
			}
			for _, m := range connModes {
				b.Run("mode="+m.name, func(b *testing.B) {
					db := shared
					if db == nil {
						db = seed(b, st.open(b))
					}
					env := newBenchEnv(b, db, m)
					for _, op := range st.ops {
						switch op {
						case "GetUser":
							b.Run(op, env.benchGetUser)
						case "CreateUser":
							b.Run(op, env.benchCreateUser)
						}
					}
				})
			}
		})
	}
}

func openSQLite(b *testing.B) users.Store {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		b.Fatal(err)
	}
	return sqlite.NewStore(db)
}

// skipPostgres skips the Postgres variant unless a server is configured,
// even under CI=true, where pgtest would fail instead.
func skipPostgres(b *testing.B) {
	if os.Getenv(pgtest.EnvURL) == "" {
		b.Skip("set " + pgtest.EnvURL + " (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the Postgres variant")
	}
}

func openPostgres(b *testing.B) users.Store {
	// The database is dropped after the cleanups below. The pool is built
	// as cmd/usersd builds it.
	dsn := pgtest.NewMigratedDatabase(b)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return postgres.NewStore(pool)
}

// benchEnv is one mode's gateway, served over loopback HTTP, on a seeded
// store.
type benchEnv struct {
	base   string // http://127.0.0.1:port
	client *http.Client
	ids    []string
}

// seed creates seedUsers users in store.
func seed(b *testing.B, store users.Store) *seeded {
	ctx := context.Background()
	svc := users.NewService(store, users.Config{})
	ids := make([]string, seedUsers)
	for i := range ids {
		u, err := svc.Create(ctx, users.CreateRequest{User: &users.User{
			Email:       fmt.Sprintf("seed-%d@example.com", i),
			DisplayName: fmt.Sprintf("Seed User %d", i),
			Labels:      map[string]string{"team": "bench"},
		}})
		if err != nil {
			b.Fatalf("seeding: %v", err)
		}
		ids[i] = u.ID
	}
	return &seeded{store: store, ids: ids}
}

func newBenchEnv(b *testing.B, db *seeded, m connMode) *benchEnv {
	svc := users.NewService(db.store, users.Config{})
	ics := grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop()})
	srv := httptest.NewUnstartedServer(m.handler(b, grpcserver.New(svc), ics))
	srv.Config.ReadHeaderTimeout = 10 * time.Second // as in serve.go
	srv.Start()
	b.Cleanup(srv.Close)

	tr := &http.Transport{
		// Enough idle connections for every request in flight: each one
		// reuses a kept-alive connection instead of dialling.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     time.Minute,
	}
	b.Cleanup(tr.CloseIdleConnections)
	env := &benchEnv{base: srv.URL, client: &http.Client{Transport: tr}, ids: db.ids}
	env.check(b, m)
	return env
}

// check makes sure the mode serves the API, and that calls go through the
// interceptors exactly when the mode says so: the validation interceptor
// and the error mapping answer a malformed id with 400; without them the
// service's bare error becomes 500.
func (e *benchEnv) check(b *testing.B, m connMode) {
	code, hdr := e.do(b, e.getRequest(0))
	if code != http.StatusOK || hdr.Get("ETag") == "" {
		b.Fatalf("GET /v1/users/{id}: %d, ETag %q", code, hdr.Get("ETag"))
	}
	code, hdr = e.do(b, e.createRequest())
	if code != http.StatusCreated || !strings.HasPrefix(hdr.Get("Location"), "/v1/users/") {
		b.Fatalf("POST /v1/users: %d, Location %q", code, hdr.Get("Location"))
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/v1/users/not-a-uuid", nil)
	code, _ = e.do(b, req)
	if want := http.StatusBadRequest; m.interceptors && code != want {
		b.Fatalf("GET /v1/users/not-a-uuid: %d, want %d: the interceptors did not run", code, want)
	} else if !m.interceptors && code == want {
		b.Fatalf("GET /v1/users/not-a-uuid: %d: mode %s is expected to skip the interceptors", code, m.name)
	}
}

func (e *benchEnv) do(b *testing.B, req *http.Request) (int, http.Header) {
	resp, err := e.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header
}

func (e *benchEnv) getRequest(i uint64) *http.Request {
	req, err := http.NewRequest(http.MethodGet, e.base+"/v1/users/"+e.ids[i%uint64(len(e.ids))], nil)
	if err != nil {
		panic(err)
	}
	return req
}

// createSeq makes every created email address unique within the process.
var createSeq atomic.Uint64

func (e *benchEnv) createRequest() *http.Request {
	n := createSeq.Add(1)
	body := make([]byte, 0, 128)
	body = append(body, `{"email":"bench-`...)
	body = strconv.AppendUint(body, n, 10)
	body = append(body, `@example.com","displayName":"Bench User","labels":{"team":"bench"}}`...)
	req, err := http.NewRequest(http.MethodPost, e.base+"/v1/users", bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func (e *benchEnv) benchGetUser(b *testing.B) {
	var next atomic.Uint64
	e.run(b, http.StatusOK, func() *http.Request { return e.getRequest(next.Add(1)) })
}

func (e *benchEnv) benchCreateUser(b *testing.B) {
	e.run(b, http.StatusCreated, e.createRequest)
}

// run sends b.N requests, benchParallelism×GOMAXPROCS at a time, and
// reports the process's CPU time per request as cpu-ns/op.
func (e *benchEnv) run(b *testing.B, want int, newReq func() *http.Request) {
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	var failed atomic.Bool
	b.ResetTimer()
	cpu0 := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if failed.Load() {
				continue // drain b.N without more requests
			}
			resp, err := e.client.Do(newReq())
			if err != nil {
				if failed.CompareAndSwap(false, true) {
					b.Error(err)
				}
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want && failed.CompareAndSwap(false, true) {
				b.Errorf("%s %s: status %d, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want)
			}
		}
	})
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// processCPU is the user+system CPU time the whole process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func tcpHandler(b *testing.B, api *grpcserver.Server, ics []grpc.UnaryServerInterceptor) http.Handler {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return grpcHandler(b, api, ics, lis, lis.Addr().String())
}

func bufconnHandler(b *testing.B, api *grpcserver.Server, ics []grpc.UnaryServerInterceptor) http.Handler {
	lis := bufconn.Listen(1 << 20)
	return grpcHandler(b, api, ics, lis, "passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
}

// grpcHandler serves api on lis with the interceptors as serve.go does, and
// returns the gateway on a client connection to target.
func grpcHandler(b *testing.B, api *grpcserver.Server, ics []grpc.UnaryServerInterceptor, lis net.Listener, target string, dopts ...grpc.DialOption) http.Handler {
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(ics...))
	usersv1.RegisterUserServiceServer(gs, api)
	go gs.Serve(lis)
	b.Cleanup(gs.Stop)

	conn, err := grpc.NewClient(target, append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return newGateway(b, conn)
}

func inprocgrpcHandler(b *testing.B, api *grpcserver.Server, ics []grpc.UnaryServerInterceptor) http.Handler {
	ch := (&inprocgrpc.Channel{}).WithServerUnaryInterceptor(grpcserver.Chain(ics...))
	usersv1.RegisterUserServiceServer(ch, api)
	return newGateway(b, ch)
}

func inprocHandler(b *testing.B, api *grpcserver.Server, ics []grpc.UnaryServerInterceptor) http.Handler {
	conn := inproc.New(grpcserver.Chain(ics...))
	usersv1.RegisterUserServiceServer(conn, api)
	return newGateway(b, conn)
}

func newGateway(b *testing.B, conn grpc.ClientConnInterface) http.Handler {
	h, err := gateway.NewHandler(context.Background(), conn, gateway.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// directHandler is the floor: the generated server-calling handlers, which
// skip the interceptors. Its mux copies gateway.NewHandler's marshaler,
// header matcher and response option (ETag, 201 and Location); the body
// limit is http.MaxBytesHandler instead of the gateway's limitBody, and the
// error handler is the default one. Those differences cost next to nothing
// on the requests benchmarked here.
func directHandler(b *testing.B, api *grpcserver.Server, _ []grpc.UnaryServerInterceptor) http.Handler {
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithIncomingHeaderMatcher(func(key string) (string, bool) {
			switch k := strings.ToLower(key); k {
			case grpcserver.MDIdempotencyKey, grpcserver.MDIfMatch:
				return k, true
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
		runtime.WithForwardResponseOption(func(ctx context.Context, w http.ResponseWriter, m proto.Message) error {
			u, ok := m.(*usersv1.User)
			if !ok {
				return nil
			}
			w.Header().Set("ETag", `"`+u.GetEtag()+`"`)
			if method, _ := runtime.RPCMethod(ctx); method == usersv1.UserService_CreateUser_FullMethodName {
				w.Header().Set("Location", "/v1/users/"+u.GetId())
				w.WriteHeader(http.StatusCreated)
			}
			return nil
		}),
	)
	if err := usersv1.RegisterUserServiceHandlerServer(context.Background(), mux, api); err != nil {
		b.Fatal(err)
	}
	return http.MaxBytesHandler(mux, gateway.DefaultMaxBodyBytes)
}
