package smtp

import (
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of RFC 5321 §4.5.3.1 on addresses, in octets.
const (
	maxLocal  = 64  // RFC 5321 §4.5.3.1.1
	maxDomain = 255 // RFC 5321 §4.5.3.1.2
	maxPath   = 256 // RFC 5321 §4.5.3.1.3, angle brackets included
	maxLabel  = 63  // RFC 1035 §2.3.4
)

// Address is a mailbox "local@domain". Local is the local part as sent,
// with quoted-string quoting removed; Domain is lower-cased (ASCII
// letters only, so U-labels stay as sent), or an address literal in
// canonical form like "[192.0.2.1]" or "[IPv6:2001:db8::1]".
type Address struct {
	Local  string
	Domain string
}

// String returns the address in RFC 5321 form, quoting the local part when
// it is not a dot-string (RFC 5321 §4.1.2; a backslash escapes '"' and
// '\'). An Address from ParseAddress gives back the same Address when its
// String is parsed again. The domain and its "@" are left out when Domain
// is "" (as for Postmaster).
func (a Address) String() string {
	var b strings.Builder
	b.Grow(len(a.Local) + len(a.Domain) + 3)
	if isDotString(a.Local) {
		b.WriteString(a.Local)
	} else {
		b.WriteByte('"')
		for i := 0; i < len(a.Local); i++ {
			if c := a.Local[i]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(a.Local[i])
		}
		b.WriteByte('"')
	}
	if a.Domain != "" {
		b.WriteByte('@')
		b.WriteString(a.Domain)
	}
	return b.String()
}

// Params are the ESMTP parameters of MAIL or RCPT: keys upper-cased,
// values as sent ("" when the keyword had no "=value"). The parsers return
// a non-nil map, empty when there were none.
type Params map[string]string

// Path is a parsed reverse-path or forward-path.
type Path struct {
	Addr Address
	Null bool // "<>" (reverse-path only)
	// Postmaster is set for RCPT TO:<Postmaster> without a domain
	// (RFC 5321 §4.1.1.3, case-insensitive); Addr is then {"postmaster", ""}.
	Postmaster bool
}

// ParseMailFrom parses the argument of MAIL ("FROM:<path> params",
// RFC 5321 §4.1.1.2). The keyword is case-insensitive; one space before
// "<" is tolerated; the angle brackets are required. A source route
// ("<@a,@b:user@d>") is accepted and ignored (RFC 5321 §C).
//
// utf8 is whether the server supports SMTPUTF8 (RFC 6531). A non-ASCII
// address is allowed only when utf8 is true and this MAIL's parameters
// include SMTPUTF8; ParseMailFrom looks for it itself. Parameter values
// may then hold UTF-8 too (RFC 6531 §3.3).
//
// Parameters are checked for syntax only (RFC 5321 §4.1.2: esmtp-keyword
// and esmtp-value) and for duplicates; what they mean (SIZE, BODY, unknown
// keywords) is for the session to judge.
//
// Errors are *Error: 501 5.5.4 for bad syntax of the command or its
// parameters (including a duplicate keyword), 501 5.1.7 for a bad
// address, 553 5.6.7 for a non-ASCII address without SMTPUTF8 (RFC 6531
// §3.5).
func ParseMailFrom(arg string, utf8 bool) (Path, Params, error) {
	return parsePathArg(arg, false, utf8)
}

// ParseRcptTo parses the argument of RCPT ("TO:<path> params",
// RFC 5321 §4.1.1.3) like ParseMailFrom, with 501 5.1.3 for a bad
// address; "<>" is refused (501 5.1.3); "<Postmaster>" without a domain,
// in any case, gives a Path with Postmaster set; a source route
// ("<@a,@b:user@d>") is accepted and ignored (RFC 5321 §C).
//
// utf8 is whether the current transaction's MAIL carried SMTPUTF8: only
// then may the address and parameter values be non-ASCII; otherwise a
// non-ASCII address is 553 5.6.7 (RFC 6531 §3.5).
func ParseRcptTo(arg string, utf8 bool) (Path, Params, error) {
	return parsePathArg(arg, true, utf8)
}

// ParseAddress parses "local@domain" (no angle brackets) with the limits
// of RFC 5321 §4.5.3.1 (local part 64 octets, domain 255). The local part
// is a dot-string or a quoted-string; the domain is a name of LDH labels
// (or U-labels when utf8), or an address literal "[IPv4]" or "[IPv6:...]"
// (RFC 5321 §4.1.3). utf8 allows non-ASCII, as valid UTF-8 without
// control characters (RFC 6531 §3.3). Errors are *Error: 553 5.6.7 for
// non-ASCII when utf8 is false, 501 5.1.3 otherwise, its Message naming
// the fault.
func ParseAddress(s string, utf8 bool) (Address, error) {
	a, fault := parseMailbox(s, utf8)
	switch {
	case fault == faultNonASCII:
		return Address{}, errNonASCII()
	case fault != "":
		return Address{}, &Error{Code: 501, Enhanced: "5.1.3", Message: "Bad address syntax: " + fault}
	}
	return a, nil
}

// Faults parseMailbox and its helpers report, shown to the client.
const (
	faultNonASCII    = "non-ASCII address without SMTPUTF8"
	faultBadUTF8     = "invalid UTF-8"
	faultNoDomain    = "missing domain"
	faultLocalChar   = "bad character in local part"
	faultLocalDots   = "empty atom in local part"
	faultLocalLong   = "local part longer than 64 octets"
	faultQuoted      = "unterminated quoted string"
	faultDomainLong  = "domain longer than 255 octets"
	faultDomainLabel = "bad domain label"
	faultLiteral     = "bad address literal"
	faultSourceRoute = "bad source route"
	faultPathLong    = "path longer than 256 octets"
	faultNullRcpt    = "null recipient not allowed"
)

// errNonASCII is the RFC 6531 §3.5 reply to a non-ASCII address without
// SMTPUTF8.
func errNonASCII() *Error {
	return &Error{Code: 553, Enhanced: "5.6.7", Message: "Non-ASCII address not allowed without SMTPUTF8"}
}

// syntaxError returns a 501 5.5.4 reply (RFC 5321 §4.2.3, RFC 3463 §3.6).
func syntaxError(msg string) *Error {
	return &Error{Code: 501, Enhanced: "5.5.4", Message: msg}
}

// parsePathArg parses the argument of MAIL (rcpt false) or RCPT.
func parsePathArg(arg string, rcpt, utf8 bool) (Path, Params, error) {
	keyword, usage, enhanced, what := "FROM:", "Syntax: MAIL FROM:<address> [parameters]", "5.1.7", "Bad sender address syntax: "
	if rcpt {
		keyword, usage, enhanced, what = "TO:", "Syntax: RCPT TO:<address> [parameters]", "5.1.3", "Bad recipient address syntax: "
	}
	if len(arg) < len(keyword) || !asciiEqualFold(arg[:len(keyword)], keyword) {
		return Path{}, nil, syntaxError(usage)
	}
	rest := arg[len(keyword):]
	if rest != "" && rest[0] == ' ' {
		rest = rest[1:] // tolerated: "FROM: <x>"
	}
	if rest == "" || rest[0] != '<' {
		return Path{}, nil, syntaxError(usage)
	}
	end := closingBracket(rest)
	if end < 0 {
		return Path{}, nil, syntaxError(usage)
	}
	inner, after := rest[1:end], rest[end+1:]
	if after != "" && after[0] != ' ' {
		return Path{}, nil, syntaxError(usage)
	}
	params, paramsNonASCII, perr := parseParams(after)
	if perr != nil {
		return Path{}, nil, perr
	}
	allowUTF8 := utf8
	if !rcpt {
		_, ok := params["SMTPUTF8"]
		allowUTF8 = utf8 && ok
	}
	if paramsNonASCII && !allowUTF8 {
		return Path{}, nil, syntaxError("Non-ASCII parameter value not allowed without SMTPUTF8")
	}
	bad := func(fault string) (Path, Params, error) {
		if fault == faultNonASCII {
			return Path{}, nil, errNonASCII()
		}
		return Path{}, nil, &Error{Code: 501, Enhanced: enhanced, Message: what + fault}
	}
	if len(inner)+2 > maxPath {
		return bad(faultPathLong)
	}
	if inner == "" {
		if rcpt {
			return bad(faultNullRcpt)
		}
		return Path{Null: true}, params, nil
	}
	// RFC 5321 §4.1.1.3: the bare "Postmaster" recipient, any case.
	if rcpt && asciiEqualFold(inner, "postmaster") {
		return Path{Postmaster: true, Addr: Address{Local: "postmaster"}}, params, nil
	}
	if !allowUTF8 && hasNonASCII(inner) {
		return bad(faultNonASCII)
	}
	mailbox, fault := stripSourceRoute(inner, allowUTF8)
	if fault != "" {
		return bad(fault)
	}
	a, fault := parseMailbox(mailbox, allowUTF8)
	if fault != "" {
		return bad(fault)
	}
	return Path{Addr: a}, params, nil
}

// closingBracket returns the index in s (which starts with '<') of the
// '>' that closes the path, skipping quoted strings, or -1.
func closingBracket(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case '\\':
			if inQuote {
				i++
			}
		case '>':
			if !inQuote {
				return i
			}
		}
	}
	return -1
}

