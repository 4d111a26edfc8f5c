// Package srs implements the Sender Rewriting Scheme, with which a
// server that forwards mail to another domain keeps SPF passing there:
// the envelope sender becomes an address in the forwarder's own domain
// that encodes the original one, signed, so that a bounce to it can be
// sent back to the original sender and no one else.
//
// The format is that of the SRS specification (Shevek, "Sender
// Rewriting Scheme", 2004, as in Mail::SRS and libsrs2) and of postsrsd,
// so addresses made by those verify here with the same secret:
//
//	SRS0=HHHH=TT=orig.example=alice@forwarder.example
//	SRS1=HHHH=first.example==HHHH=TT=orig.example=alice@forwarder.example
//
// HHHH is the first four characters of the base64url (RFC 4648 §5)
// HMAC-SHA1 (RFC 2104) of the lower-cased fields that follow it (the
// standard alphabet's "+" and "/", which libsrs2 uses, verify as "-" and
// "_"); TT is the day of the
// rewrite, modulo 1024, in two base32 characters. A forwarder that gets
// an SRS0 address from another forwarder makes an SRS1 address, which
// keeps the first forwarder's address and so needs no timestamp of its
// own; a bounce to it goes back to the first forwarder (the "guarded"
// scheme). Hashes are compared ignoring case, as the specification
// allows, because some servers change the case of local parts.
package srs

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"postern/internal/smtp"
)

// Errors of Reverse; each wraps ErrInvalid except ErrNotSRS.
var (
	// ErrNotSRS means the address is not an SRS address at all.
	ErrNotSRS = errors.New("srs: not an SRS address")
	// ErrInvalid is wrapped by every error about an SRS address that
	// does not verify.
	ErrInvalid = errors.New("srs: invalid SRS address")
	// ErrBadHash means the hash does not match: forged or altered.
	ErrBadHash = fmt.Errorf("%w: bad hash", ErrInvalid)
	// ErrExpired means the timestamp is older than the maximum age.
	ErrExpired = fmt.Errorf("%w: expired", ErrInvalid)
	// ErrMalformed means the address does not have the SRS fields.
	ErrMalformed = fmt.Errorf("%w: malformed", ErrInvalid)
)

// hashLen is the length of the hash in an address: 4 base64 characters,
// 24 bits (as postsrsd and Mail::SRS by default).
const hashLen = 4

// maxLocal is the longest local part SMTP carries (RFC 5321 §4.5.3.1.1);
// an address that would be longer is not rewritten.
const maxLocal = 64

// day is the time unit of the timestamp.
const day = 24 * time.Hour

// timeSlots is the period of the timestamp: two base32 characters.
const timeSlots = 1024

const (
	base32Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" // RFC 4648 §5
)

// Rewriter rewrites senders and reverses the rewritten addresses. It is
// safe for concurrent use.
type Rewriter struct {
	secrets [][]byte
	maxAge  int // days
	now     func() time.Time
}

// Options configures a Rewriter.
type Options struct {
	// MaxAge is how long an SRS0 address made here stays valid, in whole
	// days from 1 to 1000. Required: Postern's configuration resolves its
	// default (srs.max_age_days), in internal/config.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns a Rewriter with secrets: the first signs, every one
// verifies. There must be at least one, none empty.
func New(secrets [][]byte, opts Options) (*Rewriter, error) {
	if len(secrets) == 0 {
		return nil, errors.New("srs: no secret")
	}
	for _, s := range secrets {
		if len(s) == 0 {
			return nil, errors.New("srs: empty secret")
		}
	}
	age := int(opts.MaxAge / day)
	if age < 1 || age > 1000 {
		return nil, fmt.Errorf("srs: maximum age %v is not from 1 to 1000 days", opts.MaxAge)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Rewriter{secrets: secrets, maxAge: age, now: now}, nil
}

// IsSRS reports whether the local part of addr (or addr itself, without
// "@") starts like an SRS address: "SRS0" or "SRS1" in any case and a
// separator ("=", "+" or "-").
func IsSRS(addr string) bool {
	local, _ := split(addr)
	return len(local) > 5 && (strings.EqualFold(local[:4], "SRS0") || strings.EqualFold(local[:4], "SRS1")) &&
		strings.IndexByte("=+-", local[4]) >= 0
}

// split returns the local part and the domain of addr, at its last "@";
// without one, addr is all local part.
func split(addr string) (local, domain string) {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i], addr[i+1:]
	}
	return addr, ""
}

