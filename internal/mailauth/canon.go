package mailauth

import (
	"bytes"
	"strings"
)

// relaxedHeader returns the relaxed canonical form of a raw header field
// (RFC 6376 §3.4.2): name lower-cased, value unfolded, runs of WSP made
// one SP, WSP at the end of the value and around the colon removed, and a
// final CRLF.
func relaxedHeader(raw []byte) []byte {
	c := bytes.IndexByte(raw, ':')
	if c < 0 {
		return nil
	}
	name := strings.ToLower(strings.TrimRight(string(raw[:c]), " \t"))
	out := make([]byte, 0, len(raw)+2)
	out = append(out, name...)
	out = append(out, ':')
	out = appendRelaxedValue(out, raw[c+1:])
	return append(out, "\r\n"...)
}

// appendRelaxedValue appends a header value unfolded with its whitespace
// runs reduced to one SP and no leading or trailing whitespace.
func appendRelaxedValue(out, v []byte) []byte {
	space := false
	start := len(out)
	for _, b := range v {
		switch b {
		case '\r', '\n':
			continue
		case ' ', '\t':
			space = true
			continue
		}
		if space && len(out) > start {
			out = append(out, ' ')
		}
		space = false
		out = append(out, b)
	}
	return out
}

// relaxedBody returns the relaxed canonical form of a body (RFC 6376
// §3.4.4): WSP at line ends removed, runs of WSP made one SP, empty
// lines at the end removed; a non-empty body ends with CRLF.
func relaxedBody(body []byte) []byte {
	out := make([]byte, 0, len(body))
	var canon []byte // one line, reused: no allocation per line
	pendingCRLF := 0
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		canon = appendRelaxedLine(canon[:0], line)
		if len(canon) == 0 {
			pendingCRLF++
			continue
		}
		for ; pendingCRLF > 0; pendingCRLF-- {
			out = append(out, "\r\n"...)
		}
		out = append(out, canon...)
		out = append(out, "\r\n"...)
	}
	return out
}

// appendRelaxedLine appends one body line with WSP runs reduced to one SP
// and trailing WSP removed.
func appendRelaxedLine(out, line []byte) []byte {
	space := false
	for _, b := range line {
		if b == ' ' || b == '\t' {
			space = true
			continue
		}
		if space {
			out = append(out, ' ')
		}
		space = false
		out = append(out, b)
	}
	return out
}
