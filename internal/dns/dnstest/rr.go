package dnstest

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// DefaultTTL is the TTL, in seconds, of records made without WithTTL.
const DefaultTTL = 300

// NegativeTTL is the TTL, in seconds, a negative answer (NXDOMAIN or
// NODATA) may be cached for: the TTL and MINIMUM of the SOA record the
// server puts in the authority section (RFC 2308 §3).
const NegativeTTL = 60

// RR is one resource record of a Zone, without its owner name, which is
// the Zone key (or the name given to Server.Set). Make one with MX, A,
// AAAA, TXT, TLSA, PTR or CNAME. The constructors panic on malformed
// input (a bad address, bad hex), as a test's zone is a constant.
type RR struct {
	rrtype uint16
	ttl    uint32
	hasTTL bool
	make   func(hdr mdns.RR_Header) mdns.RR
	target string // for CNAME: the fully qualified lower-case target
}

// WithTTL returns r with a TTL of ttl seconds instead of DefaultTTL.
func (r RR) WithTTL(ttl uint32) RR {
	r.ttl, r.hasTTL = ttl, true
	return r
}

// Type returns the record's type mnemonic, such as "MX".
func (r RR) Type() string {
	return mdns.TypeToString[r.rrtype]
}

// rr returns the wire form of r owned by name (fully qualified).
func (r RR) rr(name string) mdns.RR {
	ttl := uint32(DefaultTTL)
	if r.hasTTL {
		ttl = r.ttl
	}
	return r.make(mdns.RR_Header{Name: name, Rrtype: r.rrtype, Class: mdns.ClassINET, Ttl: ttl})
}

// MX returns an MX record (RFC 1035 §3.3.9). Host "." makes a null MX
// (RFC 7505 §3).
func MX(pref uint16, host string) RR {
	h := mdns.Fqdn(host)
	return RR{rrtype: mdns.TypeMX, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.MX{Hdr: hdr, Preference: pref, Mx: h}
	}}
}

// A returns an A record; ip must be an IPv4 address such as "192.0.2.1".
func A(ip string) RR {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is4() {
		panic(fmt.Sprintf("dnstest: A: %q is not an IPv4 address", ip))
	}
	return RR{rrtype: mdns.TypeA, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.A{Hdr: hdr, A: a.AsSlice()}
	}}
}

// AAAA returns an AAAA record (RFC 3596 §2.1); ip must be an IPv6
// address such as "2001:db8::1".
func AAAA(ip string) RR {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		panic(fmt.Sprintf("dnstest: AAAA: %q is not an IPv6 address", ip))
	}
	return RR{rrtype: mdns.TypeAAAA, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.AAAA{Hdr: hdr, AAAA: a.AsSlice()}
	}}
}

// TXT returns one TXT record (RFC 1035 §3.3.14) made of the given
// strings, each sent as one character-string, or as several of 255 octets
// when it is longer (RFC 7208 §3.3). TXT() is one empty string. The
// strings are raw octets, not the zone-file presentation form: a
// backslash is a backslash.
func TXT(s ...string) RR {
	var chunks []string
	for _, str := range s {
		for len(str) > 255 {
			chunks = append(chunks, escapeTXT(str[:255]))
			str = str[255:]
		}
		chunks = append(chunks, escapeTXT(str))
	}
	if len(chunks) == 0 {
		chunks = []string{""}
	}
	return RR{rrtype: mdns.TypeTXT, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.TXT{Hdr: hdr, Txt: chunks}
	}}
}

// escapeTXT escapes raw octets for miekg/dns, which packs a TXT string
// from its presentation form: a backslash starts an escape.
func escapeTXT(s string) string {
	return strings.ReplaceAll(s, `\`, `\\`)
}

// TLSA returns a TLSA record (RFC 6698 §2.1); data is the certificate
// association data in hex.
func TLSA(usage, selector, mtype uint8, data string) RR {
	b, err := hex.DecodeString(data)
	if err != nil {
		panic(fmt.Sprintf("dnstest: TLSA: bad hex %q: %v", data, err))
	}
	h := hex.EncodeToString(b)
	return RR{rrtype: mdns.TypeTLSA, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.TLSA{Hdr: hdr, Usage: usage, Selector: selector, MatchingType: mtype, Certificate: h}
	}}
}

// PTR returns a PTR record (RFC 1035 §3.3.12) naming name. Its owner is
// the reverse name, such as "1.2.0.192.in-addr.arpa"; see ReverseName.
func PTR(name string) RR {
	n := mdns.Fqdn(name)
	return RR{rrtype: mdns.TypePTR, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.PTR{Hdr: hdr, Ptr: n}
	}}
}

// SRV returns an SRV record (RFC 2782) pointing to target:port; target
// "." says the service is not available.
func SRV(priority, weight, port uint16, target string) RR {
	t := mdns.Fqdn(target)
	return RR{rrtype: mdns.TypeSRV, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.SRV{Hdr: hdr, Priority: priority, Weight: weight, Port: port, Target: t}
	}}
}

// CNAME returns a CNAME record (RFC 1034 §3.6.2) pointing to target. The
// server follows CNAME chains when it answers, as a recursive resolver
// does; a name with a CNAME should have no other record.
func CNAME(target string) RR {
	t := canonical(target)
	return RR{rrtype: mdns.TypeCNAME, target: t, make: func(hdr mdns.RR_Header) mdns.RR {
		return &mdns.CNAME{Hdr: hdr, Target: t}
	}}
}

// ReverseName returns the owner name of the PTR records of ip, such as
// "1.2.0.192.in-addr.arpa." (RFC 1035 §3.5, RFC 3596 §2.5). It panics on
// a malformed address.
func ReverseName(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		panic(fmt.Sprintf("dnstest: ReverseName: %q: %v", ip, err))
	}
	n, err := mdns.ReverseAddr(a.Unmap().WithZone("").String())
	if err != nil {
		panic(fmt.Sprintf("dnstest: ReverseName: %q: %v", ip, err))
	}
	return n
}

// canonical returns name lower case and fully qualified, the form of the
// server's keys.
func canonical(name string) string {
	return mdns.CanonicalName(name)
}
