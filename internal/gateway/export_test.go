package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// token returns an Authorization value with the scope, bound to the
// tenant unless it is "".
func (g *authGateway) token(t *testing.T, tenant string, scopes ...string) string {
	t.Helper()
	c := authtest.Claims{Subject: uuid.NewString(), Scopes: scopes}
	if tenant != "" {
		c.Extra = map[string]any{auth.DefaultTenantClaim: tenant}
	}
	return "Bearer " + g.ec.Token(t, c)
}

// ndjson returns the JSON objects of the lines of an export's body,
// gunzipped when it is gzip-encoded, and fails unless every line is one.
func ndjson(t *testing.T, header http.Header, body []byte) []map[string]any {
	t.Helper()
	if header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gunzip: %v", err)
		}
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not a JSON object: %v: %q", len(out)+1, err, sc.Text())
		}
		out = append(out, m)
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		t.Errorf("the body does not end with a newline: %q", body[max(0, len(body)-40):])
	}
	return out
}

// listAll returns the users of a tenant's list (deleted ones too when
// showDeleted), as JSON objects, through every page.
func listAll(t *testing.T, h http.Handler, path, authz string) []map[string]any {
	t.Helper()
	var out []map[string]any
	token := ""
	for {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		w := callAuth(t, h, "GET", path+sep+"pageSize=7&pageToken="+url.QueryEscape(token), "", authz)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, w.Code, w.Body)
		}
		var page struct {
			Users         []map[string]any
			NextPageToken string
		}
		if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Users...)
		if token = page.NextPageToken; token == "" {
			return out
		}
	}
}

// TestExportHTTP exports a tenant's users as NDJSON, plain and gzipped,
// with and without a filter and the deleted users, and checks that each
// line is the user as the API's other answers have it (ListUsers', by
// create time), and that each user is there once.
func TestExportHTTP(t *testing.T) {
	g := newAuthGateway(t, grpcserver.ChainConfig{})
	platform := g.token(t, "", auth.ScopeTenantsAdmin)
	for _, id := range []string{"acme", "globex"} {
		if w := callAuth(t, g.h, "POST", "/v2/tenants?tenantId="+id, `{"displayName":"`+id+`"}`, platform); w.Code != http.StatusCreated {
			t.Fatalf("create tenant %s = %d %s", id, w.Code, w.Body)
		}
	}
	acme := g.token(t, "acme", auth.ScopeAdmin)
	var deleted string
	for i := range 25 {
		state := "STATE_ACTIVE"
		if i%4 == 1 {
			state = "STATE_SUSPENDED"
		}
		body := fmt.Sprintf(`{"email":"u%d@example.com","displayName":"User %d","state":%q,"labels":{"n":"%d"},"givenName":"G%d"}`, i, i, state, i, i)
		w := callAuth(t, g.h, "POST", "/v2/tenants/acme/users", body, acme)
		if w.Code != http.StatusCreated {
			t.Fatalf("create user = %d %s", w.Code, w.Body)
		}
		if i == 3 {
			deleted = decode(t, w)["name"].(string)
		}
		// The same address in globex and in the default tenant.
		callAuth(t, g.h, "POST", "/v2/tenants/globex/users", body, platform)
		callAuth(t, g.h, "POST", "/v2/users", body, platform)
	}
	if w := callAuth(t, g.h, "DELETE", "/v2/"+deleted, "", acme); w.Code != http.StatusOK {
		t.Fatalf("delete = %d %s", w.Code, w.Body)
	}

	for _, tc := range []struct {
		name, query, listQuery string
		want                   int
	}{
		{"all", "", "", 24},
		{"show deleted", "?showDeleted=true", "?showDeleted=true", 25},
		{"show_deleted", "?show_deleted=true", "?showDeleted=true", 25},
		{"filter", "?filter=" + url.QueryEscape(`state = "SUSPENDED"`), "?filter=" + url.QueryEscape(`state = "SUSPENDED"`), 6},
		{"filter and deleted", "?showDeleted=true&filter=" + url.QueryEscape(`given_name = "G3"`), "?showDeleted=true&filter=" + url.QueryEscape(`given_name = "G3"`), 1},
	} {
		want := listAll(t, g.h, "/v2/tenants/acme/users"+tc.listQuery, acme)
		if len(want) != tc.want {
			t.Fatalf("%s: the list has %d users, want %d", tc.name, len(want), tc.want)
		}
		for _, enc := range []string{"", "gzip", "br;q=1, gzip;q=0.5", "*"} {
			w := call(t, g.h, "GET", "/v2/tenants/acme/users:export"+tc.query, "", "Authorization", acme, "Accept-Encoding", enc)
			if w.Code != http.StatusOK {
				t.Fatalf("%s, Accept-Encoding %q: %d %s", tc.name, enc, w.Code, w.Body)
			}
			h := w.Header()
			if ct := h.Get("Content-Type"); ct != gateway.ContentTypeNDJSON {
				t.Errorf("Content-Type %q, want %s", ct, gateway.ContentTypeNDJSON)
			}
			if ce := h.Get("Content-Encoding"); (enc != "") != (ce == "gzip") {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q", enc, ce)
			}
			if !slices.Contains(h.Values("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %v, want Accept-Encoding", h.Values("Vary"))
			}
			got := ndjson(t, h, w.Body.Bytes())
			if len(got) != len(want) {
				t.Fatalf("%s, Accept-Encoding %q: %d lines, want %d", tc.name, enc, len(got), len(want))
			}
			for i := range want {
				// The list's order is the export's; the etag and the
				// rest the same.
				if a, b := fmt.Sprint(want[i]), fmt.Sprint(got[i]); a != b {
					t.Errorf("%s: line %d = %s, want %s", tc.name, i+1, b, a)
				}
			}
			// Every field, unset ones too, as in the other answers.
			if _, ok := got[0]["deleteTime"]; !ok {
				t.Errorf("line 1 has no deleteTime: %v", got[0])
			}
		}
	}

	// The default tenant's route.
	w := call(t, g.h, "GET", "/v2/users:export", "", "Authorization", platform)
	if got := ndjson(t, w.Header(), w.Body.Bytes()); w.Code != http.StatusOK || len(got) != 25 ||
		!strings.HasPrefix(got[0]["name"].(string), "tenants/default/users/") {
		t.Errorf("GET /v2/users:export = %d, %d lines; want 200 and the default tenant's 25 users", w.Code, len(got))
	}
	// A filter that matches nobody: an empty body.
	w = call(t, g.h, "GET", "/v2/tenants/acme/users:export?filter="+url.QueryEscape(`email = "nobody@example.com"`), "",
		"Authorization", acme, "Accept-Encoding", "gzip")
	if got := ndjson(t, w.Header(), w.Body.Bytes()); w.Code != http.StatusOK || len(got) != 0 {
		t.Errorf("export of nobody = %d, %d lines; want 200 and none", w.Code, len(got))
	}
}

