package sasl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MechExternal is RFC 4422 Appendix A's EXTERNAL: here, the TLS client
// certificate.
const MechExternal = "EXTERNAL"

// CertMapper names the user a verified client certificate belongs to.
// Errors wrap ErrInvalidCredentials when the certificate names nobody,
// ErrTemporary when the answer cannot be had now. It must be safe for
// concurrent use.
type CertMapper func(ctx context.Context, cert *x509.Certificate) (user string, err error)

// CertEmail is the default CertMapper: the certificate's first SAN email
// address (RFC 5280 §4.2.1.6 rfc822Name).
func CertEmail(_ context.Context, cert *x509.Certificate) (string, error) {
	if cert == nil || len(cert.EmailAddresses) == 0 {
		return "", fmt.Errorf("sasl: certificate has no SAN email address: %w", ErrInvalidCredentials)
	}
	return cert.EmailAddresses[0], nil
}

// CertFingerprint returns a certificate's key in a CertMap: "sha256:" and
// the lower-case hex SHA-256 of its DER encoding.
func CertFingerprint(cert *x509.Certificate) string {
	d := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(d[:])
}

// CertMap returns a CertMapper that looks a certificate up in m: first by
// CertFingerprint, then by each SAN email address, lower-cased, in order.
// The keys of m are compared lower-cased. A certificate found under no
// key names nobody. m is copied.
func CertMap(m map[string]string) CertMapper {
	own := make(map[string]string, len(m))
	for k, v := range m {
		own[strings.ToLower(k)] = v
	}
	return func(_ context.Context, cert *x509.Certificate) (string, error) {
		if cert == nil {
			return "", fmt.Errorf("sasl: no certificate: %w", ErrInvalidCredentials)
		}
		if u, ok := own[CertFingerprint(cert)]; ok {
			return u, nil
		}
		for _, e := range cert.EmailAddresses {
			if u, ok := own[strings.ToLower(e)]; ok {
				return u, nil
			}
		}
		return "", fmt.Errorf("sasl: certificate is not mapped to a user: %w", ErrInvalidCredentials)
	}
}

// verifiedLeaf returns the client certificate of a session, if the TLS
// layer verified it against the configured CAs (tls.Config.ClientAuth
// VerifyClientCertIfGiven or RequireAndVerifyClientCert); nil otherwise.
func verifiedLeaf(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || !cs.HandshakeComplete || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}

// external is the server side of EXTERNAL.
type external struct {
	ctx      context.Context
	cs       *tls.ConnectionState
	mapper   CertMapper
	users    UserResolver // nil: the mapper's user as it is
	step     oneMessage
	username string
	identity string
}

// NewExternal returns a Server for EXTERNAL (RFC 4422 Appendix A) that
// authenticates the client by the certificate it presented in the TLS
// session cs, which must have been verified against the configured CAs.
// mapper names its user (nil: CertEmail). The client's message is an
// authzid, empty or naming that same user (ignoring case); without an
// initial response the server first sends an empty challenge.
func NewExternal(ctx context.Context, cs *tls.ConnectionState, mapper CertMapper) Server {
	if mapper == nil {
		mapper = CertEmail
	}
	return &external{ctx: ctx, cs: cs, mapper: mapper}
}

// Next implements Server.
func (e *external) Next(response []byte) ([]byte, bool, error) {
	if ok, challenge, err := e.step.take("EXTERNAL", response); !ok {
		return challenge, false, err
	}
	if err := parseExternal(response); err != nil {
		return nil, false, err
	}
	authzid := string(response)
	e.username = authzid
	leaf := verifiedLeaf(e.cs)
	if leaf == nil {
		return nil, false, fmt.Errorf("sasl: EXTERNAL: no verified client certificate: %w", ErrInvalidCredentials)
	}
	if e.username == "" {
		e.username = leaf.Subject.CommonName
		if len(leaf.EmailAddresses) > 0 {
			e.username = leaf.EmailAddresses[0]
		}
	}
	if err := e.ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("sasl: EXTERNAL: %w: %w", ErrTemporary, err)
	}
	user, err := e.mapper(e.ctx, leaf)
	canonical := user
	if err == nil && user != "" && e.users != nil {
		canonical, err = e.users(e.ctx, user)
	}
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("sasl: EXTERNAL: %w", lookupError(err))
	case user == "" || canonical == "":
		return nil, false, fmt.Errorf("sasl: EXTERNAL: certificate mapper returned no user: %w", ErrTemporary)
	case authzid != "" && !strings.EqualFold(authzid, user) && !strings.EqualFold(authzid, canonical):
		// RFC 4422 Appendix A.1: the server checks that the client may
		// act as authzid; Postern allows only oneself.
		return nil, false, fmt.Errorf("sasl: EXTERNAL: authorization identity differs from the certificate's user: %w", ErrInvalidCredentials)
	}
	e.identity = canonical
	return nil, true, nil
}

// parseExternal checks an EXTERNAL message (RFC 4422 Appendix A.1):
// an optional authzid, UTF-8 without NUL, at most MaxFieldLen octets.
func parseExternal(msg []byte) error {
	switch {
	case len(msg) > MaxFieldLen:
		return fmt.Errorf("sasl: EXTERNAL: authzid longer than %d octets: %w", MaxFieldLen, ErrMalformed)
	case !utf8.Valid(msg) || bytes.IndexByte(msg, 0) >= 0:
		return fmt.Errorf("sasl: EXTERNAL: authzid not UTF-8 or contains NUL: %w", ErrMalformed)
	}
	return nil
}

// Identity implements Server.
func (e *external) Identity() string { return e.identity }

// Username implements Server.
func (e *external) Username() string { return e.username }
