package mailauth

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
)

// The author of a message is the address in its From field (RFC 5322
// §3.6.2): what DMARC evaluates (RFC 7489 §3.1) and what a user reads in
// a mail client. An attacker wins when the two differ: when the checker
// acts on one domain, or on none, and the client shows another. So
// ParseFrom reads a From field the way clients find the address they
// show (Thunderbird, mutt and Gmail forgive a missing ">", comments in
// the address, text after it, a trailing dot), and where clients could
// read the field in different ways, it says the field is ambiguous
// instead of choosing.
//
// The parser lives here rather than in internal/smtp because it needs the
// charsets mail clients decode encoded words with (x/text, the WHATWG
// set) and IDNA (x/net), which the stdlib-only primitives package cannot
// import; smtpd's submission check uses it from here.

// ErrFromAmbiguous is wrapped by the errors of ParseFrom: mail clients
// could show different addresses for the field.
var ErrFromAmbiguous = errors.New("From header field is ambiguous")

// ambiguous returns ErrFromAmbiguous with why; why goes into SMTP replies
// and must be ASCII.
func ambiguous(why string) error {
	return fmt.Errorf("%w: %s", ErrFromAmbiguous, why)
}

// Mailbox is an address of a From field as mail clients show it.
type Mailbox struct {
	// Local is the local part, unquoted, without comments.
	Local string
	// Domain is the domain in lower case, IDNA A-labels, without a
	// trailing dot; "" when the entry shows no address with a domain
	// name (a display name alone, an address literal, an invalid name).
	Domain string
}

// String returns local@domain.
func (m Mailbox) String() string { return m.Local + "@" + m.Domain }

// FromField is a From field as mail clients show it.
type FromField struct {
	// Entries are the entries of the list, in order, as clients list
	// them: each mailbox, and each display name or comment that stands
	// alone between commas. Groups (RFC 6854) contribute their members.
	Entries []Mailbox
	// Shown are other addresses some clients show: one written without
	// quotes as the display name (RFC 5322 §3.4 forbids it), or one an
	// encoded word decodes to (RFC 2047 §5 forbids that). Each has the
	// domain of an entry; ParseFrom refuses the field otherwise.
	Shown []Mailbox
}

// ParseFrom parses the unfolded value of a From header field leniently,
// as mail clients do: comments, quoted strings, a missing ">", text after
// the address, a trailing dot, upper case, obsolete spaces around dots,
// encoded words in the display name, group syntax and Unicode domains
// (mapped to A-labels with IDNA). It returns an error wrapping
// ErrFromAmbiguous when clients could show different domains: two
// addresses in one entry, two "@", an "@" in the local part, a source
// route, an encoded word in the address, an address in the display name
// (written without quotes, or encoded) with another domain, unbalanced
// quotes or parentheses, text after the domain, control characters or
// bytes that are not UTF-8 (RFC 6532).
func ParseFrom(value string) (FromField, error) {
	var f FromField
	if err := checkBytes(value); err != nil {
		return f, err
	}
	toks, err := tokenize(value)
	if err != nil {
		return f, err
	}
	entries, err := splitEntries(toks)
	if err != nil {
		return f, err
	}
	for _, e := range entries {
		m, shown, err := parseEntry(e)
		if err != nil {
			return FromField{}, err
		}
		f.Entries = append(f.Entries, m)
		f.Shown = append(f.Shown, shown...)
	}
	decoded, err := decodedAddresses(value)
	if err != nil {
		return FromField{}, err
	}
	f.Shown = append(f.Shown, decoded...)
	var shown []Mailbox
	for _, s := range f.Shown {
		if !entryDomain(f.Entries, s.Domain) {
			if !entryDomain(f.Entries, "") {
				return FromField{}, ambiguous("the display name shows an address, the field has none")
			}
			return FromField{}, ambiguous("the display name shows an address in another domain")
		}
		if !containsMailbox(f.Entries, s) && !containsMailbox(shown, s) {
			shown = append(shown, s)
		}
	}
	f.Shown = shown
	return f, nil
}

