// Package termsafe shows, rather than obeys, the control characters of
// text that others wrote (a message's header and body, a client's HELO
// name, a remote server's reply) when an administration command prints
// it on a terminal. It is its own package because it is a mechanism
// with a security contract of its own, tested and fuzzed here, that
// every command printing such text uses the same way.
package termsafe

import (
	"fmt"
	"io"
	"os"
	"unicode"
	"unicode/utf8"

	"golang.org/x/term"
)

// Writer writes text from a message or a remote server to a
// terminal with its control characters shown, not obeyed: a hostile
// message's escape sequences could otherwise retitle the window, rewrite
// the screen or hide text, and a lone CR hide the start of a line. CRLF
// becomes a newline; tab and newline pass; a C0 control (a byte below
// 0x20) or DEL is written as \xHH (\r for a lone CR), a C1 control
// (U+0080 to U+009F: U+009B is CSI to many terminals) or a bidirectional
// override (U+202A to U+202E, U+2066 to U+2069) as \u{HHHH}, and a byte
// that is not UTF-8 as \xHH. Flush writes what Write held back (a CR, or
// the start of a character cut between two writes).
type Writer struct {
	w    io.Writer
	cr   bool   // a CR was the last byte, held back until the next
	part []byte // the start of a UTF-8 sequence cut by the end of a write
	b    []byte
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes p with its control characters shown; it holds back a
// final CR, or the start of a character that p cuts, until the next
// Write or Flush.
func (t *Writer) Write(p []byte) (int, error) {
	t.b = t.b[:0]
	in := p
	if len(t.part) > 0 {
		in = append(t.part, p...)
		t.part = nil
	}
	for len(in) > 0 {
		c := in[0]
		if t.cr {
			t.cr = false
			if c == '\n' {
				t.b = append(t.b, '\n')
				in = in[1:]
				continue
			}
			t.b = append(t.b, `\r`...)
		}
		if c < utf8.RuneSelf {
			switch {
			case c == '\r':
				t.cr = true
			case c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f):
				t.b = append(t.b, c)
			default:
				t.b = fmt.Appendf(t.b, `\x%02x`, c)
			}
			in = in[1:]
			continue
		}
		if !utf8.FullRune(in) {
			t.part = append([]byte(nil), in...)
			break
		}
		r, n := utf8.DecodeRune(in)
		switch {
		case r == utf8.RuneError && n == 1:
			t.b = fmt.Appendf(t.b, `\x%02x`, c)
		case unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069):
			t.b = fmt.Appendf(t.b, `\u{%04x}`, r)
		default:
			t.b = append(t.b, in[:n]...)
		}
		in = in[n:]
	}
	if _, err := t.w.Write(t.b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what Write held back.
func (t *Writer) Flush() error {
	t.b = t.b[:0]
	if t.cr {
		t.cr = false
		t.b = append(t.b, `\r`...)
	}
	for _, c := range t.part {
		t.b = fmt.Appendf(t.b, `\x%02x`, c)
	}
	t.part = nil
	if len(t.b) == 0 {
		return nil
	}
	_, err := t.w.Write(t.b)
	return err
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
