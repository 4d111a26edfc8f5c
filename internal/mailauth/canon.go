package mailauth

import (
	"bytes"
	"io"
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
	var out bytes.Buffer
	w := relaxedBodyWriter{w: &out}
	w.Write(body)
	w.Close()
	return out.Bytes()
}

// relaxedBodyWriter writes the relaxed canonical form of a body (see
// relaxedBody) to w as the body is written to it, in pieces of any size,
// so that a body hash needs no copy of the body. Close ends it.
type relaxedBodyWriter struct {
	w       io.Writer // a hash: its Write never fails
	out     [4096]byte
	n       int  // bytes of out not yet written to w
	cr      bool // the last byte was a CR, not yet known to end the line
	space   bool // a run of WSP is pending on this line
	content bool // the line in progress has content
	crlfs   int  // empty lines pending: written before the next content
}

func (r *relaxedBodyWriter) put(b byte) {
	if r.n == len(r.out) {
		r.w.Write(r.out[:r.n])
		r.n = 0
	}
	r.out[r.n] = b
	r.n++
}

// text writes b, a byte of line content (not WSP), after what is
// pending before it.
func (r *relaxedBodyWriter) text(b byte) {
	if !r.content {
		for ; r.crlfs > 0; r.crlfs-- {
			r.put('\r')
			r.put('\n')
		}
		r.content = true
	}
	if r.space {
		r.put(' ')
	}
	r.space = false
	r.put(b)
}

// endLine ends the line in progress.
func (r *relaxedBodyWriter) endLine() {
	if r.content {
		r.put('\r')
		r.put('\n')
	} else {
		r.crlfs++
	}
	r.content, r.space = false, false
}

func (r *relaxedBodyWriter) Write(p []byte) (int, error) {
	for _, b := range p {
		if r.cr {
			r.cr = false
			if b == '\n' {
				r.endLine()
				continue
			}
			r.text('\r') // a CR inside a line is content
		}
		switch b {
		case '\r':
			r.cr = true
		case '\n':
			r.endLine()
		case ' ', '\t':
			r.space = true
		default:
			r.text(b)
		}
	}
	return len(p), nil
}

// Close ends the body: a last line without its CRLF gets one (a CR just
// before the end goes, as the CR of a CRLF would); empty lines at the
// end are dropped.
func (r *relaxedBodyWriter) Close() error {
	if r.content {
		r.put('\r')
		r.put('\n')
	}
	r.content, r.space, r.cr = false, false, false
	r.w.Write(r.out[:r.n])
	r.n = 0
	return nil
}
