package autoconfig

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Address limits (RFC 5321 §4.5.3.1.1, §4.5.3.1.2; a path of 256 octets
// with its brackets holds an address of at most 254).
const (
	maxAddress = 254
	maxLocal   = 64
	maxDomain  = 253
)

// ParseAddress checks an address a client sent and returns its local
// part as given and its domain in lower case. The local part is a
// dot-atom (RFC 5322 §3.2.3) of ASCII atext or of UTF-8 letters, marks,
// numbers, punctuation and symbols (RFC 6531 §3.3): no quoted strings,
// no spaces, no controls; at most 64 octets. The domain is a host name
// of LDH labels (A-labels for international ones), at most 253 octets.
// The whole is at most 254 octets.
func ParseAddress(s string) (local, domain string, err error) {
	if len(s) > maxAddress {
		return "", "", fmt.Errorf("address longer than %d octets", maxAddress)
	}
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", "", errors.New("address without @")
	}
	local, domain = s[:i], strings.ToLower(s[i+1:])
	if err := checkLocal(local); err != nil {
		return "", "", err
	}
	if err := checkDomain(domain); err != nil {
		return "", "", err
	}
	return local, domain, nil
}

func checkLocal(l string) error {
	switch {
	case l == "":
		return errors.New("address with an empty local part")
	case len(l) > maxLocal:
		return fmt.Errorf("local part longer than %d octets", maxLocal)
	case !utf8.ValidString(l):
		return errors.New("local part is not UTF-8")
	}
	for _, atom := range strings.Split(l, ".") {
		if atom == "" {
			return errors.New("local part with an empty dot-separated part")
		}
		for _, r := range atom {
			if r < utf8.RuneSelf {
				if !isAtext(byte(r)) {
					return fmt.Errorf("character %q not allowed in a local part", r)
				}
				continue
			}
			if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S) {
				return fmt.Errorf("character %U not allowed in a local part", r)
			}
		}
	}
	return nil
}

// isAtext reports whether c is atext (RFC 5322 §3.2.3).
func isAtext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// checkDomain checks a lower-case host name (RFC 1035 §2.3.1, RFC 1123
// §2.1).
func checkDomain(d string) error {
	if d == "" || len(d) > maxDomain {
		return fmt.Errorf("domain empty or longer than %d octets", maxDomain)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain %q is not a host name", d)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("domain %q is not a host name", d)
			}
		}
	}
	return nil
}