// SubmissionAddresses returns the addresses of a submitted From field
// that the user must be allowed to send as. The field must parse with Go's
// strict parser (net/mail, RFC 5322 §3.6.2), and ParseFrom must read the
// same addresses; the other addresses ParseFrom finds a client may show
// (FromField.Shown) are returned too. So a From field that some client
// shows as another address never passes for one of the user's own.
func SubmissionAddresses(value string) ([]string, error) {
	list, err := mail.ParseAddressList(value)
	if err != nil {
		return nil, fmt.Errorf("mailauth: From: %w", err)
	}
	if len(list) == 0 {
		return nil, errors.New("mailauth: From: no address")
	}
	f, err := ParseFrom(value)
	if err != nil {
		return nil, err
	}
	if len(f.Entries) != len(list) {
		return nil, ambiguous("clients read another list of addresses")
	}
	out := make([]string, 0, len(list)+len(f.Shown))
	for i, a := range list {
		at := strings.LastIndexByte(a.Address, '@')
		if f.Entries[i].Domain == "" {
			return nil, errors.New("mailauth: From: no address with a domain name")
		}
		if at < 0 || a.Address[:at] != f.Entries[i].Local || normalizeDomain(a.Address[at+1:]) != f.Entries[i].Domain {
			return nil, ambiguous("clients read another address")
		}
		out = append(out, a.Address)
	}
	for _, m := range f.Shown {
		out = append(out, m.String())
	}
	return out, nil
}

// entryDomain reports whether an entry has domain d, or any domain when
// d is "".
func entryDomain(entries []Mailbox, d string) bool {
	for _, e := range entries {
		if e.Domain != "" && (d == "" || e.Domain == d) {
			return true
		}
	}
	return false
}

func containsMailbox(list []Mailbox, m Mailbox) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

// checkBytes refuses control characters and bytes that are not UTF-8:
// clients that read such bytes in a legacy charset (Shift_JIS, where a
// second byte may be "\" or "@") see other delimiters than we do.
func checkBytes(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return ambiguous("control character")
		}
	}
	if !utf8.ValidString(v) {
		return ambiguous("not UTF-8 (RFC 6532)")
	}
	return nil
}

type tokenKind uint8

const (
	tokAtom    tokenKind = iota + 1 // atext and dots, and what else is no delimiter
	tokQuoted                       // a quoted-string; text is its content
	tokComment                      // a comment; text is its content
	tokLiteral                      // a domain literal; text is its content
	tokSpecial                      // one of < > @ , ; :
)

// token is a lexical token of an address field (RFC 5322 §3.2).
type token struct {
	kind tokenKind
	text string
}

func (t token) is(c byte) bool { return t.kind == tokSpecial && t.text[0] == c }

// delimiters end an atom.
const delimiters = " \t()\"[]<>@,;:"

// tokenize splits an unfolded address field into tokens. Whitespace
// separates tokens and is dropped. A backslash outside quotes is an atom
// character, as in mutt and Thunderbird. Unbalanced quotes, parentheses
// or brackets are ambiguous: clients disagree on where they end.
func tokenize(v string) ([]token, error) {
	var toks []token
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == '"' || c == '[':
			text, n, ok := scanEnclosed(v[i:])
			if !ok {
				return nil, ambiguous("unbalanced quotes, parentheses or brackets")
			}
			kind := tokQuoted
			switch c {
			case '(':
				kind = tokComment
			case '[':
				kind = tokLiteral
			}
			toks = append(toks, token{kind, text})
			i += n
		case c == ')' || c == ']':
			return nil, ambiguous("unbalanced quotes, parentheses or brackets")
		case strings.IndexByte("<>@,;:", c) >= 0:
			toks = append(toks, token{tokSpecial, v[i : i+1]})
			i++
		default:
			j := i + 1
			for j < len(v) && strings.IndexByte(delimiters, v[j]) < 0 {
				j++
			}
			toks = append(toks, token{tokAtom, v[i:j]})
			i = j
		}
	}
	return toks, nil
}

// scanEnclosed reads the comment, quoted-string or domain literal that
// starts s, up to its closing character (comments nest, RFC 5322
// §3.2.2), and returns its content without quoted-pairs and its length.
func scanEnclosed(s string) (text string, n int, ok bool) {
	open, end := s[0], s[0]
	switch open {
	case '(':
		end = ')'
	case '[':
		end = ']'
	}
	var b strings.Builder
	depth := 1
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			if i+1 == len(s) {
				return "", 0, false
			}
			i++
		case c == end:
			if depth--; depth == 0 {
				return b.String(), i + 1, true
			}
		case c == open && open == '(':
			depth++
		}
		b.WriteByte(s[i])
	}
	return "", 0, false
}

