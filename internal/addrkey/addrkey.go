// Package addrkey gives the keys by which Postern compares mail domains
// and addresses, wherever a comparison decides whether mail is local or
// whose an address is: two addresses are the same when their keys are.
//
// Unicode case folding (strings.ToLower, strings.EqualFold) is not such a
// key: it maps U+212A KELVIN SIGN to "k", so that "alice@wor\u212A.test"
// would count as the local domain work.test, and it folds non-ASCII local
// parts that RFC 6531 leaves to the receiving system. Instead:
//
//   - A domain is compared in its A-label form (RFC 5890), converted with
//     IDNA2008 under a strict profile that maps nothing (UTS #46, the
//     registration profile of golang.org/x/net/idna): upper-case ASCII is
//     lowered first, as DNS ignores its case (RFC 4343), and any other
//     character that is not a valid part of a U-label (the Kelvin sign, a
//     long s, upper-case non-ASCII, full-width letters, a label not in
//     NFC) makes the domain invalid rather than equal to another.
//   - A local part is normalized to NFC (golang.org/x/text/unicode/norm)
//     and its ASCII letters are lowered (RFC 5321 §2.4 lets a server treat
//     local parts as case-insensitive; Postern does for ASCII); every
//     other character is compared exactly as written.
package addrkey

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"postern/internal/smtp"
)

// ErrInvalidDomain is wrapped by Domain's errors.
var ErrInvalidDomain = errors.New("addrkey: not a valid domain")

// profile converts domains to A-labels strictly: no mapping, IDNA2008
// validity, the bidi and joiner rules, hyphen rules, DNS lengths.
var profile = idna.New(idna.ValidateForRegistration(), idna.VerifyDNSLength(true))

// Domain returns the key of a domain: its A-label form in lower case,
// without a trailing dot. An address literal ("[192.0.2.1]",
// "[IPv6:...]") is returned with its ASCII letters lowered. A domain that
// is not a valid IDNA2008 name gives an error wrapping ErrInvalidDomain.
func Domain(d string) (string, error) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || strings.HasSuffix(d, ".") {
		return "", fmt.Errorf("%w: %q has an empty label", ErrInvalidDomain, d)
	}
	if d[0] == '[' {
		// RFC 5321 §4.1.3 address literal, checked by the parser.
		if len(d) < 3 || d[len(d)-1] != ']' || !smtp.IsASCII(d) || strings.ContainsAny(d[1:len(d)-1], "[]\\ ") {
			return "", fmt.Errorf("%w: bad address literal %q", ErrInvalidDomain, d)
		}
		return smtp.LowerASCII(d), nil
	}
	d = smtp.LowerASCII(d)
	if isLDH(d) && !strings.Contains(d, "xn--") {
		return d, nil // the rule: nothing for IDNA to do
	}
	a, err := profile.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrInvalidDomain, d, err)
	}
	return a, nil
}

// Local returns the key of a local part: NFC, ASCII letters lowered,
// every other character as written. It is idempotent.
func Local(l string) string {
	if smtp.IsASCII(l) {
		return smtp.LowerASCII(l)
	}
	// NFC first, as a canonical equivalent may hold an upper-case ASCII
	// letter (U+212A is K); lowering can make a lower-case letter and a
	// following mark composable (J+U+030C is not NFC-composed, j+U+030C
	// is): NFC again after.
	return norm.NFC.String(smtp.LowerASCII(norm.NFC.String(l)))
}

// Address returns the key of "local@domain" (split at the last "@"):
// Local of the local part, "@", Domain of the domain. An address without
// "@" is a local part alone (as the bare "postmaster"). It fails as
// Domain does.
func Address(a string) (string, error) {
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return Local(a), nil
	}
	d, err := Domain(a[i+1:])
	if err != nil {
		return "", err
	}
	return Local(a[:i]) + "@" + d, nil
}

// Key returns the key of "local@domain" as Address does; for an address
// whose domain is not a valid name, a key that matches only the same
// address up to ASCII case (a NUL, which no address holds, then the
// address with its ASCII letters lowered). It never fails: it suits maps
// that must take hostile input, such as usernames claimed by a client,
// without ever making two addresses one.
func Key(a string) string {
	k, err := Address(a)
	if err != nil {
		return "\x00" + smtp.LowerASCII(a)
	}
	return k
}

// DomainKey is Key for a domain: Domain's key, or a key that matches
// only the same domain up to ASCII case.
func DomainKey(d string) string {
	k, err := Domain(d)
	if err != nil {
		return "\x00" + smtp.LowerASCII(d)
	}
	return k
}

// DomainOf returns the domain of "local@domain" as written (after the
// last "@"), "" when there is no "@". It is no key: compare what it
// returns with Domain or DomainKey.
func DomainOf(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return ""
	}
	return a[i+1:]
}

// isLDH reports whether d holds only ASCII letters, digits, hyphens and
// dots, with labels of 1 to 63 octets that neither start nor end with a
// hyphen, 253 octets at most (RFC 1035 §2.3.1).
func isLDH(d string) bool {
	if len(d) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(d); i++ {
		if i < len(d) && d[i] != '.' {
			c := d[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
			continue
		}
		label := d[start:i]
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}
