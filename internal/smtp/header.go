package smtp

import (
	"bytes"
	"strings"
)

// HeaderEnd returns the offset in msg of the first byte of the body: just
// after the CRLF CRLF that ends the header section (RFC 5322 §2.1), or
// len(msg) when there is none. A message that starts with CRLF has an
// empty header section, and HeaderEnd returns 2.
func HeaderEnd(msg []byte) int {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return len(msg)
}

// HeaderValues returns the unfolded values of every field named name
// (case-insensitive, ASCII) in the header section hdr, in order. The
// header section ends at the first empty line, so hdr may be a whole
// message. Lines end in CRLF (a lone LF is taken as a line end too).
// Unfolding removes each CRLF that is followed by SP or HTAB (RFC 5322
// §2.2.3); a value is returned without "Name:" and without surrounding
// SP and HTAB. Obsolete whitespace before the colon is tolerated
// (RFC 5322 §4.5); a line that is neither a field nor a continuation is
// skipped with its continuations. It returns nil when there is no such
// field.
func HeaderValues(hdr []byte, name string) []string {
	var (
		out      []string
		cur      strings.Builder
		matching bool // the field being read is named name
	)
	flush := func() {
		if matching {
			out = append(out, strings.Trim(cur.String(), " \t"))
			cur.Reset()
			matching = false
		}
	}
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i], hdr[i+1:]
		} else {
			hdr = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // RFC 5322 §2.1: the empty line ends the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			if matching {
				cur.Write(line)
			}
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		field := bytes.TrimRight(line[:colon], " \t")
		if equalFoldBytes(field, name) {
			matching = true
			cur.Write(line[colon+1:])
		}
	}
	flush()
	return out
}

// equalFoldBytes reports whether b and s are equal ignoring the case of
// ASCII letters only.
func equalFoldBytes(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}
