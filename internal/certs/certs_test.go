package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/client"
	"github.com/usersd/usersd/internal/certs"
	"github.com/usersd/usersd/internal/certs/certstest"
	"github.com/usersd/usersd/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// checkInterval keeps the tests fast; the default is a second.
const checkInterval = 10 * time.Millisecond

// logBuffer collects log lines written from handshakes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// server is the TLS files of a server and a Source on them.
type server struct {
	ca                *certstest.CA
	dir               string
	certFile, keyFile string
	leaf              certstest.Leaf
	src               *certs.Source
	log               *logBuffer
}

// newServer writes a certificate for 127.0.0.1 and localhost and returns a
// Source on it, for mutual TLS if clientCAFile is set.
func newServer(t *testing.T, clientCAFile string) *server {
	t.Helper()
	s := &server{ca: certstest.NewCA(t, "server CA"), dir: t.TempDir(), log: &logBuffer{}}
	s.leaf = s.ca.Server(t, "127.0.0.1", "localhost")
	s.certFile, s.keyFile = s.leaf.WriteFiles(t, s.dir)
	var err error
	s.src, err = certs.NewSource(certs.Config{
		CertFile: s.certFile, KeyFile: s.keyFile, ClientCAFile: clientCAFile,
		CheckInterval: checkInterval, Log: zerolog.New(s.log),
	})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return s
}

func (s *server) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.ca.Cert)
	return p
}

// serveHTTP serves s over HTTPS as cmd/usersd is told to: TLSConfig and
// ServeTLS without files. It returns the address.
func serveHTTP(t *testing.T, s *server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(r.Proto))
		}),
		TLSConfig:         s.src.HTTPConfig(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(lis, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return lis.Addr().String()
}

// serveGRPC serves the health service over gRPC with s's credentials and
// returns the address.
func serveGRPC(t *testing.T, s *server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(s.src.GRPCCredentials()))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// httpGet gets https://addr/ on a new connection with cfg and returns the
// serial of the server's certificate and the protocol.
func httpGet(t *testing.T, addr string, cfg *tls.Config) (*big.Int, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		return nil, "", err
	}
	return resp.TLS.PeerCertificates[0].SerialNumber, body.String(), nil
}

// handshake connects to addr and returns the serial of the certificate the
// server presents.
func handshake(t *testing.T, addr string, pool *x509.CertPool) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

// grpcCheck calls grpc.health.v1 Check on a new client of addr through
// client.Dial, and returns the serial of the server's certificate.
func grpcCheck(t *testing.T, addr string, opts ...client.Option) (*big.Int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer conn.Close()
	var p peer.Peer
	if _, err := healthpb.NewHealthClient(conn.ClientConn()).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		return nil, err
	}
	return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber, nil
}

func TestHTTPServesTLS(t *testing.T) {
	s := newServer(t, "")
	addr := serveHTTP(t, s)

	serial, proto, err := httpGet(t, addr, &tls.Config{RootCAs: s.pool()})
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if serial.Cmp(s.leaf.Cert.SerialNumber) != 0 {
		t.Errorf("served certificate serial %x, want %x", serial, s.leaf.Cert.SerialNumber)
	}
	if proto != "HTTP/2.0" {
		t.Errorf("protocol %q, want HTTP/2.0", proto)
	}

	// HTTP/1.1 clients are served too.
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: s.pool(), NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("HTTP/1.1 handshake: %v", err)
	}
	if got := conn.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
		t.Errorf("ALPN %q, want http/1.1", got)
	}
	conn.Close()

	// TLS 1.1 is refused.
	if conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: s.pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		conn.Close()
		t.Errorf("TLS 1.1 handshake succeeded, want refused")
	}
}

func TestGRPCServesTLS(t *testing.T) {
	s := newServer(t, "")
	addr := serveGRPC(t, s)

	serial, err := grpcCheck(t, addr, client.WithTLS(&tls.Config{RootCAs: s.pool()}))
	if err != nil {
		t.Fatalf("Check over TLS: %v", err)
	}
	if serial.Cmp(s.leaf.Cert.SerialNumber) != 0 {
		t.Errorf("served certificate serial %x, want %x", serial, s.leaf.Cert.SerialNumber)
	}

	// A plaintext client gets nowhere.
	if _, err := grpcCheck(t, addr); status.Code(err) != codes.Unavailable {
		t.Errorf("Check in plaintext: err = %v, want UNAVAILABLE", err)
	}
}

