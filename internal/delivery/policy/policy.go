// Package policy decides where and how mail for a domain is delivered:
// the MX hosts in order (RFC 5321 §5.1, null MX per RFC 7505), and the TLS
// each connection needs, from DANE (RFC 7672), MTA-STS (RFC 8461), the
// configured per-domain minimum and REQUIRETLS (RFC 8689). The SMTP client
// in package remote follows the Plan; policy never opens an SMTP
// connection itself.
package policy

// THIS FILE IS A CONTRACT: the helper that owns this package implements
// Planner.Plan and Host.Verify (it may add files, fields and options; it
// keeps these names and their documented meaning).

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/dns"
)

// Mode is how much TLS a connection to a host needs.
type Mode int

// The modes, weakest first.
const (
	// Opportunistic: STARTTLS when offered, certificate not checked,
	// plaintext when not offered.
	Opportunistic Mode = iota
	// Encrypt: STARTTLS required (any certificate); no plaintext.
	Encrypt
	// Verify: STARTTLS required and Host.Verify must accept the
	// connection (DANE TLSA match, or WebPKI chain + MX name for
	// MTA-STS/config "verify").
	Verify
)

// Source says which rule set a Host's Mode.
type Source string

// The sources of a requirement, for logs, metrics and DSNs.
const (
	SourceNone    Source = "none"    // opportunistic by default
	SourceConfig  Source = "config"  // a configured per-domain minimum
	SourceMTASTS  Source = "mta-sts" // an enforce-mode MTA-STS policy
	SourceDANE    Source = "dane"    // authenticated TLSA records
	SourceRequire Source = "requiretls"
)

// ErrNullMX is returned (wrapped) by Plan for a domain that accepts no
// mail (RFC 7505): a permanent failure (bounce with 5.1.10).
var ErrNullMX = errors.New("policy: domain accepts no mail (null MX)")

// ErrNoHosts is returned (wrapped) when no host may be tried: NXDOMAIN
// (permanent), or every MX refused by an enforced MTA-STS policy
// (temporary, RFC 8461 §4.2). dns errors are wrapped alongside, so
// dns.IsNotFound / errors.Is(err, dns.ErrTemporary) tell which.
var ErrNoHosts = errors.New("policy: no usable mail host")

// ErrRequireTLS is returned (wrapped) by Plan for a message sent with
// REQUIRETLS (RFC 8689 §4.2.1) when no host of the domain is both
// authenticated and verifiable: the domain has neither an enforced MTA-STS
// policy nor usable DANE TLSA records. It is a permanent failure (the
// message bounces with the reason) unless IsPermanent says otherwise,
// which happens when some host was skipped for a temporary reason and
// might qualify later.
var ErrRequireTLS = errors.New("policy: REQUIRETLS cannot be met")

// Request is what Plan needs beyond the domain.
type Request struct {
	Domain     string // recipient domain, lower case
	RequireTLS bool   // the message carries REQUIRETLS (RFC 8689 §4)
	// TLSOptional means the message carries "TLS-Required: No" (RFC 8689
	// §4.2.2): the TLS the recipient domain requires (DANE, MTA-STS) is
	// waived, and TLS is used when offered; the configured minimum (the
	// operator's own policy) still applies, and so does an enforced
	// MTA-STS policy's list of MX hosts. Ignored with RequireTLS.
	TLSOptional bool
}

// Plan is the ordered list of hosts to try for one domain.
type Plan struct {
	Domain string
	Hosts  []Host // in order: MX preference, random among equal preference
	// Implicit is true when the domain had no MX and its own address
	// records are used (RFC 5321 §5.1).
	Implicit bool
}

// Host is one mail host and what a connection to it needs.
type Host struct {
	Name   string       // MX target, lower case, no trailing dot
	Addrs  []netip.Addr // resolved addresses, IPv6 and IPv4 in resolver order
	Mode   Mode
	Source Source
	// Reason explains Mode in one line for logs and DSNs
	// ("MTA-STS policy for example.com in enforce mode").
	Reason string
	// TLSA are the authenticated TLSA records when Source is SourceDANE.
	TLSA []dns.TLSA
	// verify is set by Plan; nil means nothing to verify.
	verify func(cs tls.ConnectionState) error
	// audit is set by Plan for a host of a domain whose MTA-STS policy
	// is in testing mode; nil means nothing to audit. auditCount, set
	// with it, counts what Audit finds (the Engine's metrics).
	audit      func(cs tls.ConnectionState) error
	auditCount *prometheus.CounterVec
}

// Verify checks an established TLS connection against this host's
// requirement: for DANE the TLSA records (RFC 7672 §3), for MTA-STS,
// config "verify" and REQUIRETLS a WebPKI chain valid for Name. It returns
// nil when Mode is below Verify. The SMTP client calls it after the
// handshake (InsecureSkipVerify on, so that opportunistic delivery still
// works) and treats an error as a temporary failure of this host.
func (h *Host) Verify(cs tls.ConnectionState) error {
	if h.verify == nil {
		return nil
	}
	return h.verify(cs)
}

// Planner makes Plans. Implementations cache MTA-STS policies.
type Planner interface {
	Plan(ctx context.Context, req Request) (*Plan, error)
}
