package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/usersd/usersd/client"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/certs"
)

// tlsSource returns the certificates of the public listeners, or nil when
// they serve plaintext.
func tlsSource(cfg config, log zerolog.Logger) (*certs.Source, error) {
	switch {
	case cfg.TLSCert == "" && cfg.TLSKey == "" && cfg.TLSClientCA == "":
		return nil, nil
	case cfg.TLSCert == "" || cfg.TLSKey == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	src, err := certs.NewSource(certs.Config{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, ClientCAFile: cfg.TLSClientCA, Log: log})
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	log.Info().Bool("mutual", src.MutualTLS()).Msg("public listeners serve TLS")
	return src, nil
}

// upstreamTLS returns the gateway's client option for TLS to the replicas,
// or nil for plaintext.
func upstreamTLS(cfg config, log zerolog.Logger) (client.Option, error) {
	if cfg.UpstreamCA == "" && cfg.UpstreamCert == "" && cfg.UpstreamKey == "" && cfg.UpstreamServerName == "" {
		return nil, nil
	}
	if (cfg.UpstreamCert == "") != (cfg.UpstreamKey == "") {
		return nil, errors.New("--upstream-cert and --upstream-key go together")
	}
	tc, err := client.TLSFiles{
		CAFile: cfg.UpstreamCA, CertFile: cfg.UpstreamCert, KeyFile: cfg.UpstreamKey, ServerName: cfg.UpstreamServerName,
		OnReloadError: func(err error) {
			log.Error().Err(err).Msg("upstream client certificate not reloaded; keeping the current one")
		},
	}.Config()
	if err != nil {
		return nil, fmt.Errorf("upstream tls: %w", err)
	}
	return client.WithTLS(tc), nil
}

// newAuthenticator returns the authentication of API calls that cfg asks
// for. Without it, it warns for each public listener that is reachable
// from beyond this machine.
func newAuthenticator(ctx context.Context, cfg config, log zerolog.Logger) (*auth.Authenticator, error) {
	a, err := auth.New(ctx, auth.Config{
		Mode:     auth.Mode(cfg.Auth),
		Issuer:   cfg.AuthIssuer,
		Audience: cfg.AuthAudience,
		JWKS:     cfg.AuthJWKS,
		Skew:     cfg.AuthClockSkew,
		Log:      log,
		// The flag's default is the package's; mode none reads no claim.
		TenantClaim: cfg.AuthTenantClaim,
	})
	if err != nil {
		return nil, fmt.Errorf("--auth=%s: %w", cfg.Auth, err)
	}
	if a.Mode() == auth.ModeNone {
		for _, addr := range []string{cfg.HTTPAddr, cfg.GRPCAddr} {
			if auth.Insecure(addr) {
				log.Warn().Str("addr", addr).Msg("authentication is off (--auth=none) on an address reachable from other machines: anyone who reaches it can read and change every user")
			}
		}
	}
	return a, nil
}
