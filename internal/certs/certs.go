// Package certs serves TLS from PEM files that change on disk: the server
// certificate and, for mutual TLS, the CAs that sign client certificates.
// The files are read again when they change, so certificates rotate without
// a restart; new files that fail to load (half-written, or a key that does
// not match its certificate) leave the last good ones in use.
//
// There is no watcher goroutine: a handshake checks the files' identity,
// size and modification time when the last check is older than the check
// interval (a second by default), so a rotation shows within that interval
// of the first handshake after it. Connections already open keep the
// certificate they were made with.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/credentials"
)

// Config names the PEM files of a TLS server.
type Config struct {
	// CertFile holds the server's certificate chain, leaf first; KeyFile
	// its private key.
	CertFile, KeyFile string
	// ClientCAFile, if set, holds the CAs that sign client certificates:
	// every client must then present a certificate one of them signed
	// (mutual TLS).
	ClientCAFile string
	// CheckInterval is how often, at most, the files are checked for
	// changes; 0 means DefaultCheckInterval.
	CheckInterval time.Duration
	// Log gets an info line for each reload and an error line for new files
	// that failed to load.
	Log zerolog.Logger
}

// Source is the TLS configuration of a server, read from the files of a
// Config and kept up to date with them.
type Source struct {
	cert      *files[*tls.Certificate]
	clientCAs *files[*x509.CertPool] // nil without mutual TLS
}

// NewSource reads the files of cfg. It fails if they are missing or broken;
// later changes that fail to load are logged and leave the last good files
// in use.
func NewSource(cfg Config) (*Source, error) {
	s := &Source{}
	var err error
	s.cert, err = loadFiles([]string{cfg.CertFile, cfg.KeyFile}, cfg.CheckInterval, parseKeyPair(cfg.CertFile, cfg.KeyFile),
		func(c *tls.Certificate, err error) {
			if err != nil {
				cfg.Log.Error().Err(err).Msg("tls: new certificate not loaded; keeping the current one")
				return
			}
			cfg.Log.Info().Str("cert", cfg.CertFile).Str("serial", c.Leaf.SerialNumber.Text(16)).
				Time("not_after", c.Leaf.NotAfter).Msg("tls: certificate reloaded")
		})
	if err != nil {
		return nil, err
	}
	if cfg.ClientCAFile != "" {
		s.clientCAs, err = loadFiles([]string{cfg.ClientCAFile}, cfg.CheckInterval, parsePool(cfg.ClientCAFile),
			func(_ *x509.CertPool, err error) {
				if err != nil {
					cfg.Log.Error().Err(err).Msg("tls: new client CAs not loaded; keeping the current ones")
					return
				}
				cfg.Log.Info().Str("client_ca", cfg.ClientCAFile).Msg("tls: client CAs reloaded")
			})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// GetCertificate returns the current server certificate, for
// tls.Config.GetCertificate.
func (s *Source) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.get(), nil
}

// MutualTLS reports whether clients must present a certificate.
func (s *Source) MutualTLS() bool { return s.clientCAs != nil }

// HTTPConfig returns the TLS configuration of an HTTP server: TLS 1.2 at
// least, HTTP/2 and HTTP/1.1 by ALPN, the current certificate, and client
// certificates verified against the current client CAs with mutual TLS.
// Set it as http.Server.TLSConfig and serve with ServeTLS(lis, "", "").
func (s *Source) HTTPConfig() *tls.Config {
	return s.config("h2", "http/1.1")
}

// GRPCCredentials returns the transport credentials of a gRPC server, as
// HTTPConfig but for HTTP/2 only, for grpc.Creds.
func (s *Source) GRPCCredentials() credentials.TransportCredentials {
	return credentials.NewTLS(s.config("h2"))
}

func (s *Source) config(nextProtos ...string) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     nextProtos,
		GetCertificate: s.GetCertificate,
	}
	if s.clientCAs != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = s.clientCAs.get()
		// The pool of each handshake is the current one. A resumed session
		// is checked against it too, so removing a CA locks its clients out.
		base := c.Clone()
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			hc := base.Clone()
			hc.ClientCAs = s.clientCAs.get()
			return hc, nil
		}
	}
	return c
}