// splitEntries splits the tokens of a list into entries at "," and ";"
// (outside a group a ";" separates like a comma, as in Thunderbird and
// mutt). A group's name is dropped and its members become entries.
// Entries without tokens are left out.
func splitEntries(toks []token) ([][]token, error) {
	var (
		out            [][]token
		cur            []token
		inAngle, group bool
	)
	for _, t := range toks {
		if t.kind != tokSpecial {
			cur = append(cur, t)
			continue
		}
		switch t.text[0] {
		case '<':
			if inAngle {
				return nil, ambiguous("\"<\" inside angle brackets")
			}
			inAngle = true
			cur = append(cur, t)
		case '>':
			if !inAngle {
				return nil, ambiguous("\">\" without \"<\"")
			}
			inAngle = false
			cur = append(cur, t)
		case '@':
			cur = append(cur, t)
		case ',', ';':
			if inAngle {
				// "Name <a@b, c@d": clients end the address
				// at the comma, or take both.
				return nil, ambiguous("list separator inside angle brackets")
			}
			if t.text == ";" {
				group = false
			}
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
		case ':':
			switch {
			case inAngle:
				// RFC 5322 §4.4 obs-route: "<@a,@b:user@c>".
				return nil, ambiguous("source route in the address")
			case group:
				return nil, ambiguous("group inside a group")
			}
			for _, g := range cur {
				if g.kind == tokSpecial {
					return nil, ambiguous("address before a group name's colon")
				}
			}
			group, cur = true, nil
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// parseEntry reads one entry: a display name and an address in angle
// brackets (the ">" may be missing), a bare address, or a display name
// alone. It also returns an address written in the display name.
func parseEntry(toks []token) (m Mailbox, shown []Mailbox, err error) {
	lt, err := only(toks, '<', "two addresses in angle brackets")
	if err != nil {
		return m, nil, err
	}
	if lt < 0 {
		m, err = addrSpec(toks)
		return m, nil, err
	}
	gt := len(toks)
	for i := lt + 1; i < len(toks); i++ {
		if toks[i].is('>') {
			gt = i
			break
		}
	}
	if m, err = addrSpec(toks[lt+1 : gt]); err != nil {
		return m, nil, err
	}
	// The display name, before and after the brackets: Thunderbird shows
	// an address after the brackets instead of the one inside; others
	// show both.
	for _, part := range [][]token{toks[:lt], toks[min(gt+1, len(toks)):]} {
		for _, t := range part {
			if !t.is('@') {
				continue
			}
			a, err := addrSpec(part)
			if err != nil || a.Domain == "" {
				return m, nil, ambiguous("an address in the display name")
			}
			shown = append(shown, a)
			break
		}
	}
	return m, shown, nil
}

// only returns the index of the one special c in toks, -1 when there is
// none, and an error saying why when there are more.
func only(toks []token, c byte, why string) (int, error) {
	at := -1
	for i, t := range toks {
		if t.is(c) {
			if at >= 0 {
				return 0, ambiguous(why)
			}
			at = i
		}
	}
	return at, nil
}

// addrSpec reads local@domain from toks, leaving out comments
// (RFC 5322 §3.4.1, with the obsolete forms of §4.4). Without an "@" it
// is a display name, and m is empty.
func addrSpec(toks []token) (m Mailbox, err error) {
	at, err := only(toks, '@', "two \"@\" in an address")
	if at < 0 || err != nil {
		return m, err
	}
	var local strings.Builder
	for _, t := range toks[:at] {
		switch t.kind {
		case tokAtom, tokQuoted:
			local.WriteString(t.text)
		case tokLiteral:
			return m, ambiguous("brackets in the local part")
		}
	}
	m.Local = local.String()
	if strings.IndexByte(m.Local, '@') >= 0 {
		return m, ambiguous("\"@\" in the local part")
	}
	var (
		domain  strings.Builder
		prev    string
		literal bool
	)
	for _, t := range toks[at+1:] {
		switch t.kind {
		case tokComment:
			continue
		case tokAtom:
			// Atoms join into a domain across spaces only next to a
			// dot that stands alone or starts the next atom ("a . b",
			// "a .b"): Thunderbird shows "a. b" with its space, mutt
			// as "a.b".
			if literal || (prev != "" && prev != "." && !strings.HasPrefix(t.text, ".")) {
				return m, ambiguous("text after the address")
			}
			domain.WriteString(t.text)
			prev = t.text
		case tokLiteral:
			if literal || prev != "" {
				return m, ambiguous("text after the address")
			}
			literal = true
		default:
			return m, ambiguous("text after the address")
		}
	}
	if hasEncodedWord(m.Local) || hasEncodedWord(domain.String()) {
		return m, ambiguous("encoded word in the address (RFC 2047 section 5)")
	}
	if !literal {
		m.Domain = normalizeDomain(domain.String())
	}
	return m, nil
}

// hasEncodedWord reports whether s holds what looks like an RFC 2047
// encoded word.
func hasEncodedWord(s string) bool {
	i := strings.Index(s, "=?")
	return i >= 0 && strings.Contains(s[i+2:], "?=")
}

// normalizeDomain returns d in lower case without a trailing dot,
// non-ASCII labels mapped to A-labels (IDNA, UTS #46 mapping as for a
// lookup, RFC 8616 §4), or "" when d is no host name (an IP address, a
// top-level label of digits, a character other than letters, digits,
// "-" and "_"). A single label ("localhost") is a host name.
func normalizeDomain(d string) string {
	d = strings.TrimSuffix(d, ".")
	for i := 0; i < len(d); i++ {
		if d[i] >= utf8.RuneSelf {
			a, err := idna.Lookup.ToASCII(d)
			if err != nil {
				return ""
			}
			d = strings.TrimSuffix(a, ".")
			break
		}
	}
	d = strings.ToLower(d)
	if d == "" || len(d) > 253 {
		return ""
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return ""
	}
	labels := strings.Split(d, ".")
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "" // RFC 3696 §2: a top-level domain is not all digits
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return ""
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return ""
			}
		}
	}
	return d
}

