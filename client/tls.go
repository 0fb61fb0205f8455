package client

import (
	"crypto/tls"
	"errors"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/usersd/usersd/internal/certs"
)

// WithTLS secures the connections with TLS configured by c: its RootCAs
// verify the servers (nil means the system's roots), and its certificate,
// if any, is presented to servers that ask for one. HTTP/2 is negotiated
// and TLS 1.2 is the minimum unless c says otherwise. TLSFiles.Config
// builds c from PEM files.
func WithTLS(c *tls.Config) Option {
	return WithTransportCredentials(credentials.NewTLS(c))
}

// TLSFiles names the PEM files of a TLS client.
type TLSFiles struct {
	// CAFile holds the CAs that sign the servers' certificates, read once
	// by Config; empty means the system's roots.
	CAFile string
	// CertFile and KeyFile, both or neither, hold the client certificate
	// (chain, leaf first) and its key, for servers that require one (mutual
	// TLS). They are read again when they change, checked at most once a
	// second when connecting, so a rotated certificate is used without a
	// restart; new files that fail to load leave the last good ones in use.
	CertFile, KeyFile string
	// ServerName, if set, is the name the servers' certificates must
	// carry. By default it is the target's host, or for a static target
	// the address of each replica.
	ServerName string
	// OnReloadError, if not nil, gets the error of each new client
	// certificate that failed to load.
	OnReloadError func(error)
}

// Config reads the files of f and returns a TLS configuration for WithTLS.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CAFile != "" {
		var err error
		if c.RootCAs, err = certs.LoadCAs(f.CAFile); err != nil {
			return nil, err
		}
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		kp, err := certs.LoadKeyPair(f.CertFile, f.KeyFile, time.Second, f.OnReloadError)
		if err != nil {
			return nil, err
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.Certificate(), nil
		}
	case f.CertFile != "" || f.KeyFile != "":
		return nil, errors.New("client certificate: CertFile and KeyFile go together")
	}
	return c, nil
}
