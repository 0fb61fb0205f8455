package client_test

import (
	"context"
	"crypto/tls"
	"math/big"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/client"
	"github.com/usersd/usersd/internal/certs"
	"github.com/usersd/usersd/internal/certs/certstest"
)

// pki is the files of a server CA, a client CA and a client certificate.
type pki struct {
	serverCA, clientCA *certstest.CA
	dir                string
	serverCAFile       string
	client             certstest.Leaf
	certFile, keyFile  string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{serverCA: certstest.NewCA(t, "server CA"), clientCA: certstest.NewCA(t, "client CA"), dir: t.TempDir()}
	p.serverCAFile = filepath.Join(p.dir, "server-ca.pem")
	certstest.WriteFile(t, p.serverCAFile, p.serverCA.PEM)
	p.client = p.clientCA.Client(t, "gateway")
	p.certFile, p.keyFile = p.client.WriteFiles(t, p.dir)
	return p
}

// serverCreds returns mutual TLS credentials for a server named hosts.
func (p *pki) serverCreds(t *testing.T, hosts ...string) credentials.TransportCredentials {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := p.serverCA.Server(t, hosts...).WriteFiles(t, dir)
	caFile := filepath.Join(dir, "client-ca.pem")
	certstest.WriteFile(t, caFile, p.clientCA.PEM)
	src, err := certs.NewSource(certs.Config{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile, Log: zerolog.Nop()})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	return src.GRPCCredentials()
}

// clientSerials records the serial of the client certificate of each call.
type clientSerials struct {
	mu      sync.Mutex
	serials []*big.Int
}

func (c *clientSerials) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			c.mu.Lock()
			c.serials = append(c.serials, ti.State.PeerCertificates[0].SerialNumber)
			c.mu.Unlock()
		}
	}
	return handler(ctx, req)
}

func (c *clientSerials) last() *big.Int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.serials) == 0 {
		return nil
	}
	return c.serials[len(c.serials)-1]
}

func tlsOption(t *testing.T, f client.TLSFiles) client.Option {
	t.Helper()
	c, err := f.Config()
	if err != nil {
		t.Fatalf("TLSFiles.Config: %v", err)
	}
	return client.WithTLS(c)
}

func TestDialTLS(t *testing.T) {
	p := newPKI(t)
	var seen clientSerials
	// Two replicas, each with its own certificate for 127.0.0.1: a static
	// target checks each replica against its own address.
	f, target := startFleet(t, 2, grpc.Creds(p.serverCreds(t, "127.0.0.1")), grpc.UnaryInterceptor(seen.interceptor))
	conn := dial(t, target, tlsOption(t, client.TLSFiles{CAFile: p.serverCAFile, CertFile: p.certFile, KeyFile: p.keyFile}))

	ctx := context.Background()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := conn.V1().GetUser(ctx, &usersv1.GetUserRequest{Id: "u"}); err != nil {
			t.Fatalf("GetUser over mutual TLS: %v", err)
		}
		if s := f.spread(false); s[0] > 0 && s[1] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every replica answered within 5s: calls %v", f.spread(false))
		}
	}
	if got, want := seen.last(), p.client.Cert.SerialNumber; got == nil || got.Cmp(want) != 0 {
		t.Errorf("server saw client certificate %x, want %x", got, want)
	}
}

