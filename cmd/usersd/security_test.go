package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/client"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/certs/certstest"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

// TestTLSEndToEnd serves both public listeners over mutual TLS and shows
// that a client with a certificate of the client CA gets through, over
// HTTP and gRPC, that one without is refused, and that the standalone
// gateway reaches the replica over mutual TLS with its own certificate.
func TestTLSEndToEnd(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := certstest.NewCA(t, "servers"), certstest.NewCA(t, "clients")
	certFile, keyFile := serverCA.Server(t, "127.0.0.1", "localhost").WriteFiles(t, t.TempDir())
	clientCert, clientKey := clientCA.Client(t, "gateway").WriteFiles(t, t.TempDir())
	certstest.WriteFile(t, dir+"/server-ca.pem", serverCA.PEM)
	certstest.WriteFile(t, dir+"/client-ca.pem", clientCA.PEM)

	s := startServer(t, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", dir+"/client-ca.pem")

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(serverCA.PEM)
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	httpsClient := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	res, err := httpsClient(pair).Post("https://"+s.HTTP+"/v1/users", "application/json",
		strings.NewReader(`{"email":"tls@example.com","displayName":"TLS"}`))
	if err != nil {
		t.Fatalf("HTTPS with a client certificate: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || res.ProtoMajor != 2 {
		t.Fatalf("HTTPS create: %s over %s: %s; want 201 over HTTP/2", res.Status, res.Proto, body)
	}
	if _, err := httpsClient().Get("https://" + s.HTTP + "/v1/users"); err == nil {
		t.Error("HTTPS without a client certificate succeeded, want the handshake refused")
	}
	plain := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(plain.CloseIdleConnections)
	if res, err := (&http.Client{Transport: plain}).Get("http://" + s.HTTP + "/v1/users"); err == nil {
		res.Body.Close()
		if res.StatusCode < 400 {
			t.Error("plaintext HTTP to the TLS listener succeeded")
		}
	}

	tc, err := client.TLSFiles{CAFile: dir + "/server-ca.pem", CertFile: clientCert, KeyFile: clientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := client.Dial(t.Context(), "static:///"+s.GRPC, client.WithTLS(tc))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	list, err := conn.V1().ListUsers(t.Context(), &usersv1.ListUsersRequest{})
	if err != nil || len(list.GetUsers()) != 1 {
		t.Fatalf("gRPC over mutual TLS: %d users, %v; want the one created over HTTPS", len(list.GetUsers()), err)
	}

	gw, _ := startGateway(t, nil, "static:///"+s.GRPC,
		"--upstream-ca", dir+"/server-ca.pem", "--upstream-cert", clientCert, "--upstream-key", clientKey)
	r := gw.do(t, "GET", "/v1/users", "")
	r.wantStatus(t, http.StatusOK)
	if users, _ := r.Body["users"].([]any); len(users) != 1 {
		t.Errorf("gateway over mutual TLS listed %v, want the one user", r.Body)
	}
}

// TestAuthEndToEnd runs serve with --auth=jwt on a JWKS file and checks
// the scope rules over HTTP and gRPC, that health and metrics stay open,
// and that the per-caller rate limit answers 429 with Retry-After to the
// caller over it only.
func TestAuthEndToEnd(t *testing.T) {
	key := authtest.NewKey(t, jose.EdDSA)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, jwks, key)
	s := startServer(t, "--auth", "jwt", "--auth-issuer", authtest.Issuer, "--auth-audience", authtest.Audience,
		"--auth-jwks", jwks, "--rate-limit", "1", "--rate-burst", "20")
	bearer := func(sub string, scopes ...string) string {
		return "Bearer " + key.Token(t, authtest.Claims{Subject: sub, Scopes: scopes})
	}
	writer, reader := bearer("svc-writer", "users.write"), bearer("svc-reader", "users.read")

	r := s.do(t, "GET", "/v1/users", "")
	if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("no token: %d, WWW-Authenticate %q; want 401 with a Bearer challenge", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	created := s.do(t, "POST", "/v1/users", `{"email":"self@example.com","displayName":"Self"}`, "Authorization", writer)
	created.wantStatus(t, http.StatusCreated)
	id := created.str("id")
	s.do(t, "GET", "/v1/users/"+id, "", "Authorization", reader).wantStatus(t, http.StatusOK)
	if r := s.do(t, "POST", "/v1/users", `{"email":"x@example.com","displayName":"X"}`, "Authorization", reader); r.Status != http.StatusForbidden {
		t.Errorf("create with users.read: %d, want 403", r.Status)
	}
	// The user itself, with no scope: its own record, and its own name.
	self := bearer(id)
	s.do(t, "GET", "/v1/users/"+id, "", "Authorization", self).wantStatus(t, http.StatusOK)
	s.do(t, "PATCH", "/v1/users/"+id+"?updateMask=displayName", `{"displayName":"Renamed"}`, "Authorization", self).wantStatus(t, http.StatusOK)
	if r := s.do(t, "GET", "/v1/users", "", "Authorization", self); r.Status != http.StatusForbidden {
		t.Errorf("list as a user with no scope: %d, want 403", r.Status)
	}

	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", reader)
	if _, err := s.Client.GetUser(ctx, &usersv1.GetUserRequest{Id: id}); err != nil {
		t.Errorf("gRPC GetUser with users.read: %v", err)
	}
	_, err := s.Client.GetUser(t.Context(), &usersv1.GetUserRequest{Id: id})
	wantCode(t, "gRPC GetUser without a token", err, codes.Unauthenticated, "")
	if res, err := healthpb.NewHealthClient(s.conn).Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health without a token: %v, %v; want SERVING", res.GetStatus(), err)
	}
	for _, path := range []string{"/readyz", "/metrics"} {
		res, err := http.Get("http://" + s.Admin + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("admin %s without a token: %d, want 200", path, res.StatusCode)
		}
	}

	// The reader spends its burst; the writer is another caller.
	var limited response
	for range 40 {
		if limited = s.do(t, "GET", "/v1/users/"+id, "", "Authorization", reader); limited.Status != http.StatusOK {
			break
		}
	}
	if limited.Status != http.StatusTooManyRequests || limited.Header.Get("Retry-After") == "" {
		t.Errorf("reader past its burst: %d, Retry-After %q; want 429 with Retry-After", limited.Status, limited.Header.Get("Retry-After"))
	}
	s.do(t, "GET", "/v1/users/"+id, "", "Authorization", writer).wantStatus(t, http.StatusOK)
}

// TestDatabasePasswordNeverShown starts serve with a password in the
// database URL, once on an address where nothing listens and once (with
// Postgres) on the real server, which trusts any password here: the
// password is in no log line, error or /readyz body.
func TestDatabasePasswordNeverShown(t *testing.T) {
	const password = "s3cret-Pa55word"
	var out, errOut strings.Builder
	err := run(t.Context(), []string{"usersd", "serve", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--database-url", "postgres://usersd:" + password + "@127.0.0.1:1/usersd?connect_timeout=2"},
		func(string) string { return "" }, &out, &errOut)
	if err == nil {
		t.Fatal("serve on an unreachable database succeeded")
	}
	for what, text := range map[string]string{"error": err.Error(), "log": out.String(), "stderr": errOut.String()} {
		if strings.Contains(text, password) {
			t.Errorf("the %s shows the password: %s", what, text)
		}
	}

	u, err := url.Parse(pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	s := startServer(t, "--database-url", u.String())
	res, err := http.Get("http://" + s.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || strings.Contains(string(body), password) {
		t.Errorf("/readyz = %d %q; want 200 without the password", res.StatusCode, body)
	}
	if strings.Contains(s.logs.String(), password) {
		t.Errorf("the log shows the password:\n%s", s.logs)
	}
}

// TestAuthNoneWarns: serving without authentication logs a warning for
// each public listener reachable from other machines, and none for
// loopback ones.
func TestAuthNoneWarns(t *testing.T) {
	const warning = "authentication is off"
	loopback := startServer(t)
	if strings.Contains(loopback.logs.String(), warning) {
		t.Errorf("warned with listeners on 127.0.0.1:\n%s", loopback.logs)
	}
	open := startServer(t, "--http-addr", ":0")
	var warned []string
	for _, l := range strings.Split(open.logs.String(), "\n") {
		if strings.Contains(l, warning) {
			warned = append(warned, l)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], `"addr":":0"`) {
		t.Errorf("warnings %q, want one, for the HTTP listener on :0", warned)
	}
}
