package dns

import (
	"errors"
	"strings"

	mdns "github.com/miekg/dns"
)

// errBadName is the cause given when a name cannot be asked for.
var errBadName = errors.New("not a domain name")

// normalizeName returns name as a lower-case fully qualified name, ready to
// be asked for. The trailing dot is optional in name. Names are passed
// through as given otherwise: internationalized names must already be
// A-labels (RFC 5890 §2.3.2.1). Names with a backslash, which miekg/dns
// would read as an escape (RFC 1035 §5.1), and with white space or NUL,
// which no host name has, are refused.
func normalizeName(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "\\ \t\r\n\x00") {
		return "", errBadName
	}
	fq := mdns.Fqdn(strings.ToLower(name))
	if _, ok := mdns.IsDomainName(fq); !ok {
		return "", errBadName
	}
	return fq, nil
}

// ValidName reports whether name is a DNS name in the syntax Postern
// reads in records and writes into them: dot-separated labels of ASCII
// letters, digits, hyphens and underscores, each 1 to 63 octets, 253
// octets at most, without a trailing dot. An internationalized name must
// be given as A-labels (RFC 5890 §2.3.2.1). It is looser than a host
// name (RFC 1123 §2.1: no underscore, no hyphen at either end of a
// label), as the names in MTA-STS policies (RFC 8461 §3.2) and DKIM
// selectors (RFC 6376 §3.1) are in practice; addrkey.Domain is the
// strict check of a mail domain.
func ValidName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// hostName turns a domain name from an answer into the form the Resolver
// returns: lower case, without the trailing dot. The root "." becomes "".
func hostName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// displayName is name as it appears in error messages: as the caller gave
// it, without the trailing dot.
func displayName(name string) string {
	if name == "." {
		return name
	}
	return strings.TrimSuffix(name, ".")
}

// joinTXT returns the octets of one TXT record: its character-strings
// concatenated without separators (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
// miekg/dns hands the strings over in presentation form, with '"' and '\'
// escaped by a backslash and other non-printable octets as \DDD; joinTXT
// undoes that escaping.
func joinTXT(txt []string) string {
	var b strings.Builder
	for _, s := range txt {
		b.Grow(len(s))
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c != '\\' || i+1 == len(s) {
				b.WriteByte(c)
				continue
			}
			i++
			if d, ok := ddd(s[i:]); ok {
				b.WriteByte(d)
				i += 2
				continue
			}
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// ddd decodes the three decimal digits of a \DDD escape at the start of s
// (RFC 1035 §5.1). It fails when s does not start with three digits or
// their value does not fit in an octet.
func ddd(s string) (byte, bool) {
	if len(s) < 3 {
		return 0, false
	}
	v := 0
	for i := range 3 {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + int(s[i]-'0')
	}
	if v > 255 {
		return 0, false
	}
	return byte(v), true
}
