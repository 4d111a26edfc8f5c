package sasl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// preference returns the order in which Mechanisms advertises what it
// offers: channel-bound and challenge-response mechanisms before those that
// send a secret (a password, a bearer token) inside TLS.
func preference() []string {
	return []string{
		MechSCRAMSHA256Plus, MechSCRAMSHA256, MechSCRAMSHA1Plus, MechSCRAMSHA1,
		MechExternal, MechOAuthBearer, MechXOAuth2, MechCRAMMD5, MechPlain, MechLogin,
	}
}

// CheckMechanisms reports an error naming the first entry of names that is
// not a mechanism Mechanisms knows (ignoring case). Config validation uses it.
func CheckMechanisms(names []string) error {
	for _, n := range names {
		if !slices.Contains(preference(), strings.ToUpper(n)) {
			return fmt.Errorf("sasl: unknown mechanism %q (known: %s)", n, strings.Join(preference(), ", "))
		}
	}
	return nil
}

// UserResolver returns the canonical name of the user a token or a
// certificate names, as the directory spells it. Errors wrap
// ErrInvalidCredentials when there is no such user, ErrTemporary when the
// directory cannot answer.
type UserResolver func(ctx context.Context, name string) (user string, err error)

// Mechanisms offers every SASL mechanism Postern implements, each only
// where it can work, and starts their exchanges. It has the method set of
// smtpd.Authenticator. Nothing is offered without TLS. Mechanisms is safe
// for concurrent use once set up and must not be changed afterwards.
type Mechanisms struct {
	// Enabled lists the mechanisms this listener may offer (names from
	// the Mech constants, any case). Enabling SCRAM-SHA-256 or
	// SCRAM-SHA-1 enables its -PLUS variant too. Nil enables none:
	// there is no default list here (Postern's configuration resolves
	// auth_mechanisms, in internal/config).
	Enabled []string
	// Check verifies passwords, for PLAIN and LOGIN.
	Check PasswordChecker
	// Secrets finds stored SCRAM and CRAM-MD5 secrets.
	Secrets SecretLookup
	// Tokens verifies OAuth access tokens, for OAUTHBEARER and XOAUTH2.
	Tokens TokenVerifier
	// Certs names the user of a verified client certificate, for
	// EXTERNAL and RequireCert; nil means CertEmail.
	Certs CertMapper
	// Users, when set, turns the user a token or certificate names into
	// the directory's canonical name, and refuses unknown users.
	Users UserResolver
	// Hostname goes into CRAM-MD5 challenges.
	Hostname string
	// Now is the clock for CRAM-MD5 challenges; nil means time.Now.
	Now func() time.Time
	// ServerCertificate returns the leaf certificate the server sent in a
	// session, for the tls-server-end-point channel binding
	// (RFC 5929 §4). Nil: only tls-exporter (TLS 1.3) is offered, so
	// -PLUS is not offered on TLS 1.2.
	ServerCertificate func(cs *tls.ConnectionState) *x509.Certificate
	// RequireCert, when set, reports whether a user must also present a
	// verified client certificate that names them: PLAIN, LOGIN,
	// CRAM-MD5 and SCRAM then fail for that user without one.
	RequireCert func(user string) bool
	// MockKey keys the made-up SCRAM salt of unknown users (see
	// SCRAMOptions.MockKey); fill it with random octets at startup.
	MockKey []byte
	// SCRAMIterations is the iteration count the directory uses for SCRAM
	// credentials, shown for unknown users too (see
	// SCRAMOptions.MockIterations).
	SCRAMIterations int
}

// enabled reports whether mech (upper case) is enabled.
func (m *Mechanisms) enabled(mech string) bool {
	base := strings.TrimSuffix(mech, "-PLUS")
	for _, e := range m.Enabled {
		e = strings.ToUpper(e)
		if e == mech || (mech != base && e == base) {
			return true
		}
	}
	return false
}

// bindings returns the channel bindings of a session.
func (m *Mechanisms) bindings(cs *tls.ConnectionState) map[string][]byte {
	var cert *x509.Certificate
	if m.ServerCertificate != nil && cs != nil {
		cert = m.ServerCertificate(cs)
	}
	return ChannelBindings(cs, cert)
}

