package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// exported is one export over HTTP: its answer and the users of its lines.
type exported struct {
	status int
	header http.Header
	users  []map[string]any
	raw    string
}

// export GETs path (an export route) with the headers and reads its NDJSON
// lines, gunzipping them when the answer is gzip-encoded. The transport's
// own gzip handling is off (Accept-Encoding is set by hand), so the test
// sees what the server sent.
func (s *testServer) export(t *testing.T, path string, header ...string) exported {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+s.HTTP+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	out := exported{status: res.StatusCode, header: res.Header}
	var body io.Reader = res.Body
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			t.Fatalf("GET %s: gzip: %v", path, err)
		}
		body = zr
	}
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(body)
		out.raw = string(raw)
		return out
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var u map[string]any
		if err := json.Unmarshal(sc.Bytes(), &u); err != nil {
			t.Fatalf("GET %s: line %d: %v: %q", path, len(out.users)+1, err, sc.Text())
		}
		out.users = append(out.users, u)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return out
}

// names returns the users' names, checking that each comes once and that
// they are in create time order.
func (e exported) names(t *testing.T) []string {
	t.Helper()
	var (
		out  []string
		last time.Time
	)
	for _, u := range e.users {
		name, _ := u["name"].(string)
		ct, err := time.Parse(time.RFC3339Nano, fmt.Sprint(u["createTime"]))
		if err != nil || ct.Before(last) {
			t.Errorf("%s (created %v, %v) after a user created %s", name, u["createTime"], err, last)
		}
		last = ct
		out = append(out, name)
	}
	sorted := slices.Sorted(slices.Values(out))
	if len(slices.Compact(sorted)) != len(out) {
		t.Errorf("an export has a user more than once: %v", out)
	}
	return out
}

// TestExport creates users in two tenants through the API and exports
// tenant A's, over HTTP (NDJSON, plain and gzip) and gRPC, on both stores:
// each of A's users once, none of B's, by create time; a token bound to A
// exporting B gets 404, as for a tenant that does not exist, over both;
// and the export is a request like the others in the access log.
func TestExport(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testExport(t) })
	t.Run("postgres", func(t *testing.T) {
		testExport(t, "--database-url", pgtest.NewDatabase(t))
	})
}