// Forward returns sender rewritten into domain: an SRS0 address, or an
// SRS1 address when sender is already an SRS0 or SRS1 address of
// another domain. It fails when sender has no domain, or when the result
// would have a local part longer than 64 octets (the caller then keeps
// sender as it is, and SPF may fail at the destination).
func (r *Rewriter) Forward(sender, domain string) (string, error) {
	local, host := split(sender)
	if local == "" || host == "" || strings.ContainsAny(host, "=@") {
		return "", fmt.Errorf("srs: forward %q: not an address with a domain", sender)
	}
	var out string
	switch {
	case IsSRS(local) && strings.EqualFold(local[:4], "SRS1"):
		// SRS1=HHH=first==rest@host: keep the first forwarder and the
		// rest, sign them anew.
		first, rest, ok := strings.Cut(local[5:], "=")
		if ok {
			first, rest, ok = strings.Cut(rest, "=")
		}
		if !ok || first == "" {
			return "", fmt.Errorf("srs: forward %q: %w", sender, ErrMalformed)
		}
		out = "SRS1=" + r.hash(0, first, rest) + "=" + first + "=" + rest
	case IsSRS(local):
		// SRS0...@host: host is the first forwarder; keep its address
		// after the "SRS0".
		rest := local[4:]
		out = "SRS1=" + r.hash(0, host, rest) + "=" + host + "=" + rest
	default:
		stamp := timestamp(r.now())
		out = "SRS0=" + r.hash(0, stamp, host, local) + "=" + stamp + "=" + host + "=" + local
	}
	if len(out) > maxLocal {
		return "", fmt.Errorf("srs: forward %q: the rewritten local part would be longer than %d octets", sender, maxLocal)
	}
	return out + "@" + domain, nil
}

// Reverse returns the address an SRS address made here stands for: the
// original sender for SRS0, the first forwarder's SRS0 address for
// SRS1. The domain of addr is not checked (the caller knows its own
// domains). It fails with ErrNotSRS for an address that is not SRS, and
// with an error wrapping ErrInvalid for one that does not verify:
// ErrBadHash, ErrExpired or ErrMalformed.
func (r *Rewriter) Reverse(addr string) (string, error) {
	local, _ := split(addr)
	if !IsSRS(local) {
		return "", ErrNotSRS
	}
	if strings.EqualFold(local[:4], "SRS1") {
		// SRS1=HHHH=first==HHHH=TT=host=user
		h, rest, ok := strings.Cut(local[5:], "=")
		first, srs0, ok2 := strings.Cut(rest, "=")
		if !ok || !ok2 || first == "" || srs0 == "" {
			return "", ErrMalformed
		}
		if !r.check(h, first, srs0) {
			return "", ErrBadHash
		}
		return "SRS0" + srs0 + "@" + first, nil
	}
	// SRS0=HHHH=TT=host=user
	f := strings.SplitN(local[5:], "=", 4)
	if len(f) != 4 || f[0] == "" || f[2] == "" || f[3] == "" {
		return "", ErrMalformed
	}
	h, stamp, host, user := f[0], f[1], f[2], f[3]
	then, ok := parseTimestamp(stamp)
	if !ok {
		return "", ErrMalformed
	}
	if !r.check(h, stamp, host, user) {
		return "", ErrBadHash
	}
	// The age in days, modulo the timestamp's period: a stamp from the
	// future is as old as a stamp from almost 1024 days ago.
	if age := (dayNumber(r.now()) - then + timeSlots) % timeSlots; age > r.maxAge {
		return "", ErrExpired
	}
	return user + "@" + host, nil
}

// hash returns the hash of fields with secret i: the base64 encoding of
// their lower-cased concatenation's HMAC-SHA1, cut to hashLen. Only
// ASCII letters are lowered (as libsrs2's tolower): strings.ToLower
// would give "wor\u212A.test", a Kelvin sign, the hash of work.test.
func (r *Rewriter) hash(i int, fields ...string) string {
	m := hmac.New(sha1.New, r.secrets[i])
	for _, f := range fields {
		m.Write([]byte(smtp.LowerASCII(f)))
	}
	sum := m.Sum(nil)
	var b [hashLen]byte
	for j := range hashLen { // 6 bits each, from the start of sum
		bit := j * 6
		v := (uint(sum[bit/8])<<8 | uint(sum[bit/8+1])) >> (10 - bit%8) & 0x3f
		b[j] = base64Chars[v]
	}
	return string(b[:])
}

// check reports whether h is the hash of fields with one of the
// secrets, ignoring case and the base64 alphabet; a hash shorter than
// hashLen never is, a longer one is compared on its first hashLen
// characters.
func (r *Rewriter) check(h string, fields ...string) bool {
	if len(h) < hashLen {
		return false
	}
	got := foldHash(h[:hashLen])
	ok := 0
	for i := range r.secrets {
		ok |= subtle.ConstantTimeCompare(got, foldHash(r.hash(i, fields...)))
	}
	return ok == 1
}

// foldHash lower-cases h and maps the standard base64 alphabet's "+"
// and "/" to base64url's "-" and "_".
func foldHash(h string) []byte {
	b := []byte(smtp.LowerASCII(h))
	for i, c := range b {
		switch c {
		case '+':
			b[i] = '-'
		case '/':
			b[i] = '_'
		}
	}
	return b
}

// dayNumber is t's day since the Unix epoch, modulo 1024.
func dayNumber(t time.Time) int {
	return int(t.Unix()/int64(day/time.Second)) % timeSlots
}

// timestamp encodes t's day number in two base32 characters.
func timestamp(t time.Time) string {
	n := dayNumber(t)
	return string([]byte{base32Chars[n>>5&31], base32Chars[n&31]})
}

// parseTimestamp decodes two base32 characters, in any case.
func parseTimestamp(s string) (int, bool) {
	if len(s) != 2 {
		return 0, false
	}
	n := 0
	for i := 0; i < 2; i++ {
		v := strings.IndexByte(base32Chars, upper(s[i]))
		if v < 0 {
			return 0, false
		}
		n = n<<5 | v
	}
	return n, true
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
