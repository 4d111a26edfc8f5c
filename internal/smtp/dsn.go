package smtp

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The DSN extension (RFC 3461): the parameters of MAIL and RCPT that ask
// for delivery status notifications, and the xtext they travel in.

// Notify is the NOTIFY parameter of one RCPT (RFC 3461 §4.1): NEVER, or
// a set of the conditions SUCCESS, FAILURE and DELAY. The zero value
// means the client gave none.
type Notify uint8

// The NOTIFY keywords.
const (
	NotifyNever Notify = 1 << iota
	NotifySuccess
	NotifyFailure
	NotifyDelay
)

// NotifyDefault is what a recipient without NOTIFY gets. RFC 3461 §4.1
// lets a server act as if NOTIFY=FAILURE or NOTIFY=FAILURE,DELAY was
// given; Postern warns of delays, as it did before it offered DSN.
const NotifyDefault = NotifyFailure | NotifyDelay

// Wants reports whether a notification for condition c (NotifySuccess,
// NotifyFailure or NotifyDelay) is due: NotifyDefault's when n is zero.
func (n Notify) Wants(c Notify) bool {
	if n == 0 {
		n = NotifyDefault
	}
	return n&NotifyNever == 0 && n&c != 0
}

// String returns n as a NOTIFY value ("NEVER", "SUCCESS,DELAY"); "" for
// the zero value.
func (n Notify) String() string {
	if n&NotifyNever != 0 {
		return "NEVER"
	}
	var parts []string
	for _, k := range []struct {
		bit  Notify
		name string
	}{{NotifySuccess, "SUCCESS"}, {NotifyFailure, "FAILURE"}, {NotifyDelay, "DELAY"}} {
		if n&k.bit != 0 {
			parts = append(parts, k.name)
		}
	}
	return strings.Join(parts, ",")
}

// RcptDSN is what one RCPT said about notifications (RFC 3461 §4.1,
// §4.2).
type RcptDSN struct {
	// Notify is the NOTIFY parameter; zero when the client gave none.
	Notify Notify
	// ORcpt is the ORCPT parameter, the original recipient, as
	// "addr-type;address" with the address decoded (xtext, or RFC 6533
	// §3's \x{} escapes for the "utf-8" type): "rfc822;bob@example.org".
	// "" when the client gave none.
	ORcpt string
}

// Length limits of RFC 3461 on the encoded parameter values.
const (
	// MaxEnvID is the longest ENVID value (RFC 3461 §4.4).
	MaxEnvID = 100
	// MaxORcpt is the longest ORCPT value (RFC 3461 §4.2).
	MaxORcpt = 500
)

// Command line allowances of the DSN extension: a MAIL or RCPT line
// with its parameters may be this much longer than 512 octets (RFC 3461
// §5: RET and ENVID add up to 110 characters to MAIL, NOTIFY and ORCPT
// up to 500 to RCPT).
const (
	DSNMailExtra = 110
	DSNRcptExtra = 500
)

// ParseNotify parses a NOTIFY value (RFC 3461 §4.1): "NEVER" alone, or
// a comma-separated list of SUCCESS, FAILURE and DELAY, each at most
// once, in any case. Anything else is a 501 5.5.4 *Error.
func ParseNotify(v string) (Notify, error) {
	bad := syntaxError("Bad NOTIFY parameter syntax")
	if v == "" {
		return 0, bad
	}
	var n Notify
	for kw := range strings.SplitSeq(v, ",") {
		var bit Notify
		switch {
		case asciiEqualFold(kw, "NEVER"):
			bit = NotifyNever
		case asciiEqualFold(kw, "SUCCESS"):
			bit = NotifySuccess
		case asciiEqualFold(kw, "FAILURE"):
			bit = NotifyFailure
		case asciiEqualFold(kw, "DELAY"):
			bit = NotifyDelay
		default:
			return 0, bad
		}
		if n&bit != 0 {
			return 0, bad
		}
		n |= bit
	}
	// RFC 3461 §4.1: NEVER cannot be combined with anything.
	if n&NotifyNever != 0 && n != NotifyNever {
		return 0, bad
	}
	return n, nil
}

// ParseRet parses a RET value (RFC 3461 §4.3), in any case, and returns
// "FULL" or "HDRS"; anything else is a 501 5.5.4 *Error.
func ParseRet(v string) (string, error) {
	switch {
	case asciiEqualFold(v, "FULL"):
		return "FULL", nil
	case asciiEqualFold(v, "HDRS"):
		return "HDRS", nil
	}
	return "", syntaxError("Bad RET parameter syntax")
}

// ParseEnvID decodes an ENVID value (RFC 3461 §4.4): xtext of at most
// MaxEnvID characters, standing for printable US-ASCII (spaces allowed,
// no control character, which would end a header field of the DSN).
// Anything else is a 501 5.5.4 *Error.
func ParseEnvID(v string) (string, error) {
	bad := syntaxError("Bad ENVID parameter syntax")
	if v == "" || len(v) > MaxEnvID {
		return "", bad
	}
	s, ok := xtextDecode(v)
	if !ok {
		return "", bad
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return "", bad
		}
	}
	return s, nil
}

