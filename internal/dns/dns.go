// Package dns is Postern's view of the DNS: a Resolver interface that
// delivery (MX, MTA-STS, DANE) and mail authentication (SPF, DKIM, DMARC)
// use, the real implementation on miekg/dns, and (in dnstest) a DNS server
// on loopback for tests. Callers get the records, whether the answer was
// DNSSEC-authenticated, and errors that tell "does not exist" from "could
// not find out".
package dns

import (
	"context"
	"errors"
	"net/netip"
)

// Errors a Resolver returns, wrapped (use errors.Is).
var (
	// ErrNXDomain means the name does not exist (RCODE 3, NXDOMAIN).
	ErrNXDomain = errors.New("dns: no such domain")
	// ErrNoData means the name exists but has no records of the type
	// asked (NOERROR with an empty answer).
	ErrNoData = errors.New("dns: no records of that type")
	// ErrTemporary means the answer could not be had now: SERVFAIL,
	// REFUSED, a timeout, a network error. Retry later.
	ErrTemporary = errors.New("dns: temporary failure")
)

// IsNotFound reports whether err means the records do not exist
// (ErrNXDomain or ErrNoData), as opposed to a temporary failure.
func IsNotFound(err error) bool {
	return errors.Is(err, ErrNXDomain) || errors.Is(err, ErrNoData)
}

// Result is what an answer says beyond its records.
type Result struct {
	// Authentic is true when the resolver validated the answer with
	// DNSSEC (the AD bit, from a resolver configured as trusted). DANE
	// (RFC 7672 §2.2) uses TLSA and address records only when it is.
	Authentic bool
}

// MX is one mail exchanger.
type MX struct {
	Host string // lower case, without the trailing dot; "." stays "" for a null MX (RFC 7505)
	Pref uint16
}

// TLSA is one TLSA record (RFC 6698 §2.1).
type TLSA struct {
	Usage        uint8 // 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE
	Selector     uint8 // 0 full certificate, 1 SubjectPublicKeyInfo
	MatchingType uint8 // 0 exact, 1 SHA-256, 2 SHA-512
	Data         []byte
}

// Resolver looks names up. Names may be given with or without the
// trailing dot; returned host names are lower case without it. An empty
// answer is an error (ErrNoData), never an empty slice with nil error.
// With ErrNXDomain or ErrNoData, Result.Authentic tells whether the denial
// itself was authenticated. Implementations are safe for concurrent use.
type Resolver interface {
	// LookupMX returns the MX records of name, unsorted.
	LookupMX(ctx context.Context, name string) ([]MX, Result, error)
	// LookupIP returns the A and AAAA records of host (ErrNoData only
	// when both are empty; a temporary failure of either is an error,
	// wrapping ErrTemporary, returned together with the addresses of the
	// other type if it has any, and Result.Authentic describing those).
	LookupIP(ctx context.Context, host string) ([]netip.Addr, Result, error)
	// LookupTXT returns the TXT records of name, each record's strings
	// concatenated (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
	LookupTXT(ctx context.Context, name string) ([]string, Result, error)
	// LookupTLSA returns the TLSA records of name (for example
	// "_25._tcp.mx.example.com"), following CNAMEs.
	LookupTLSA(ctx context.Context, name string) ([]TLSA, Result, error)
	// LookupPTR returns the PTR names of ip.
	LookupPTR(ctx context.Context, ip netip.Addr) ([]string, Result, error)
}