func testExport(t *testing.T, args ...string) {
	key := authtest.NewKey(t, jose.EdDSA)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, jwks, key)
	s := startServer(t, append([]string{"--auth", "jwt", "--auth-issuer", authtest.Issuer, "--auth-audience", authtest.Audience,
		"--auth-jwks", jwks}, args...)...)
	bearer := func(tenant string, scopes ...string) string {
		c := authtest.Claims{Subject: "svc-" + tenant, Scopes: scopes}
		if tenant != "" {
			c.Extra = map[string]any{"tenant": tenant}
		}
		return "Bearer " + key.Token(t, c)
	}
	platform, aAdmin, bAdmin := bearer("", "tenants.admin"), bearer(isoA, "users.admin"), bearer(isoB, "users.admin")
	as := func(token string) []string { return []string{"Authorization", token} }
	for _, id := range []string{isoA, isoB} {
		s.do(t, "POST", "/v2/tenants?tenantId="+id, `{"displayName":"`+id+`"}`, as(platform)...).wantStatus(t, http.StatusCreated)
	}
	const n = 60
	var aNames, deleted []string
	for i := range n {
		body := fmt.Sprintf(`{"email":"u%02d@example.com","displayName":"User %d","labels":{"i":"%d"}}`, i, i, i)
		aNames = append(aNames, s.do(t, "POST", "/v2/tenants/"+isoA+"/users", body, as(aAdmin)...).wantCreated(t))
		if i%10 == 0 {
			// The same addresses in B.
			s.do(t, "POST", "/v2/tenants/"+isoB+"/users", body, as(bAdmin)...).wantCreated(t)
		}
	}
	for _, name := range []string{aNames[5], aNames[40]} {
		s.do(t, "DELETE", "/v2/"+name, "", as(aAdmin)...).wantStatus(t, http.StatusOK)
		deleted = append(deleted, name)
	}
	live := slices.DeleteFunc(slices.Clone(aNames), func(n string) bool { return slices.Contains(deleted, n) })

	exportA := "/v2/tenants/" + isoA + "/users:export"
	for _, enc := range []string{"identity", "gzip"} {
		e := s.export(t, exportA, append(as(aAdmin), "Accept-Encoding", enc)...)
		if e.status != http.StatusOK || e.header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("GET %s (%s) = %d %s %s", exportA, enc, e.status, e.header.Get("Content-Type"), e.raw)
		}
		if got := e.header.Get("Content-Encoding"); (enc == "gzip") != (got == "gzip") {
			t.Errorf("Accept-Encoding %s: Content-Encoding %q", enc, got)
		}
		if got := e.names(t); !slices.Equal(got, live) {
			t.Errorf("export of %s (%s) = %d users, want its %d live users in order of creation:\n got %v\nwant %v", isoA, enc, len(got), len(live), got, live)
		}
		// Each line is the user as GetUser answers it.
		for _, u := range e.users[:3] {
			got := s.do(t, "GET", "/v2/"+u["name"].(string), "", as(aAdmin)...)
			if fmt.Sprint(got.Body) != fmt.Sprint(u) {
				t.Errorf("export line %v, GetUser %v; want the same", u, got.Body)
			}
		}
	}
	all := s.export(t, exportA+"?showDeleted=true&filter="+url.QueryEscape(`display_name != "nobody"`), append(as(aAdmin), "Accept-Encoding", "gzip")...)
	if got := all.names(t); !slices.Equal(got, aNames) {
		t.Errorf("export with the deleted users = %d users, want %d", len(got), len(aNames))
	}
	if bad := s.export(t, exportA+"?filter="+url.QueryEscape("display_name ~ 1"), as(aAdmin)...); bad.status != http.StatusBadRequest {
		t.Errorf("a bad filter = %d %s, want 400", bad.status, bad.raw)
	}

	// Isolation: A's token on B's export, and on a tenant that does not
	// exist, answer the same 404.
	other := s.export(t, "/v2/tenants/"+isoB+"/users:export", as(aAdmin)...)
	nowhere := s.export(t, "/v2/tenants/"+isoNowhere+"/users:export", as(aAdmin)...)
	if other.status != http.StatusNotFound || other.raw != nowhere.raw || strings.Contains(other.raw, "example.com") {
		t.Errorf("A's token exporting B = %d %s; exporting %s = %d %s; want the same 404", other.status, other.raw, isoNowhere, nowhere.status, nowhere.raw)
	}
	if e := s.export(t, "/v2/tenants/"+isoB+"/users:export", as(bAdmin)...); len(e.users) != n/10 {
		t.Errorf("B's own export = %d %d users, want %d", e.status, len(e.users), n/10)
	}
	if e := s.export(t, exportA); e.status != http.StatusUnauthorized || e.header.Get("WWW-Authenticate") == "" {
		t.Errorf("export without a token = %d %v", e.status, e.header)
	}

	// The same over gRPC.
	client := usersv2.NewUserServiceClient(s.conn)
	grpcExport := func(token, parent string) ([]string, error) {
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", token)
		stream, err := client.ExportUsers(ctx, &usersv2.ExportUsersRequest{Parent: parent})
		if err != nil {
			return nil, err
		}
		var out []string
		for {
			u, err := stream.Recv()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
			out = append(out, u.GetName())
		}
	}
	if got, err := grpcExport(aAdmin, "tenants/"+isoA); err != nil || !slices.Equal(got, live) {
		t.Errorf("gRPC ExportUsers(%s) = %d users, %v; want %d", isoA, len(got), err, len(live))
	}
	for _, parent := range []string{"tenants/" + isoB, "tenants/" + isoNowhere, ""} {
		if got, err := grpcExport(aAdmin, parent); status.Code(err) != codes.NotFound || len(got) != 0 {
			t.Errorf("gRPC ExportUsers(%q) with A's token = %d users, %v; want NOT_FOUND", parent, len(got), err)
		}
	}
	if _, err := grpcExport(bearer(isoA, "users.read"), "tenants/"+isoA); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC ExportUsers with users.read = %v, want PERMISSION_DENIED", err)
	}
	if _, err := grpcExport("Bearer nope", "tenants/"+isoA); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC ExportUsers with a bad token = %v, want UNAUTHENTICATED", err)
	}

	// An export is a request like the others: its access line names the
	// route and the RPC, with the RPC's code.
	const rpc = "/users.v2.UserService/ExportUsers"
	var lines []map[string]any
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		lines = lines[:0]
		for _, l := range s.accessLines(t, "http request") {
			if l["rpc"] == rpc {
				lines = append(lines, l)
			}
		}
		if len(lines) >= 10 {
			break
		}
	}
	codesSeen := map[string]int{}
	for _, l := range lines {
		if l["route"] != "/v2/{parent=tenants/*}/users:export" {
			t.Errorf("export access line %v, want the route /v2/{parent=tenants/*}/users:export", l)
		}
		codesSeen[fmt.Sprint(l["grpc_code"], " ", l["status"])]++
	}
	if codesSeen["OK 200"] < 4 || codesSeen["NotFound 404"] < 2 || codesSeen["InvalidArgument 400"] < 1 || codesSeen["Unauthenticated 401"] < 1 {
		t.Errorf("export access lines by code and status: %v", codesSeen)
	}
}

// TestExportGateway exports through "usersd gateway" in front of a
// replica: the gateway calls ExportUsers over the network, a gRPC stream.
func TestExportGateway(t *testing.T) {
	replica, _ := startServerEnv(t, nil)
	gw, _ := startGateway(t, nil, "static:///"+replica.GRPC)
	var want []string
	for i := range 30 {
		want = append(want, gw.do(t, "POST", "/v2/users", fmt.Sprintf(`{"email":"g%d@example.com","displayName":"G %d"}`, i, i)).wantCreated(t))
	}
	for _, enc := range []string{"identity", "gzip"} {
		e := gw.export(t, "/v2/users:export", "Accept-Encoding", enc)
		if got := e.names(t); e.status != http.StatusOK || !slices.Equal(got, want) {
			t.Errorf("export through the gateway (%s) = %d, %d users; want 200 and %d", enc, e.status, len(got), len(want))
		}
	}
	if e := gw.export(t, "/v2/tenants/nowhere/users:export"); e.status != http.StatusNotFound {
		t.Errorf("export of a missing tenant through the gateway = %d %s, want 404", e.status, e.raw)
	}
	if e := gw.export(t, "/v2/users:export?filter="+url.QueryEscape("bogus = 1")); e.status != http.StatusBadRequest {
		t.Errorf("export with a bad filter through the gateway = %d %s, want 400", e.status, e.raw)
	}
}
