package userdb

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
	"unicode"
	"unicode/utf8"

	"postern/internal/addrkey"
	"postern/internal/sasl"
	"postern/internal/smtp"
)

// Limits on what the directory stores.
const (
	// MaxAddressLen is the longest address, in octets (RFC 5321 §4.5.3.1.3:
	// a path is at most 256 octets including the angle brackets).
	MaxAddressLen = 254
	// MaxLocalPartLen is the longest local part (RFC 5321 §4.5.3.1.1).
	MaxLocalPartLen = 64
	// MaxPasswordLen is the longest password, in octets: the longest PLAIN
	// and LOGIN carry (sasl.MaxFieldLen, RFC 4616 §2), so that every
	// password that can be set can also be used to log in.
	MaxPasswordLen = sasl.MaxFieldLen
	// GeneratedPasswordLen is the length of GeneratePassword's passwords.
	GeneratedPasswordLen = 24
)

// passwordAlphabet has no characters that read alike (0 O o, 1 l I), so a
// generated password survives being read aloud or copied by hand. 55
// symbols: 24 characters carry about 138 bits.
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// NormalizeAddress validates addr as a user or alias address and returns it
// with the domain's ASCII letters lower-cased and the local part as given.
// It accepts exactly one "@", a local part of 1 to 64 octets that is a
// dot-string without "/" or "\" (it becomes a mailbox path), and a domain
// of labels of letters, digits, hyphens or non-ASCII UTF-8 that is a valid
// IDNA2008 name (U-labels in NFC, no upper-case non-ASCII letter, no
// character such as the Kelvin sign that would stand for another;
// addrkey.Domain); no spaces or control characters anywhere, at most 254
// octets in all. Errors wrap ErrInvalidAddress.
func NormalizeAddress(addr string) (string, error) {
	if len(addr) > MaxAddressLen {
		return "", fmt.Errorf("userdb: address longer than %d octets: %w", MaxAddressLen, ErrInvalidAddress)
	}
	if !utf8.ValidString(addr) {
		return "", fmt.Errorf("userdb: address is not UTF-8: %w", ErrInvalidAddress)
	}
	for _, r := range addr {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			return "", fmt.Errorf("userdb: address %q has a space or control character: %w", addr, ErrInvalidAddress)
		}
	}
	if strings.Count(addr, "@") != 1 {
		return "", fmt.Errorf("userdb: address %q needs exactly one @: %w", addr, ErrInvalidAddress)
	}
	local, domain, _ := strings.Cut(addr, "@")
	if err := checkLocalPart(local); err != nil {
		return "", fmt.Errorf("userdb: address %q: %w", addr, err)
	}
	domain, err := normalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("userdb: address %q: %w", addr, err)
	}
	return local + "@" + domain, nil
}

// normalizeDomain checks a domain as NormalizeAddress does and returns it
// with its ASCII letters lower-cased.
func normalizeDomain(domain string) (string, error) {
	domain = smtp.LowerASCII(domain)
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	if _, err := addrkey.Domain(domain); err != nil {
		return "", fmt.Errorf("%v: %w", err, ErrInvalidAddress)
	}
	return domain, nil
}

// checkLocalPart checks an unquoted local part (RFC 5321 §4.1.2
// Dot-string), refusing path separators and quotes.
func checkLocalPart(local string) error {
	switch {
	case local == "":
		return fmt.Errorf("empty local part: %w", ErrInvalidAddress)
	case len(local) > MaxLocalPartLen:
		return fmt.Errorf("local part longer than %d octets: %w", MaxLocalPartLen, ErrInvalidAddress)
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return fmt.Errorf("local part is not a dot-string: %w", ErrInvalidAddress)
	case strings.ContainsAny(local, "/\\\"<>()[],;:"):
		return fmt.Errorf("local part has a forbidden character: %w", ErrInvalidAddress)
	}
	return nil
}

// checkDomain checks a lower-cased domain name: dot-separated labels of 1
// to 63 octets, each letters, digits, hyphens (not first or last) or
// non-ASCII.
func checkDomain(domain string) error {
	if domain == "" {
		return fmt.Errorf("empty domain: %w", ErrInvalidAddress)
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("domain label is empty, too long or starts or ends with '-': %w", ErrInvalidAddress)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r >= 0x80) {
				return fmt.Errorf("domain has a forbidden character: %w", ErrInvalidAddress)
			}
		}
	}
	return nil
}

// CheckNewPassword applies the rules for a password being set: not empty,
// at most MaxPasswordLen octets, valid UTF-8 (SASL carries UTF-8,
// RFC 4616 §2), no NUL. Errors wrap ErrInvalidPassword and never contain
// the password.
func CheckNewPassword(password string) error {
	// The rules of a password that logs in (MaxPasswordLen is
	// sasl.MaxFieldLen).
	switch p := sasl.FieldProblem([]byte(password)); p {
	case "":
		return nil
	case "empty":
		return fmt.Errorf("userdb: empty password: %w", ErrInvalidPassword)
	case "not UTF-8":
		return fmt.Errorf("userdb: password is not UTF-8: %w", ErrInvalidPassword)
	default:
		return fmt.Errorf("userdb: password %s: %w", p, ErrInvalidPassword)
	}
}

// GeneratePassword returns a new random password of GeneratedPasswordLen
// characters from an alphabet without look-alike characters, drawn
// uniformly from crypto/rand (for the postmaster's first password).
func GeneratePassword() (string, error) {
	var b strings.Builder
	max := big.NewInt(int64(len(passwordAlphabet)))
	for range GeneratedPasswordLen {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("userdb: generate password: %w", err)
		}
		b.WriteByte(passwordAlphabet[n.Int64()])
	}
	return b.String(), nil
}

// userKey is the lookup key of an address: addrkey.Key, the local part
// in NFC with ASCII letters lower-cased and the domain as an A-label;
// strings.ToLower would make "alice@wor\u212A.test" the key of
// alice@work.test. An address whose domain is not a valid name gets a
// key that matches only itself.
func userKey(addr string) string { return addrkey.Key(addr) }

// domainKey is the lookup key of a domain (addrkey.DomainKey).
func domainKey(domain string) string { return addrkey.DomainKey(domain) }