// stripSourceRoute removes a leading A-d-l ("@a,@b:", RFC 5321 §4.1.2)
// from a path after checking its domains; RFC 5321 §C says to ignore it.
func stripSourceRoute(s string, utf8 bool) (string, string) {
	if s[0] != '@' {
		return s, ""
	}
	colon := strings.IndexByte(s, ':')
	if colon < 0 {
		return "", faultSourceRoute
	}
	adl := s[:colon]
	for adl != "" {
		if adl[0] != '@' {
			return "", faultSourceRoute
		}
		d := adl[1:]
		if i := strings.IndexByte(d, ','); i >= 0 {
			d, adl = d[:i], d[i+1:]
			if adl == "" {
				return "", faultSourceRoute
			}
		} else {
			adl = ""
		}
		if d == "" || d[0] == '[' {
			return "", faultSourceRoute
		}
		if _, fault := parseDomain(d, utf8); fault != "" {
			return "", fault
		}
	}
	return s[colon+1:], ""
}

// parseParams parses " KEY[=VALUE] ..." (RFC 5321 §4.1.2 esmtp-param,
// separated by one or more spaces). nonASCII reports whether a value held
// UTF-8 (valid, without control characters), which is allowed only with
// SMTPUTF8 (RFC 6531 §3.3).
func parseParams(s string) (p Params, nonASCII bool, err *Error) {
	p = Params{}
	for s != "" {
		if s[0] == ' ' {
			s = s[1:]
			continue
		}
		field := s
		if i := strings.IndexByte(s, ' '); i >= 0 {
			field, s = s[:i], s[i:]
		} else {
			s = ""
		}
		key, value, hasValue := strings.Cut(field, "=")
		if !validKeyword(key) {
			return nil, false, syntaxError("Bad parameter syntax")
		}
		if hasValue {
			ok, na := validValue(value)
			if !ok {
				return nil, false, syntaxError("Bad parameter value for " + strings.ToUpper(key))
			}
			nonASCII = nonASCII || na
		}
		key = strings.ToUpper(key)
		if _, dup := p[key]; dup {
			return nil, false, syntaxError("Duplicate parameter " + key)
		}
		p[key] = value
	}
	return p, nonASCII, nil
}

