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
	var out []string
	eachField(hdr, name, func(value [][]byte) {
		var b strings.Builder
		for _, l := range value {
			b.Write(l)
		}
		out = append(out, strings.Trim(b.String(), " \t"))
	})
	return out
}

// eachField calls fn for each field named name (case-insensitive,
// ASCII) in the header section hdr, in order, with the lines of its
// value without their line endings: the rest of the first line after
// the colon, then the continuation lines. It stops at the empty line that
// ends the header section; a line that is neither a field nor a
// continuation is skipped with its continuations.
func eachField(hdr []byte, name string, fn func(value [][]byte)) {
	var cur [][]byte
	matching := false // the field being read is named name
	flush := func() {
		if matching {
			fn(cur)
			cur, matching = cur[:0], false
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
				cur = append(cur, line)
			}
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		if equalFoldBytes(bytes.TrimRight(line[:colon], " \t"), name) {
			matching = true
			cur = append(cur, line[colon+1:])
		}
	}
	flush()
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

// MaxReceived is the loop limit: a message with more Received header
// fields than this has gone round in circles (RFC 5321 §6.3). A server
// refuses it at the end of DATA (554 5.4.6), and the queue fails one
// that reached it anyway. Postfix's hopcount_limit is the same.
const MaxReceived = 50

// CountFields returns how many fields named name (case-insensitive,
// ASCII) the header section hdr holds, as HeaderValues would find them,
// without copying their values. hdr may be a whole message: the count
// stops at the empty line that ends the header section.
func CountFields(hdr []byte, name string) int {
	n := 0
	eachField(hdr, name, func([][]byte) { n++ })
	return n
}