func TestRotation(t *testing.T) {
	s := newServer(t, "")
	httpAddr, grpcAddr := serveHTTP(t, s), serveGRPC(t, s)
	grpcTLS := client.WithTLS(&tls.Config{RootCAs: s.pool()})
	before := s.leaf.Cert.SerialNumber
	if got := handshake(t, httpAddr, s.pool()); got.Cmp(before) != 0 {
		t.Fatalf("serial before rotation %x, want %x", got, before)
	}

	next := s.ca.Server(t, "127.0.0.1", "localhost")
	next.WriteFiles(t, s.dir)
	after := next.Cert.SerialNumber
	testkit.Eventually(t, 5*time.Second, "the HTTP server does not serve the new certificate", func() bool {
		return handshake(t, httpAddr, s.pool()).Cmp(after) == 0
	})
	if got, _, err := httpGet(t, httpAddr, &tls.Config{RootCAs: s.pool()}); err != nil || got.Cmp(after) != 0 {
		t.Errorf("GET after rotation: serial %x, err %v; want %x", got, err, after)
	}
	// The gRPC server shares the source: new connections get the new
	// certificate at once.
	got, err := grpcCheck(t, grpcAddr, grpcTLS)
	if err != nil {
		t.Fatalf("Check after rotation: %v", err)
	}
	if got.Cmp(after) != 0 {
		t.Errorf("gRPC serial after rotation %x, want %x", got, after)
	}
	if logs := s.log.String(); !strings.Contains(logs, "certificate reloaded") || !strings.Contains(logs, after.Text(16)) {
		t.Errorf("log does not report the reload of %x:\n%s", after, logs)
	}
}

func TestBrokenReplacementKeepsCertificate(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, s *server, next certstest.Leaf)
	}{
		{
			// The first half of a rotation: the certificate is new, the key
			// is not yet.
			name: "key of the old certificate",
			write: func(t *testing.T, s *server, next certstest.Leaf) {
				certstest.WriteFile(t, s.certFile, next.CertPEM)
			},
		},
		{
			name: "half-written certificate",
			write: func(t *testing.T, s *server, next certstest.Leaf) {
				certstest.WriteFile(t, s.keyFile, next.KeyPEM)
				certstest.WriteFile(t, s.certFile, next.CertPEM[:len(next.CertPEM)/2])
			},
		},
		{
			// The leaf and its key are fine, but the chain after it is
			// cut short: decoders would skip the broken block.
			name: "truncated chain",
			write: func(t *testing.T, s *server, next certstest.Leaf) {
				certstest.WriteFile(t, s.keyFile, next.KeyPEM)
				chain := append(append([]byte{}, next.CertPEM...), s.ca.PEM[:len(s.ca.PEM)-40]...)
				certstest.WriteFile(t, s.certFile, chain)
			},
		},
		{
			name: "not PEM",
			write: func(t *testing.T, s *server, next certstest.Leaf) {
				certstest.WriteFile(t, s.certFile, []byte("not a certificate\n"))
			},
		},
		{
			name: "missing key",
			write: func(t *testing.T, s *server, next certstest.Leaf) {
				if err := os.Remove(s.keyFile); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, "")
			addr := serveHTTP(t, s)
			before := s.leaf.Cert.SerialNumber
			next := s.ca.Server(t, "127.0.0.1", "localhost")

			tt.write(t, s, next)
			testkit.Eventually(t, 5*time.Second, "no reload error in the log", func() bool {
				handshake(t, addr, s.pool())
				return strings.Contains(s.log.String(), "not loaded")
			})
			if got := handshake(t, addr, s.pool()); got.Cmp(before) != 0 {
				t.Errorf("serial after a broken replacement %x, want the old %x", got, before)
			}
			if n := strings.Count(s.log.String(), "not loaded"); n != 1 {
				t.Errorf("reload error logged %d times, want once per change:\n%s", n, s.log.String())
			}

			// Finishing the rotation switches to the new certificate.
			next.WriteFiles(t, s.dir)
			testkit.Eventually(t, 5*time.Second, "the new certificate is not served", func() bool {
				return handshake(t, addr, s.pool()).Cmp(next.Cert.SerialNumber) == 0
			})
		})
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	clientCA, otherCA := certstest.NewCA(t, "client CA"), certstest.NewCA(t, "other CA")
	caFile := filepath.Join(dir, "client-ca.pem")
	certstest.WriteFile(t, caFile, clientCA.PEM)
	s := newServer(t, caFile)
	if !s.src.MutualTLS() {
		t.Fatal("MutualTLS() = false with a client CA file")
	}
	addr := serveGRPC(t, s)
	serverCAFile := filepath.Join(dir, "server-ca.pem")
	certstest.WriteFile(t, serverCAFile, s.ca.PEM)

	// clientFiles writes the certificate of leaf to its own directory.
	clientFiles := func(leaf certstest.Leaf) client.TLSFiles {
		d := t.TempDir()
		certFile, keyFile := leaf.WriteFiles(t, d)
		return client.TLSFiles{CAFile: serverCAFile, CertFile: certFile, KeyFile: keyFile}
	}
	good := clientFiles(clientCA.Client(t, "gateway"))
	foreign := clientFiles(otherCA.Client(t, "intruder"))
	// A certificate for servers only, from the right CA.
	serverOnly := clientFiles(clientCA.Server(t, "127.0.0.1"))

	check := func(f client.TLSFiles) error {
		t.Helper()
		c, err := f.Config()
		if err != nil {
			t.Fatalf("TLSFiles.Config: %v", err)
		}
		_, err = grpcCheck(t, addr, client.WithTLS(c))
		return err
	}
	tests := []struct {
		name  string
		files client.TLSFiles
		ok    bool
	}{
		{"no client certificate", client.TLSFiles{CAFile: serverCAFile}, false},
		{"certificate of another CA", foreign, false},
		{"certificate not for clients", serverOnly, false},
		{"certificate of the client CA", good, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(tt.files)
			if tt.ok && err != nil {
				t.Errorf("Check: %v, want OK", err)
			}
			if !tt.ok && status.Code(err) != codes.Unavailable {
				t.Errorf("Check: err = %v, want UNAVAILABLE (handshake refused)", err)
			}
			// The TLS alert ("certificate required", "unknown certificate
			// authority") shows only if it arrives before the closed
			// connection does.
			t.Logf("Check: %v", err)
		})
	}

	t.Run("HTTP", func(t *testing.T) {
		httpAddr := serveHTTP(t, s)
		if _, _, err := httpGet(t, httpAddr, &tls.Config{RootCAs: s.pool()}); err == nil {
			t.Errorf("GET without a client certificate succeeded, want refused")
		}
		c, err := good.Config()
		if err != nil {
			t.Fatalf("TLSFiles.Config: %v", err)
		}
		if _, proto, err := httpGet(t, httpAddr, c); err != nil || proto != "HTTP/2.0" {
			t.Errorf("GET with a client certificate: %q, %v; want HTTP/2.0", proto, err)
		}
	})

	t.Run("client CA rotation", func(t *testing.T) {
		// Trusting the other CA instead locks out the clients of the
		// first one, and lets the other's in, without a restart.
		certstest.WriteFile(t, caFile, otherCA.PEM)
		testkit.Eventually(t, 5*time.Second, "the new client CA is not trusted", func() bool { return check(foreign) == nil })
		if err := check(good); status.Code(err) != codes.Unavailable {
			t.Errorf("Check with a certificate of the removed CA: err = %v, want UNAVAILABLE", err)
		}
		// A broken CA file keeps the current CAs.
		certstest.WriteFile(t, caFile, otherCA.PEM[:len(otherCA.PEM)/2])
		testkit.Eventually(t, 5*time.Second, "no reload error in the log", func() bool {
			check(foreign)
			return strings.Contains(s.log.String(), "client CAs not loaded")
		})
		if err := check(foreign); err != nil {
			t.Errorf("Check after a broken CA file: %v, want OK", err)
		}
	})
}