// decodedAddresses returns the addresses a client sees that decodes the
// encoded words of the field (RFC 2047) before it parses the field. It
// looks only when a decoded word brings an "@" or a character that
// changes how the field parses (quotes, parentheses, brackets, a
// backslash); then every "@" followed by a domain name with a dot counts
// ("Alice@Work" is a name). A comma or a colon in a decoded name
// ("Müller, Hans") adds no address.
func decodedAddresses(v string) ([]Mailbox, error) {
	if !strings.Contains(v, "=?") {
		return nil, nil
	}
	dec := mime.WordDecoder{CharsetReader: wordCharset}
	d, err := dec.DecodeHeader(v)
	if err != nil {
		return nil, ambiguous("encoded word in a charset that cannot be checked")
	}
	grew := false
	for _, c := range []byte("@\"()<>[]\\") {
		if strings.Count(d, string(c)) > strings.Count(v, string(c)) {
			grew = true
		}
	}
	if !grew {
		return nil, nil
	}
	var out []Mailbox
	for i := 0; i < len(d); i++ {
		if d[i] != '@' {
			continue
		}
		start := i
		for start > 0 && strings.IndexByte(delimiters, d[start-1]) < 0 {
			start--
		}
		j := i + 1
		for j < len(d) && (d[j] == ' ' || d[j] == '\t') {
			j++
		}
		end := j
		for end < len(d) && domainByte(d[end]) {
			end++
		}
		if dom := normalizeDomain(d[j:end]); strings.Contains(dom, ".") {
			out = append(out, Mailbox{Local: d[start:i], Domain: dom})
		}
	}
	return out, nil
}

// domainByte reports whether c may be part of a domain name as a client
// shows it: letters, digits, "-", "_", "." and any byte of a non-ASCII
// character (IDNA maps some of them to dots).
func domainByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c >= utf8.RuneSelf
}

// wordCharset decodes encoded words as mail clients do, with the WHATWG
// encodings (golang.org/x/text; Thunderbird and browsers use the same
// set). A charset outside that set is read as ASCII-compatible bytes,
// except UTF-7, which some clients decode and which hides "@" as "+AEA-".
// An RFC 2231 language suffix ("us-ascii*en") is dropped.
func wordCharset(label string, r io.Reader) (io.Reader, error) {
	label, _, _ = strings.Cut(strings.ToLower(strings.TrimSpace(label)), "*")
	if label == "utf-7" || label == "unicode-1-1-utf-7" || label == "csunicode11utf7" {
		return nil, errors.New("mailauth: UTF-7 encoded word")
	}
	e, err := htmlindex.Get(label)
	if err != nil || e == encoding.Replacement {
		return r, nil
	}
	return e.NewDecoder().Reader(r), nil
}
