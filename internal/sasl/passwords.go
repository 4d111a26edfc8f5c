package sasl

import (
	"context"
	"crypto/tls"
	"slices"
	"strings"
)

// Mechanism names (RFC 4954 §3, the IANA SASL registry).
const (
	// MechPlain is RFC 4616's PLAIN.
	MechPlain = "PLAIN"
	// MechLogin is draft-murchison-sasl-login's LOGIN.
	MechLogin = "LOGIN"
)

// Passwords offers the password mechanisms, PLAIN and LOGIN, and starts
// their exchanges. It has the method set of smtpd.Authenticator. Both
// mechanisms send the password in the clear inside the session, so
// Passwords offers them only on TLS sessions (RFC 4616 §6, RFC 4954 §4).
// The zero value offers nothing; a Passwords is safe for concurrent use
// once set up and must not be changed afterwards. Mechanisms offers these
// two and every other mechanism.
type Passwords struct {
	// Check verifies a username and password; nil offers nothing.
	Check PasswordChecker
	// Mechs lists the mechanisms to offer, in order of preference, from
	// MechPlain and MechLogin (case-insensitive); others are ignored. Nil
	// means both, PLAIN first.
	Mechs []string
}

// mechs returns the offered mechanisms, upper-cased, without duplicates or
// unknown names.
func (p Passwords) mechs() []string {
	if p.Check == nil {
		return nil
	}
	if p.Mechs == nil {
		return []string{MechPlain, MechLogin}
	}
	out := make([]string, 0, 2)
	for _, m := range p.Mechs {
		m = strings.ToUpper(m)
		if (m == MechPlain || m == MechLogin) && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// Mechanisms returns the mechanisms to advertise to a session in TLS state
// cs: none (nil) when cs is nil, since a password is never offered without
// TLS. The caller passes cs only once the handshake has completed.
func (p Passwords) Mechanisms(cs *tls.ConnectionState) []string {
	if cs == nil {
		return nil
	}
	return p.mechs()
}

// Start begins an exchange of mechanism mech for a session in TLS state cs.
// ok is false when mech is not one Mechanisms(cs) offers; the name is
// compared ignoring case. The Server passes ctx to Check.
func (p Passwords) Start(ctx context.Context, mech string, cs *tls.ConnectionState) (s Server, ok bool) {
	mech = strings.ToUpper(mech)
	if !slices.Contains(p.Mechanisms(cs), mech) {
		return nil, false
	}
	switch mech {
	case MechPlain:
		return NewPlain(ctx, p.Check), true
	case MechLogin:
		return NewLogin(ctx, p.Check), true
	}
	return nil, false
}
