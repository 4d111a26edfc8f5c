package mailauth

import (
	"strings"

	"postern/internal/smtp"
)

// Results are the outcomes of the checks on one message, as
// Authentication-Results reports them.
type Results struct {
	SPF     []SPFResult  // MAIL FROM first, then HELO
	DKIM    []DKIMResult // in the order of the signatures
	DMARC   DMARCResult  // valid when Checked
	Checked bool         // DMARC was evaluated (there was a From domain)
}

// DMARCResult is the outcome of DMARC for one message (RFC 7489 §6.6).
type DMARCResult struct {
	// Result is "none", "pass", "fail", "temperror" or "permerror".
	Result string
	// From is the RFC5322.From domain.
	From string
	// Policy is the policy that applies after sp= and pct= ("" when no
	// record); Record is the record's own p= (or sp=) before pct=.
	Policy, Record Policy
	// Reason says why, for logs.
	Reason string
}

// AuthenticationResults returns the Authentication-Results header field
// (RFC 8601 §2.2), folded, ending in CRLF, for authserv-id host:
//
//	Authentication-Results: mx.example.org;
//		spf=pass smtp.mailfrom=a@example.com;
//		dkim=pass header.d=example.com header.s=sel header.a=ed25519-sha256 header.b=abcdefghijkl;
//		dmarc=pass header.from=example.com
func AuthenticationResults(host string, r Results) []byte {
	var items []string
	for _, s := range r.SPF {
		prop := "smtp.mailfrom=" + pvalue(s.Sender)
		if s.Identity == "helo" {
			prop = "smtp.helo=" + pvalue(s.Sender)
		}
		items = append(items, "spf="+s.Result+" "+prop)
	}
	if len(r.DKIM) == 0 {
		items = append(items, "dkim=none")
	}
	for _, d := range r.DKIM {
		item := "dkim=" + d.Result
		if d.Reason != "" && d.Result != "pass" {
			item += " reason=" + quote(d.Reason)
		}
		if d.Domain != "" {
			item += " header.d=" + pvalue(d.Domain)
		}
		if d.Selector != "" {
			item += " header.s=" + pvalue(d.Selector)
		}
		if d.Algorithm != "" {
			item += " header.a=" + pvalue(d.Algorithm)
		}
		if d.B != "" {
			item += " header.b=" + pvalue(d.B)
		}
		items = append(items, item)
	}
	if r.Checked {
		item := "dmarc=" + r.DMARC.Result
		if r.DMARC.Policy != "" {
			// RFC 7489 §11.2 registers policy.dmarc-style properties
			// informally; we give the applied policy as a comment.
			item += " (p=" + string(r.DMARC.Record) + " dis=" + string(r.DMARC.Policy) + ")"
		}
		item += " header.from=" + pvalue(r.DMARC.From)
		items = append(items, item)
	}
	var b strings.Builder
	b.WriteString("Authentication-Results: " + host)
	if len(items) == 0 {
		b.WriteString("; none") // RFC 8601 §2.2 no-result
	}
	for _, it := range items {
		b.WriteString(";\r\n\t" + it)
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// pvalue returns v as an RFC 8601 pvalue: as is when it is a token or an
// addr-spec of dot-atoms, else as a quoted-string.
func pvalue(v string) string {
	if v == "" {
		return `""`
	}
	for _, c := range []byte(v) {
		if !isAtext(c) && c != '.' && c != '@' {
			return quote(v)
		}
	}
	return v
}

// isAtext reports whether c is atext (RFC 5322 §3.2.3) and a token char.
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// quote returns s as a quoted-string, without control characters.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// authservID returns the authserv-id of an Authentication-Results value
// (RFC 8601 §2.2): the first token, comments (CFWS) skipped.
func authservID(v string) string {
	v = skipCFWS(v)
	end := strings.IndexAny(v, "; \t\r\n(")
	if end < 0 {
		end = len(v)
	}
	id := v[:end]
	if strings.HasPrefix(id, `"`) {
		id = strings.Trim(id, `"`)
	}
	return strings.ToLower(strings.TrimSuffix(id, "."))
}

// skipCFWS skips leading whitespace and (nested) comments.
func skipCFWS(v string) string {
	for {
		v = strings.TrimLeft(v, " \t\r\n")
		if !strings.HasPrefix(v, "(") {
			return v
		}
		v = v[smtp.CommentEnd(v, 0)+1:]
	}
}

// stripFields returns msg without the header fields for which drop
// returns true; it returns msg itself (not a copy) when none is dropped.
func stripFields(msg []byte, drop func(f field) bool) []byte {
	fields, body := splitHeader(msg)
	n := 0
	for _, f := range fields {
		if drop(f) {
			n++
		}
	}
	if n == 0 {
		return msg
	}
	out := make([]byte, 0, len(msg))
	for _, f := range fields {
		if !drop(f) {
			out = append(out, f.raw...)
		}
	}
	if body > 0 && body <= len(msg) {
		// The empty line and the body.
		hdrLen := 0
		for _, f := range fields {
			hdrLen += len(f.raw)
		}
		out = append(out, msg[hdrLen:]...)
	}
	return out
}
