package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// lower lower-cases ASCII letters only, as DNS does (RFC 4343).
func lower(s string) string {
	b := []byte(nil)
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			if b == nil {
				b = []byte(s)
			}
			b[i] = c + ('a' - 'A')
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// checkDNSName checks that s is a DNS host name in lower case: dot-separated
// labels of ASCII letters, digits and hyphens, each 1 to 63 octets, not
// starting or ending with a hyphen, 253 octets at most in all
// (RFC 1035 §2.3.1, RFC 1123 §2.1). Internationalized names must be given
// in their A-label (xn--) form.
func checkDNSName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", s)
	}
	if strings.HasSuffix(s, ".") {
		return fmt.Errorf("%q ends with a dot; write the name without it", s)
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return fmt.Errorf("%q has an empty label", s)
		}
		if len(label) > 63 {
			return fmt.Errorf("%q has a label longer than 63 characters", s)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q has a label that starts or ends with a hyphen", s)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
			case 'A' <= c && c <= 'Z':
				return fmt.Errorf("%q must be lower case", s)
			case c >= utf8.RuneSelf:
				return fmt.Errorf("%q is not ASCII; use its A-label (xn--) form", s)
			default:
				return fmt.Errorf("%q is not a valid DNS name (character %q)", s, rune(c))
			}
		}
	}
	return nil
}

// isAtext reports whether c may appear in a dot-atom (RFC 5322 §3.2.3).
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// normAddress lower-cases the domain part of a "local@domain" address and
// leaves the local part as it is.
func normAddress(s string) string {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return s
	}
	return s[:i+1] + lower(s[i+1:])
}

// checkAddress checks that s is "local@domain": the local part a dot-atom
// (RFC 5321 §4.1.2; non-ASCII UTF-8 allowed as in RFC 6531), at most 64
// octets; the domain as for checkDNSName. Quoted local parts are refused.
func checkAddress(s string) error {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return fmt.Errorf("%q is not an address (local@domain)", s)
	}
	local, domain := s[:i], s[i+1:]
	if local == "" {
		return fmt.Errorf("%q has an empty local part", s)
	}
	if len(local) > 64 {
		return fmt.Errorf("%q has a local part longer than 64 characters", s)
	}
	if !utf8.ValidString(local) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	for _, atom := range strings.Split(local, ".") {
		if atom == "" {
			return fmt.Errorf("%q has a local part with an empty dot-separated part", s)
		}
		for j := 0; j < len(atom); j++ {
			if c := atom[j]; c < utf8.RuneSelf && !isAtext(c) {
				return fmt.Errorf("%q has a character %q not allowed in a local part", s, rune(c))
			}
		}
	}
	if err := checkDNSName(domain); err != nil {
		return fmt.Errorf("domain of %q: %w", s, err)
	}
	return nil
}

// domainOf returns the domain part of a checked address.
func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// checkListenAddress checks a listening address: host:port with a numeric
// port from 0 to 65535 and a host that is empty, an IP address or a DNS
// name.
func checkListenAddress(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return fmt.Errorf("%s %q", ae.Err, ae.Addr)
		}
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q in address %q is not a number from 0 to 65535", port, s)
	}
	if host == "" {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if err := checkDNSName(lower(host)); err != nil {
		return fmt.Errorf("host in address %q: %w", s, err)
	}
	return nil
}

// checkListenerName checks a listener name: 1 to 64 ASCII letters,
// digits, '-', '_' or '.'.
func checkListenerName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 64 {
		return fmt.Errorf("%q is longer than 64 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%q may contain only letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}
