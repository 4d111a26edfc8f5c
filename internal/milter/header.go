package milter

import (
	"bytes"
	"strings"
)

// Header is a message's header section as milters see and change it: a
// list of fields, each kept byte for byte until a milter changes it (a
// DKIM signature over it stays valid). The first Received field, the
// MTA's own, is hidden from milters as Sendmail and Postfix hide it: it
// is not sent, and SMFIR_CHGHEADER cannot reach it, but SMFIR_INSHEADER
// counts it (Postfix: insertions are relative to the message as
// delivered).
type Header struct {
	fields  []field
	end     []byte // the empty line that ends the section, or nothing
	changed bool
}

// field is one header field: its name ("" for a line that is not a
// field, kept where it is and never shown) and its bytes with their
// CRLFs.
type field struct {
	name   string
	raw    []byte
	hidden bool
}

// ParseHeader splits the header section b (CRLF line ends, with the
// empty line that ends it when there is one) into fields. b is not
// copied; the Header must not outlive it.
func ParseHeader(b []byte) *Header {
	h := &Header{}
	hidden := false
	for len(b) > 0 {
		if bytes.HasPrefix(b, []byte("\r\n")) {
			h.end = b
			break
		}
		n := lineEnd(b)
		for n < len(b) && (b[n] == ' ' || b[n] == '\t') { // continuation lines
			n += lineEnd(b[n:])
		}
		f := field{raw: b[:n:n]}
		if i := bytes.IndexByte(f.raw, ':'); i > 0 {
			name := string(bytes.TrimRight(f.raw[:i], " \t"))
			if checkFieldName(name) == nil {
				f.name = name
			}
		}
		if !hidden && strings.EqualFold(f.name, "Received") {
			f.hidden, hidden = true, true
		}
		h.fields = append(h.fields, f)
		b = b[n:]
	}
	return h
}

// lineEnd returns the length of b's first line with its line end.
func lineEnd(b []byte) int {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i + 1
	}
	return len(b)
}

// visible reports whether f is shown to milters.
func (f *field) visible() bool { return f.name != "" && !f.hidden }

// value returns f's value as Sendmail hands it to a milter: after the
// colon, without the one space that follows it unless leadSpace, lines
// separated by "\n", without the last line end.
func (f *field) value(leadSpace bool) string {
	v := f.raw[bytes.IndexByte(f.raw, ':')+1:]
	if !leadSpace && len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	v = bytes.TrimSuffix(v, []byte("\r\n"))
	return strings.ReplaceAll(string(v), "\r\n", "\n")
}

// Each calls fn with the name and value of every field shown to
// milters, in order, as Conn.Header takes them (leadSpace as the milter
// negotiated SMFIP_HDR_LEADSPC); it stops when fn returns false.
func (h *Header) Each(leadSpace bool, fn func(name, value string) bool) {
	for i := range h.fields {
		if f := &h.fields[i]; f.visible() && !fn(f.name, f.value(leadSpace)) {
			return
		}
	}
}

// newField formats a field from a milter: name, ':', and the value (which
// carries the space after the colon, see Changes), its line breaks made
// CRLF.
func newField(name, value string) field {
	var b bytes.Buffer
	b.Grow(len(name) + len(value) + 4)
	b.WriteString(name)
	b.WriteByte(':')
	for _, line := range strings.SplitAfter(strings.ReplaceAll(value, "\r\n", "\n"), "\n") {
		b.WriteString(strings.TrimSuffix(line, "\n"))
		b.WriteString("\r\n")
	}
	return field{name: name, raw: b.Bytes()}
}

// Add appends a field at the end of the section (SMFIR_ADDHEADER).
func (h *Header) Add(name, value string) {
	h.fields = append(h.fields, newField(name, value))
	h.changed = true
}

// Change replaces the index-th (from 1) field named name among those
// shown to milters, or deletes it when value is ""; when there is no
// such field, a value is added at the end and a deletion does nothing,
// as in Postfix (SMFIR_CHGHEADER).
func (h *Header) Change(index int, name, value string) {
	n := 0
	for i := range h.fields {
		f := &h.fields[i]
		if !f.visible() || !strings.EqualFold(f.name, name) {
			continue
		}
		if n++; n < index {
			continue
		}
		if value == "" {
			h.fields = append(h.fields[:i], h.fields[i+1:]...)
		} else {
			h.fields[i] = newField(name, value)
		}
		h.changed = true
		return
	}
	if value != "" {
		h.Add(name, value)
	}
}

// Insert puts a field before the index-th field of the section counting
// from 0, hidden fields included, or at its end (SMFIR_INSHEADER).
func (h *Header) Insert(index int, name, value string) {
	if index >= len(h.fields) {
		h.Add(name, value)
		return
	}
	h.fields = append(h.fields[:index], append([]field{newField(name, value)}, h.fields[index:]...)...)
	h.changed = true
}

// Changed reports whether a change was made since ParseHeader.
func (h *Header) Changed() bool { return h.changed }

// Len returns the size of the section in bytes.
func (h *Header) Len() int {
	n := len(h.end)
	for _, f := range h.fields {
		n += len(f.raw)
	}
	return n
}

// AppendTo appends the section, the empty line that ends it included,
// to dst.
func (h *Header) AppendTo(dst []byte) []byte {
	for _, f := range h.fields {
		dst = append(dst, f.raw...)
	}
	return append(dst, h.end...)
}