// validKeyword reports whether s is an esmtp-keyword:
// (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") (RFC 5321 §4.1.2).
func validKeyword(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// validValue reports whether s is an esmtp-value, 1*(%d33-60 / %d62-126)
// (RFC 5321 §4.1.2) or UTF-8 without control characters (RFC 6531 §3.3),
// and whether it held non-ASCII.
func validValue(s string) (ok, nonASCII bool) {
	if s == "" {
		return false, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			nonASCII = true
			continue
		}
		if c < 33 || c == '=' || c > 126 {
			return false, false
		}
	}
	if nonASCII && !validUTF8Text(s) {
		return false, false
	}
	return true, nonASCII
}

// parseMailbox parses "local@domain" (RFC 5321 §4.1.2 Mailbox), returning
// a fault ("" for none) to show the client.
func parseMailbox(s string, utf8 bool) (Address, string) {
	if hasNonASCII(s) {
		if !utf8 {
			return Address{}, faultNonASCII
		}
		if !validUTF8Text(s) {
			return Address{}, faultBadUTF8
		}
	}
	var (
		local string
		rest  string
	)
	if s != "" && s[0] == '"' {
		var end int
		var fault string
		local, end, fault = parseQuoted(s)
		if fault != "" {
			return Address{}, fault
		}
		if end > maxLocal {
			return Address{}, faultLocalLong
		}
		rest = s[end:]
	} else {
		i := 0
		for i < len(s) && (isAtext(s[i]) || s[i] == '.') {
			i++
		}
		local, rest = s[:i], s[i:]
		if rest != "" && rest[0] != '@' {
			return Address{}, faultLocalChar
		}
		if !isDotString(local) {
			if local == "" {
				return Address{}, faultLocalChar
			}
			return Address{}, faultLocalDots
		}
		if len(local) > maxLocal {
			return Address{}, faultLocalLong
		}
	}
	if rest == "" {
		return Address{}, faultNoDomain
	}
	if rest[0] != '@' {
		return Address{}, faultLocalChar
	}
	domain, fault := parseDomain(rest[1:], utf8)
	if fault != "" {
		return Address{}, fault
	}
	return Address{Local: local, Domain: domain}, ""
}