func TestDialTLSRefused(t *testing.T) {
	p := newPKI(t)
	_, target := startFleet(t, 1, grpc.Creds(p.serverCreds(t, "127.0.0.1")))
	other := certstest.NewCA(t, "other CA")
	otherCAFile := filepath.Join(p.dir, "other-ca.pem")
	certstest.WriteFile(t, otherCAFile, other.PEM)

	tests := []struct {
		name string
		opt  client.Option
	}{
		{"plaintext", nil},
		{"server of an unknown CA", tlsOption(t, client.TLSFiles{CAFile: otherCAFile, CertFile: p.certFile, KeyFile: p.keyFile})},
		{"no client certificate", tlsOption(t, client.TLSFiles{CAFile: p.serverCAFile})},
		{"server name not in the certificate", tlsOption(t, client.TLSFiles{CAFile: p.serverCAFile, CertFile: p.certFile, KeyFile: p.keyFile, ServerName: "usersd.example"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []client.Option
			if tt.opt != nil {
				opts = append(opts, tt.opt)
			}
			conn := dial(t, target, append(opts, client.WithTimeout(2*time.Second))...)
			// UpdateUser is never retried: the first failure is the answer.
			_, err := conn.V1().UpdateUser(context.Background(), &usersv1.UpdateUserRequest{User: &usersv1.User{Id: "u"}})
			if status.Code(err) != codes.Unavailable {
				t.Errorf("UpdateUser: err = %v, want UNAVAILABLE", err)
			}
		})
	}
}

func TestDialTLSServerName(t *testing.T) {
	p := newPKI(t)
	_, target := startFleet(t, 1, grpc.Creds(p.serverCreds(t, "usersd.example")))
	conn := dial(t, target, tlsOption(t, client.TLSFiles{CAFile: p.serverCAFile, CertFile: p.certFile, KeyFile: p.keyFile, ServerName: "usersd.example"}))
	if _, err := conn.V1().GetUser(context.Background(), &usersv1.GetUserRequest{Id: "u"}); err != nil {
		t.Errorf("GetUser with ServerName usersd.example: %v", err)
	}
}

func TestDialTLSClientCertificateRotation(t *testing.T) {
	p := newPKI(t)
	var seen clientSerials
	_, target := startFleet(t, 1, grpc.Creds(p.serverCreds(t, "127.0.0.1")), grpc.UnaryInterceptor(seen.interceptor))
	var reloadErrs []error
	var mu sync.Mutex
	cfg, err := client.TLSFiles{
		CAFile: p.serverCAFile, CertFile: p.certFile, KeyFile: p.keyFile,
		OnReloadError: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			reloadErrs = append(reloadErrs, err)
		},
	}.Config()
	if err != nil {
		t.Fatalf("TLSFiles.Config: %v", err)
	}
	// call makes a call on a new connection and returns the serial of the
	// client certificate the server saw.
	call := func() *big.Int {
		t.Helper()
		conn, err := client.Dial(context.Background(), target, client.WithTLS(cfg))
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		defer conn.Close()
		if _, err := conn.V1().GetUser(context.Background(), &usersv1.GetUserRequest{Id: "u"}); err != nil {
			t.Fatalf("GetUser: %v", err)
		}
		return seen.last()
	}
	if got := call(); got.Cmp(p.client.Cert.SerialNumber) != 0 {
		t.Fatalf("client certificate %x, want %x", got, p.client.Cert.SerialNumber)
	}

	// A half-written rotation: the old certificate stays in use.
	next := p.clientCA.Client(t, "gateway")
	certstest.WriteFile(t, p.certFile, next.CertPEM)
	time.Sleep(1100 * time.Millisecond) // past the check interval of a second
	if got := call(); got.Cmp(p.client.Cert.SerialNumber) != 0 {
		t.Errorf("client certificate after a half rotation %x, want the old %x", got, p.client.Cert.SerialNumber)
	}
	mu.Lock()
	if len(reloadErrs) != 1 {
		t.Errorf("OnReloadError got %v, want one error", reloadErrs)
	}
	mu.Unlock()

	// The whole rotation: new connections present the new certificate.
	certstest.WriteFile(t, p.keyFile, next.KeyPEM)
	for deadline := time.Now().Add(5 * time.Second); call().Cmp(next.Cert.SerialNumber) != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("client certificate still %x 5s after the rotation, want %x", seen.last(), next.Cert.SerialNumber)
		}
	}
}

func TestTLSFilesErrors(t *testing.T) {
	p := newPKI(t)
	brokenCA := filepath.Join(p.dir, "broken-ca.pem")
	certstest.WriteFile(t, brokenCA, p.serverCA.PEM[:len(p.serverCA.PEM)/2])
	otherKey := filepath.Join(p.dir, "other-key.pem")
	certstest.WriteFile(t, otherKey, p.clientCA.Client(t, "other").KeyPEM)
	tests := []struct {
		name  string
		files client.TLSFiles
	}{
		{"certificate without key", client.TLSFiles{CertFile: p.certFile}},
		{"key without certificate", client.TLSFiles{KeyFile: p.keyFile}},
		{"missing CA file", client.TLSFiles{CAFile: filepath.Join(p.dir, "nope.pem")}},
		{"truncated CA file", client.TLSFiles{CAFile: brokenCA}},
		{"key of another certificate", client.TLSFiles{CertFile: p.certFile, KeyFile: otherKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.files.Config(); err == nil {
				t.Errorf("TLSFiles%+v.Config() err = nil, want an error", tt.files)
			}
		})
	}
	c, err := client.TLSFiles{}.Config()
	if err != nil {
		t.Fatalf("TLSFiles{}.Config(): %v", err)
	}
	if c.RootCAs != nil || c.GetClientCertificate != nil || c.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLSFiles{}.Config() = RootCAs %v, client certificate %v, MinVersion %x; want system roots, none, TLS 1.2",
			c.RootCAs, c.GetClientCertificate != nil, c.MinVersion)
	}
}