// ParseORcpt decodes an ORCPT value (RFC 3461 §4.2): "addr-type;" then
// the original address, at most MaxORcpt characters. The address is
// xtext, except for the "utf-8" type, whose address uses RFC 6533 §3's
// \x{HEX} escapes and, after MAIL ... SMTPUTF8, UTF-8 as it is (the
// command parser lets non-ASCII values through only then). The decoded
// address must be valid UTF-8 without control characters (it goes into
// the Original-Recipient field of a DSN). It returns
// "addr-type;address"; anything else is a 501 5.5.4 *Error. As RFC 3461
// §4.2 says, the address need not follow the syntax of its type.
func ParseORcpt(v string) (string, error) {
	bad := syntaxError("Bad ORCPT parameter syntax")
	if len(v) > MaxORcpt {
		return "", bad
	}
	typ, addr, ok := strings.Cut(v, ";")
	if !ok || !validAddrType(typ) || addr == "" {
		return "", bad
	}
	var s string
	if asciiEqualFold(typ, "utf-8") {
		s, ok = uxtextDecode(addr)
	} else {
		s, ok = xtextDecode(addr)
	}
	if !ok || !validUTF8Text(s) {
		return "", bad
	}
	o := typ + ";" + s
	// Relayed, the value is encoded again (EncodeORcpt): raw UTF-8 taken
	// here grows to \x{HEX} escapes, past RFC 3461's limit and a next
	// hop's line length. Refused now rather than failed there.
	if len(EncodeORcpt(o)) > MaxORcpt {
		return "", bad
	}
	return o, nil
}

// validAddrType reports whether s is an addr-type (RFC 3461 §4.2: an
// atom, RFC 5322 §3.2.3), which as an esmtp-value holds no "=".
func validAddrType(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || c == '=' || !isAtext(c) {
			return false
		}
	}
	return true
}

// EncodeORcpt returns the ORCPT value for orcpt, as RcptDSN.ORcpt holds
// it, to pass on to the next hop: the address as xtext, or for the
// "utf-8" type with RFC 6533 §3's \x{HEX} escapes (utf-8-addr-xtext,
// which needs no SMTPUTF8).
func EncodeORcpt(orcpt string) string {
	typ, addr, _ := strings.Cut(orcpt, ";")
	if asciiEqualFold(typ, "utf-8") {
		return typ + ";" + uxtextEncode(addr)
	}
	return typ + ";" + XtextEncode(addr)
}

// XtextEncode returns s as xtext (RFC 3461 §4): printable ASCII but "+"
// and "=" as it is, every other byte as "+" and two upper-case
// hexadecimal digits.
func XtextEncode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '!' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('+')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&15])
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

// xtextDecode decodes xtext (RFC 3461 §4): xchar is "!" to "~" but "+"
// and "=", hexchar is "+" and two upper-case hexadecimal digits. It
// reports false for anything else.
func xtextDecode(s string) (string, bool) {
	if strings.IndexByte(s, '+') < 0 {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < '!' || c > '~' || c == '=' {
				return "", false
			}
		}
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) {
				return "", false
			}
			hi, ok1 := upperHexValue(s[i+1])
			lo, ok2 := upperHexValue(s[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			b = append(b, hi<<4|lo)
			i += 2
		case c < '!' || c > '~' || c == '=':
			return "", false
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

// upperHexValue returns the value of an upper-case hexadecimal digit.
func upperHexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// uxtextDecode decodes the address of an ORCPT of type "utf-8" (RFC 6533
// §3, utf-8-addr-xtext and utf-8-addr-unitext): printable ASCII but "="
// and "\" as it is, UTF-8 as it is, and "\x{HEX}" (2 to 6 hexadecimal
// digits, either case) for any Unicode scalar value. A "+" stands for
// itself. It reports false for anything else.
func uxtextDecode(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if !strings.HasPrefix(s[i:], `\x{`) {
				return "", false
			}
			end := strings.IndexByte(s[i+3:], '}')
			if end < 2 || end > 6 {
				return "", false
			}
			v, err := strconv.ParseUint(s[i+3:i+3+end], 16, 32)
			if err != nil || !utf8.ValidRune(rune(v)) {
				return "", false
			}
			b.WriteRune(rune(v))
			i += 3 + end + 1
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError {
				return "", false
			}
			b.WriteString(s[i : i+size])
			i += size
		case c < '!' || c > '~' || c == '=':
			return "", false
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), true
}

// uxtextEncode returns addr as utf-8-addr-xtext (RFC 6533 §3): printable
// ASCII but "+", "=" and "\" as it is, every other character as
// "\x{HEX}".
func uxtextEncode(addr string) string {
	var b strings.Builder
	for _, r := range addr {
		if r >= '!' && r <= '~' && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
			continue
		}
		// HEXPOINT: at least two digits, no more leading zeros.
		h := strings.ToUpper(strconv.FormatUint(uint64(r), 16))
		if len(h) < 2 {
			h = "0" + h
		}
		b.WriteString(`\x{` + h + "}")
	}
	return b.String()
}
