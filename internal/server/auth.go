package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"postern/internal/config"
	"postern/internal/sasl"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// authSetup is what every submission listener's authenticator shares.
type authSetup struct {
	cfg     *config.Config
	db      *userdb.DB
	tokens  sasl.TokenVerifier // nil without [oauth]
	certs   *tlsconf.Certs
	mockKey []byte
}

// newAuthSetup builds the token verifier of [oauth] (its client secret in
// sec) and the key that hides which users exist from SCRAM clients.
func newAuthSetup(cfg *config.Config, sec config.Secrets, db *userdb.DB, certs *tlsconf.Certs) (*authSetup, error) {
	a := &authSetup{cfg: cfg, db: db, certs: certs, mockKey: make([]byte, 32)}
	if _, err := rand.Read(a.mockKey); err != nil {
		return nil, err
	}
	switch {
	case cfg.OAuth.IntrospectionURL != "":
		a.tokens = introspectionOf(cfg, sec)
	case cfg.OAuth.JWKSURL != "" || cfg.OAuth.JWKSFile != "":
		j := jwtOf(cfg)
		if err := j.Check(); err != nil {
			return nil, fmt.Errorf("oauth: %w", err)
		}
		a.tokens = j
	}
	return a, nil
}

// mechanisms returns the SASL authenticator of one listener: the
// listener's mechanisms and [auth] (mechanismsOf), with the directory,
// the token verifier and the certificates.
func (a *authSetup) mechanisms(lc config.Listener) *sasl.Mechanisms {
	m := mechanismsOf(a.cfg, lc)
	m.Check, m.Secrets, m.Tokens, m.MockKey = a.db.CheckPassword, a.db, a.tokens, a.mockKey
	m.Users = func(ctx context.Context, name string) (string, error) {
		u, ok := a.db.Lookup(name)
		if !ok {
			return "", fmt.Errorf("no user %q: %w", name, sasl.ErrInvalidCredentials)
		}
		return u.Address, nil
	}
	// The leaf this session was served, for tls-server-end-point
	// (RFC 5929 §4) on TLS 1.2; TLS 1.3 binds with tls-exporter.
	m.ServerCertificate = func(cs *tls.ConnectionState) *x509.Certificate { return a.certs.LeafFor(cs.ServerName) }
	return m
}

// listenerTLS returns the TLS configuration of one listener: the shared
// one, asking for client certificates when the listener is set to.
func listenerTLS(base *tls.Config, cfg *config.Config, lc config.Listener) (*tls.Config, error) {
	switch lc.ClientCertificates {
	case "request", "require":
	default:
		return base, nil
	}
	pool, err := tlsconf.LoadPool(cfg.TLS.ClientCAFile, "tls.client_ca_file", false)
	if err != nil {
		return nil, err
	}
	c := base.Clone()
	c.ClientCAs = pool
	c.ClientAuth = tls.VerifyClientCertIfGiven
	if lc.ClientCertificates == "require" {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}