func TestNewSourceErrors(t *testing.T) {
	ca := certstest.NewCA(t, "CA")
	dir := t.TempDir()
	leaf, other := ca.Server(t, "localhost"), ca.Server(t, "localhost")
	certFile, keyFile := leaf.WriteFiles(t, dir)
	otherKey := filepath.Join(dir, "other-key.pem")
	certstest.WriteFile(t, otherKey, other.KeyPEM)
	emptyCA := filepath.Join(dir, "empty-ca.pem")
	certstest.WriteFile(t, emptyCA, []byte("\n"))

	tests := []struct {
		name string
		cfg  certs.Config
	}{
		{"missing certificate", certs.Config{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: keyFile}},
		{"key of another certificate", certs.Config{CertFile: certFile, KeyFile: otherKey}},
		{"missing client CA file", certs.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: filepath.Join(dir, "nope.pem")}},
		{"client CA file without certificates", certs.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: emptyCA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := certs.NewSource(tt.cfg); err == nil {
				t.Errorf("NewSource(%+v) err = nil, want an error", tt.cfg)
			}
		})
	}
	if _, err := certs.NewSource(certs.Config{CertFile: certFile, KeyFile: keyFile}); err != nil {
		t.Errorf("NewSource with good files: %v", err)
	}
}

func TestLoadCAs(t *testing.T) {
	a, b := certstest.NewCA(t, "a"), certstest.NewCA(t, "b")
	dir := t.TempDir()
	bundle := append(append([]byte("# a bundle\n"), a.PEM...), b.PEM...)
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"bundle", bundle, true},
		{"bundle cut short", bundle[:len(bundle)-100], false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "ca.pem")
			certstest.WriteFile(t, file, tt.data)
			_, err := certs.LoadCAs(file)
			if (err == nil) != tt.ok {
				t.Errorf("LoadCAs(%s) err = %v, want ok = %v", tt.name, err, tt.ok)
			}
		})
	}
}