// TestExportHTTPErrors: what fails before the first user is the API's
// usual error, with its status.
func TestExportHTTPErrors(t *testing.T) {
	g := newAuthGateway(t, grpcserver.ChainConfig{})
	platform := g.token(t, "", auth.ScopeTenantsAdmin)
	for _, id := range []string{"acme", "globex"} {
		callAuth(t, g.h, "POST", "/v2/tenants?tenantId="+id, `{"displayName":"`+id+`"}`, platform)
	}
	callAuth(t, g.h, "POST", "/v2/tenants/globex/users", `{"email":"secret@example.com","displayName":"Secret"}`, platform)
	acme := g.token(t, "acme", auth.ScopeAdmin)
	for _, tc := range []struct {
		name, method, path, authz string
		status                    int
		code                      codes.Code
	}{
		{"another tenant's", "GET", "/v2/tenants/globex/users:export", acme, 404, codes.NotFound},
		{"no such tenant", "GET", "/v2/tenants/initech/users:export", acme, 404, codes.NotFound},
		{"no such tenant, platform", "GET", "/v2/tenants/initech/users:export", platform, 404, codes.NotFound},
		{"the default tenant, bound to acme", "GET", "/v2/users:export", acme, 404, codes.NotFound},
		{"bad filter", "GET", "/v2/tenants/acme/users:export?filter=" + url.QueryEscape(`nope = 1`), acme, 400, codes.InvalidArgument},
		{"bad showDeleted", "GET", "/v2/tenants/acme/users:export?showDeleted=maybe", acme, 400, codes.InvalidArgument},
		{"bad tenant id", "GET", "/v2/tenants/Acme_1/users:export", acme, 400, codes.InvalidArgument},
		{"every tenant", "GET", "/v2/tenants/-/users:export", platform, 400, codes.InvalidArgument},
		{"no token", "GET", "/v2/tenants/acme/users:export", "", 401, codes.Unauthenticated},
		{"users.read", "GET", "/v2/tenants/acme/users:export", g.token(t, "acme", auth.ScopeRead, auth.ScopeWrite), 403, codes.PermissionDenied},
		{"POST", "POST", "/v2/tenants/acme/users:export", acme, 405, codes.Unimplemented},
	} {
		w := callAuth(t, g.h, tc.method, tc.path, "", tc.authz)
		body := decode(t, w)
		if w.Code != tc.status || body["code"] != float64(tc.code) {
			t.Errorf("%s: %s %s = %d %v; want %d with code %v", tc.name, tc.method, tc.path, w.Code, body, tc.status, tc.code)
		}
		if strings.Contains(w.Body.String(), "secret") {
			t.Errorf("%s: the answer shows globex's user: %s", tc.name, w.Body)
		}
		switch tc.status {
		case 401, 403:
			if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", tc.name, w.Header().Get("WWW-Authenticate"))
			}
		case 405:
			if w.Header().Get("Allow") != "GET" {
				t.Errorf("%s: Allow %q, want GET", tc.name, w.Header().Get("Allow"))
			}
		}
		if w.Header().Get("Content-Type") == gateway.ContentTypeNDJSON {
			t.Errorf("%s: an error answered as NDJSON", tc.name)
		}
	}
	// Another tenant's export and that of a tenant that does not exist
	// answer the same.
	a := callAuth(t, g.h, "GET", "/v2/tenants/globex/users:export", "", acme).Body.String()
	b := callAuth(t, g.h, "GET", "/v2/tenants/initech/users:export", "", acme).Body.String()
	if a != b {
		t.Errorf("another tenant's export answers %s, a missing tenant's %s; want the same", a, b)
	}
}

