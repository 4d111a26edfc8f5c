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
	for line, rest, ok := headerLine(hdr); ok; line, rest, ok = headerLine(rest) {
		if line[0] == ' ' || line[0] == '\t' {
			if matching {
				cur = append(cur, line)
			}
			continue
		}
		flush()
		if n, value, ok := fieldName(line); ok && equalFoldBytes(n, name) {
			matching = true
			cur = append(cur, value)
		}
	}
	flush()
}

// headerLine splits the first line off hdr, without its line end (LF
// or CRLF), and returns it and the rest; ok is false at the end of hdr
// and at the empty line that ends the header section (RFC 5322 §2.1).
func headerLine(hdr []byte) (line, rest []byte, ok bool) {
	line = hdr
	if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
		line, rest = hdr[:i], hdr[i+1:]
	}
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, rest, len(line) > 0
}

// fieldName returns the name (without the blanks before the colon) and
// the value of the field that starts at line; ok is false for a
// continuation line or a line without a name and a colon.
func fieldName(line []byte) (name, value []byte, ok bool) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, false
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	return bytes.TrimRight(line[:colon], " \t"), line[colon+1:], true
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
	for line, rest, ok := headerLine(hdr); ok; line, rest, ok = headerLine(rest) {
		if f, _, ok := fieldName(line); ok && equalFoldBytes(f, name) {
			n++
		}
	}
	return n
}

// CommentEnd returns the offset of the ")" that closes the comment
// opening at v[i], or len(v)-1 when it is not closed. RFC 5322 §3.2.2:
// comments nest, and "\" quotes the next character.
func CommentEnd[T string | []byte](v T, i int) int {
	depth := 0
	for ; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return len(v) - 1
}
