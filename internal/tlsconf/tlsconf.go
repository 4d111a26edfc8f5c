// Package tlsconf holds Postern's TLS policy and certificates: the server
// tls.Config every listener uses, certificates that can be reloaded while
// the server runs, and the self-signed certificate used in development.
package tlsconf

import (
	"crypto/tls"
	"fmt"
)

// Policy is the TLS policy of the server side.
type Policy struct {
	// MinVersion is the lowest TLS version accepted: tls.VersionTLS12
	// (also when zero) or tls.VersionTLS13. Lower versions are raised to
	// TLS 1.2.
	MinVersion uint16
	// SessionTicketsDisabled turns session tickets off (per listener,
	// tls_tickets = false): some Microsoft clients fail STARTTLS when
	// offered Go's tickets. Resumption is then unavailable.
	SessionTicketsDisabled bool
}

// ParseMinVersion parses a configured minimum TLS version, "1.2" or
// "1.3", into tls.VersionTLS12 or tls.VersionTLS13.
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tlsconf: minimum TLS version %q is not \"1.2\" or \"1.3\"", s)
}

// cipherSuites are the TLS 1.2 suites offered: ECDHE key exchange with an
// AEAD only (forward secrecy, no CBC, no static RSA key exchange), as in
// RFC 9325 §4.2. TLS 1.3 suites are not configurable and all qualify.
func cipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
}

// ServerConfig returns the tls.Config for Postern's listeners: TLS 1.2
// and 1.3 only (from p.MinVersion up); on TLS 1.2 only ECDHE suites with
// AES-GCM or ChaCha20-Poly1305; the key exchanges Go offers by default
// (the hybrid post-quantum X25519MLKEM768 first, then among others
// X25519, P-256 and P-384); session tickets on unless
// p.SessionTicketsDisabled, with keys Go rotates itself until a Tickets
// rotator installs shared ones; and the certificate c chooses, read at every handshake so that a
// Reload applies to new connections at once. Each call returns a new
// Config the caller may adjust.
func ServerConfig(c *Certs, p Policy) *tls.Config {
	minV := p.MinVersion
	if minV < tls.VersionTLS12 {
		minV = tls.VersionTLS12
	}
	if minV > tls.VersionTLS13 {
		minV = tls.VersionTLS13
	}
	return &tls.Config{
		MinVersion:     minV,
		MaxVersion:     tls.VersionTLS13,
		CipherSuites:   cipherSuites(),
		GetCertificate: c.GetCertificate,
		// CurvePreferences is left nil on purpose: Go's default puts
		// X25519MLKEM768 first and keeps X25519, P-256 and P-384.
		SessionTicketsDisabled: p.SessionTicketsDisabled,
	}
}