// Mechanisms returns the mechanisms to advertise to a session in TLS state
// cs, in order of preference: none (nil) when cs is nil; -PLUS only when
// the session has a channel binding; EXTERNAL only with a verified client
// certificate; SCRAM and CRAM-MD5 only with Secrets; OAUTHBEARER and
// XOAUTH2 only with Tokens; PLAIN and LOGIN only with Check.
func (m *Mechanisms) Mechanisms(cs *tls.ConnectionState) []string {
	if cs == nil {
		return nil
	}
	var out []string
	var cb map[string][]byte
	for _, mech := range preference() {
		if !m.enabled(mech) {
			continue
		}
		ok := false
		switch mech {
		case MechSCRAMSHA256Plus, MechSCRAMSHA1Plus:
			if m.Secrets != nil && cb == nil {
				cb = m.bindings(cs)
			}
			ok = m.Secrets != nil && len(cb) > 0
		case MechSCRAMSHA256, MechSCRAMSHA1, MechCRAMMD5:
			ok = m.Secrets != nil
		case MechExternal:
			ok = verifiedLeaf(cs) != nil
		case MechOAuthBearer, MechXOAuth2:
			ok = m.Tokens != nil
		case MechPlain, MechLogin:
			ok = m.Check != nil
		}
		if ok {
			out = append(out, mech)
		}
	}
	return out
}

// Start begins an exchange of mechanism mech for a session in TLS state
// cs. ok is false when mech is not one Mechanisms(cs) offers; the name is
// compared ignoring case. The Server passes ctx to the checkers.
func (m *Mechanisms) Start(ctx context.Context, mech string, cs *tls.ConnectionState) (s Server, ok bool) {
	mech = strings.ToUpper(mech)
	offered := m.Mechanisms(cs)
	if !slices.Contains(offered, mech) {
		return nil, false
	}
	var gs Guarded // the mechanisms whose client names the user first
	switch mech {
	case MechPlain:
		gs = NewPlain(ctx, m.Check)
	case MechLogin:
		gs = NewLogin(ctx, m.Check)
	case MechCRAMMD5:
		gs = NewCRAMMD5(ctx, m.Hostname, m.Secrets, m.Now)
	case MechSCRAMSHA256, MechSCRAMSHA256Plus, MechSCRAMSHA1, MechSCRAMSHA1Plus:
		opts := SCRAMOptions{
			Hash:        HashSHA256,
			Plus:        strings.HasSuffix(mech, "-PLUS"),
			PlusOffered: slices.Contains(offered, strings.TrimSuffix(mech, "-PLUS")+"-PLUS"),
			Lookup:      m.Secrets,
			MockKey:     m.MockKey,
		}
		opts.MockIterations = m.SCRAMIterations
		if strings.HasPrefix(mech, MechSCRAMSHA1) {
			opts.Hash = HashSHA1
		}
		if opts.Plus {
			opts.Bindings = m.bindings(cs)
		}
		gs = NewSCRAM(ctx, opts)
	case MechOAuthBearer, MechXOAuth2:
		return &tokenServer{ctx: ctx, verifier: m.Tokens, xoauth2: mech == MechXOAuth2, users: m.Users}, true
	case MechExternal:
		return &external{ctx: ctx, cs: cs, mapper: m.certs(), users: m.Users}, true
	default:
		return nil, false
	}
	if m.RequireCert != nil {
		return &certGate{Guarded: gs, ctx: ctx, cs: cs, m: m}, true
	}
	return gs, true
}

// certs returns the CertMapper in use.
func (m *Mechanisms) certs() CertMapper {
	if m.Certs == nil {
		return CertEmail
	}
	return m.Certs
}

// certUser maps a verified client certificate to a canonical user.
func (m *Mechanisms) certUser(ctx context.Context, cert *x509.Certificate) (string, error) {
	user, err := m.certs()(ctx, cert)
	if err != nil || m.Users == nil {
		return user, err
	}
	return m.Users(ctx, user)
}

// certGate fails a successful exchange of a user who must also present a
// client certificate and has not presented one naming them.
type certGate struct {
	Guarded
	ctx    context.Context
	cs     *tls.ConnectionState
	m      *Mechanisms
	failed bool
}

// Next implements Server.
func (g *certGate) Next(response []byte) ([]byte, bool, error) {
	ch, done, err := g.Guarded.Next(response)
	if !done {
		return ch, done, err
	}
	user := g.Guarded.Identity()
	if !g.m.RequireCert(user) {
		return ch, done, err
	}
	leaf := verifiedLeaf(g.cs)
	if leaf == nil {
		g.failed = true
		return nil, false, fmt.Errorf("sasl: user must present a client certificate: %w", ErrInvalidCredentials)
	}
	certUser, err := g.m.certUser(g.ctx, leaf)
	switch {
	case err != nil:
		g.failed = true
		return nil, false, fmt.Errorf("sasl: user's client certificate: %w", lookupError(err))
	case !strings.EqualFold(certUser, user):
		g.failed = true
		return nil, false, fmt.Errorf("sasl: client certificate names another user: %w", ErrInvalidCredentials)
	}
	return ch, done, nil
}

// Identity implements Server.
func (g *certGate) Identity() string {
	if g.failed {
		return ""
	}
	return g.Guarded.Identity()
}