// parseQuoted parses the quoted-string at the start of s (RFC 5321 §4.1.2
// Quoted-string, with RFC 6531 §3.3's UTF-8 in qtextSMTP; s has been
// checked for valid UTF-8 already). It returns the content unquoted and
// the index just after the closing quote.
func parseQuoted(s string) (string, int, string) {
	var b []byte // the content once a quoted-pair needs a copy
	escaped := false
	start := 1
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			if !escaped {
				return s[1:i], i + 1, ""
			}
			b = append(b, s[start:i]...)
			return string(b), i + 1, ""
		case c == '\\':
			// quoted-pairSMTP = %d92 %d32-126
			if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return "", 0, faultLocalChar
			}
			b = append(b, s[start:i]...)
			escaped = true
			i++
			start = i
		case c >= utf8.RuneSelf:
			// validUTF8Text has vetted it
		case c < 32 || c > 126:
			return "", 0, faultLocalChar
		}
	}
	return "", 0, faultQuoted
}

// parseDomain checks a domain (RFC 5321 §4.1.2 Domain or address-literal)
// and returns it lower-cased (ASCII letters), or its literal in canonical
// form.
func parseDomain(d string, utf8 bool) (string, string) {
	if d == "" {
		return "", faultNoDomain
	}
	if len(d) > maxDomain {
		return "", faultDomainLong
	}
	if d[0] == '[' {
		return parseLiteral(d)
	}
	for label := range strings.SplitSeq(d, ".") {
		if !validLabel(label, utf8) {
			return "", faultDomainLabel
		}
	}
	return LowerASCII(d), ""
}

// parseLiteral checks an address literal (RFC 5321 §4.1.3) and returns it
// in canonical form: "[192.0.2.1]" or "[IPv6:2001:db8::1]". Other
// standardized tags are refused.
func parseLiteral(d string) (string, string) {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return "", faultLiteral
	}
	inner := d[1 : len(d)-1]
	if len(inner) > 5 && asciiEqualFold(inner[:5], "IPv6:") {
		a, err := netip.ParseAddr(inner[5:])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", faultLiteral
		}
		return "[IPv6:" + a.String() + "]", ""
	}
	a, err := netip.ParseAddr(inner)
	if err != nil || !a.Is4() {
		return "", faultLiteral
	}
	return "[" + a.String() + "]", ""
}

// validLabel reports whether l is an LDH label (RFC 5321 §4.1.2
// sub-domain: Let-dig [Ldh-str]) of at most 63 octets, or with utf8 a
// U-label whose non-ASCII characters are letters, marks or digits.
func validLabel(l string, utf8 bool) bool {
	if l == "" || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); {
		c := l[i]
		if c < 0x80 {
			if !isAlnum(c) && c != '-' {
				return false
			}
			i++
			continue
		}
		if !utf8 {
			return false
		}
		r, size := decodeRune(l[i:])
		if !unicode.IsLetter(r) && !unicode.IsMark(r) && !unicode.IsDigit(r) {
			return false
		}
		i += size
	}
	return true
}

// decodeRune is utf8.DecodeRuneInString, named apart from the utf8
// parameters that shadow the package.
func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// isDotString reports whether s is a Dot-string (RFC 5321 §4.1.2: Atom
// *("." Atom)); bytes of UTF-8 count as atext (RFC 6531 §3.3).
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if s[i-1] == '.' {
				return false
			}
			continue
		}
		if !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext reports whether c is atext (RFC 5322 §3.2.3) or a byte of a
// UTF-8 sequence (RFC 6531 §3.3).
func isAtext(c byte) bool {
	if c >= utf8.RuneSelf {
		return true
	}
	if isAlnum(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// hasNonASCII reports whether s has a byte above 127.
func hasNonASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// validUTF8Text reports whether s is valid UTF-8 without control
// characters (C0, DEL or C1).
func validUTF8Text(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// asciiEqualFold reports whether s and t are equal ignoring the case of
// ASCII letters only (strings.EqualFold would match "ſ" with "s").
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lower(t[i]) {
			return false
		}
	}
	return true
}

// lower returns c lower-cased if it is an ASCII letter.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// LowerASCII returns s with its ASCII letters lower-cased and every
// other byte as it is, without allocating when there is nothing to
// change. (strings.ToLower would fold "\u212A", the Kelvin sign, into
// "k".)
func LowerASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		b[i] = lower(b[i])
	}
	return string(b)
}

// IsASCII reports whether s has no byte above 127.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