// fakeExport is a UserService whose ExportUsers sends n users, waiting
// pause before each, then fails with err (or ends, when err is nil).
type fakeExport struct {
	usersv2.UnimplementedUserServiceServer
	n     int
	pause time.Duration
	err   error
	ended chan error // what the handler returned
}

func (f *fakeExport) ExportUsers(req *usersv2.ExportUsersRequest, stream grpc.ServerStreamingServer[usersv2.User]) error {
	err := func() error {
		for i := range f.n {
			if f.pause > 0 {
				select {
				case <-time.After(f.pause):
				case <-stream.Context().Done():
					return status.FromContextError(stream.Context().Err()).Err()
				}
			}
			u := &usersv2.User{Name: fmt.Sprintf("tenants/acme/users/%08d-0000-7000-8000-000000000000", i), Email: fmt.Sprintf("u%d@example.com", i),
				DisplayName: strings.Repeat("x", 200), CreateTime: timestamppb.Now()}
			if err := stream.Send(u); err != nil {
				return err
			}
		}
		return f.err
	}()
	f.ended <- err
	return err
}

// fakeGateway serves the gateway over a real HTTP/1.1 server (with its
// WriteTimeout) in front of f, through the in-process channel.
func fakeGateway(t *testing.T, f *fakeExport, writeTimeout time.Duration) *httptest.Server {
	t.Helper()
	f.ended = make(chan error, 1)
	ch := inproc.New(nil)
	usersv2.RegisterUserServiceServer(ch, f)
	h, err := gateway.NewHandler(context.Background(), ch, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = writeTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestExportHTTPCutOff: a failure after the first user cannot change the
// status; the response is cut off, so that the client cannot take the
// users it got for the whole export, plain or gzipped.
func TestExportHTTPCutOff(t *testing.T) {
	for _, enc := range []string{"identity", "gzip"} {
		f := &fakeExport{n: 3000, err: status.Error(codes.Unavailable, "the database went away")}
		srv := fakeGateway(t, f, 0)
		req, _ := http.NewRequest("GET", srv.URL+"/v2/tenants/acme/users:export", nil)
		req.Header.Set("Accept-Encoding", enc)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = res.Body
		if enc == "gzip" {
			if body, err = gzip.NewReader(res.Body); err != nil {
				t.Fatal(err)
			}
		}
		n, err := io.Copy(io.Discard, body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: %d, %d bytes then %v; want 200 and an unexpected EOF", enc, res.StatusCode, n, err)
		}
		if err := <-f.ended; status.Code(err) != codes.Unavailable {
			t.Errorf("the handler returned %v", err)
		}
	}
}

// TestExportHTTPLongerThanWriteTimeout: an export that goes on longer than
// the server's WriteTimeout is not cut off while it makes progress; the
// timeout bounds each write.
func TestExportHTTPLongerThanWriteTimeout(t *testing.T) {
	f := &fakeExport{n: 12, pause: 50 * time.Millisecond}
	srv := fakeGateway(t, f, 250*time.Millisecond)
	res, err := srv.Client().Get(srv.URL + "/v2/users:export")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if lines := bytes.Count(body, []byte("\n")); err != nil || lines != f.n {
		t.Errorf("export of %d users over %v with a 250ms WriteTimeout: %d lines, %v", f.n, time.Duration(f.n)*f.pause, lines, err)
	}
	if err := <-f.ended; err != nil {
		t.Errorf("the handler returned %v", err)
	}
}

// TestExportHTTPClientGone: a client that goes away ends the call, which
// is over (its handler returned) when the request's handler returns.
func TestExportHTTPClientGone(t *testing.T) {
	f := &fakeExport{n: 1 << 30}
	srv := fakeGateway(t, f, 0)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v2/users:export", nil)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(res.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	res.Body.Close()
	select {
	case err := <-f.ended:
		if c := status.Code(err); c != codes.Canceled {
			t.Errorf("the handler returned %v, want CANCELED", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the export went on after its client left")
	}
}

// exportGateway returns the gateway on a SQLite store of n users (by
// imports of 1000 rows), through the in-process channel and the unary
// chain, as serve.go has it.
func exportGateway(tb testing.TB, n int) http.Handler {
	tb.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "users.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		tb.Fatal(err)
	}
	store := sqlite.NewStore(db, sqlite.WithJobs(&userstest.Queue[*sql.Tx]{}))
	for i := 0; i*1000 < n; i++ {
		op, chunks := userstest.NewImport(fmt.Sprint("seed-", i), min(1000, n-i*1000))
		if _, err := store.CreateImport(ctx, op, users.IdempotencyKey{RequestID: op.RequestID}, chunks); err != nil {
			tb.Fatal(err)
		}
		if err := store.ImportChunk(ctx, op.ID, 0, userstest.ImportedUsers(chunks[0]), nil); err != nil {
			tb.Fatal(err)
		}
	}
	svc := users.NewService(store, users.Config{})
	ch := inproc.New(grpcserver.Chain(grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop()})...))
	usersv2.RegisterUserServiceServer(ch, grpcserver.NewV2(svc))
	h, err := gateway.NewHandler(ctx, ch, gateway.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// heapWriter is a ResponseWriter that counts the lines of the body and
// measures the live heap (after a collection) every sampleEvery bytes.
type heapWriter struct {
	header         http.Header
	status         int
	bytes, sampled int
	lines          int
	sampleEvery    int
	peak           uint64
}

func (w *heapWriter) Header() http.Header { return w.header }
func (w *heapWriter) WriteHeader(s int)   { w.status = s }
func (w *heapWriter) Write(p []byte) (int, error) {
	w.bytes += len(p)
	w.lines += bytes.Count(p, []byte("\n"))
	if w.bytes-w.sampled >= w.sampleEvery {
		w.sampled = w.bytes
		w.peak = max(w.peak, liveHeap())
	}
	return len(p), nil
}

func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestExportHTTPMemory exports 20,000 users through the whole HTTP path
// (store, service, gRPC handler, in-process stream, JSON): the live heap
// measured every 512 KiB of body stays within 4 MiB of what it was before,
// however many users go by (they take 9 MiB of JSON).
func TestExportHTTPMemory(t *testing.T) {
	n := 20_000
	if testing.Short() {
		t.Skip("seeds 20,000 users")
	}
	if userstest.RaceEnabled {
		n = 2000
	}
	h := exportGateway(t, n)
	before := liveHeap()
	w := &heapWriter{header: http.Header{}, sampleEvery: 512 << 10}
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v2/users:export", nil))
	if w.status != http.StatusOK || w.lines != n {
		t.Fatalf("export = %d, %d lines; want 200 and %d", w.status, w.lines, n)
	}
	growth := int64(w.peak) - int64(before)
	t.Logf("%d users, %.1f MiB of NDJSON; live heap %.1f MiB before, at most %.1f MiB during (%+.2f MiB)",
		n, float64(w.bytes)/(1<<20), float64(before)/(1<<20), float64(w.peak)/(1<<20), float64(growth)/(1<<20))
	if growth > 4<<20 && !userstest.RaceEnabled {
		t.Errorf("live heap grew %d bytes during the export, want at most 4 MiB", growth)
	}
}

// BenchmarkExportHTTP exports 20,000 users of a SQLite store through the
// gateway's in-process channel and the unary chain, as NDJSON, plain and
// gzipped: users/s, and the bytes of the body per user.
func BenchmarkExportHTTP(b *testing.B) {
	const n = 20_000
	h := exportGateway(b, n)
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			var size int
			for b.Loop() {
				req := httptest.NewRequest("GET", "/v2/users:export", nil)
				req.Header.Set("Accept-Encoding", enc)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatal(w.Code, w.Body)
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
			b.ReportMetric(float64(size)/n, "body-B/user")
		})
	}
}
