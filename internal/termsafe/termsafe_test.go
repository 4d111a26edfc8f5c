package termsafe

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// On a terminal, cat shows a hostile message's control characters
// instead of sending them to the terminal: an escape sequence could
// rewrite the screen, a lone CR hide a line's start. CRLF ends a line;
// tabs and UTF-8 pass. The input comes in pieces cut anywhere.
func TestWriter(t *testing.T) {
	in := "Subject: \x1b]0;pwned\x07hi\r\nX: a\rb\tc\x00\x7f d\u00e9j\u00e0\r\n\r\nbody\r"
	want := "Subject: \\x1b]0;pwned\\x07hi\nX: a\\rb\tc\\x00\\x7f d\u00e9j\u00e0\n\nbody\\r"
	for cut := range len(in) + 1 {
		var b bytes.Buffer
		w := NewWriter(&b)
		for _, part := range []string{in[:cut], in[cut:]} {
			if n, err := w.Write([]byte(part)); err != nil || n != len(part) {
				t.Fatalf("Write: %d, %v", n, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Fatalf("cut at %d: %q, want %q", cut, b.String(), want)
		}
	}
}

// TestWriterC1: C1 controls (CSI as U+009B, and a raw 0x9B byte)
// and bidirectional overrides are shown, cut anywhere between writes.
func TestWriterC1(t *testing.T) {
	in := "a\u009b2J b\x9b2J c\u202eevil d\u00e9"
	want := `a\u{009b}2J b\x9b2J c\u{202e}evil d` + "\u00e9"
	for cut := range len(in) + 1 {
		var b bytes.Buffer
		w := NewWriter(&b)
		w.Write([]byte(in[:cut]))
		w.Write([]byte(in[cut:]))
		w.Flush()
		if b.String() != want {
			t.Fatalf("cut at %d: %q, want %q", cut, b.String(), want)
		}
	}
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Write([]byte("x\xe2\x80")) // a character cut by the end of the message
	w.Flush()
	if b.String() != `x\xe2\x80` {
		t.Errorf("a cut character at the end: %q", b.String())
	}
}

// FuzzWriter: whatever the input and wherever the writes cut it, no
// byte the terminal obeys comes out (no C0 control but tab and
// newline, no DEL, no C1 control, no bidirectional override), the
// output is UTF-8, and it is the same as in one write.
func FuzzWriter(f *testing.F) {
	f.Add([]byte("Subject: \x1b]0;pwned\x07hi\r\nX: a\rb\tc\x00\x7f d\u00e9j\u00e0\r\n"), 7)
	f.Add([]byte("a\u009b2J b\x9b2J c\u202eevil d\u00e9\xe2\x80"), 3)
	f.Fuzz(func(t *testing.T, in []byte, cut int) {
		var whole, parts bytes.Buffer
		w := NewWriter(&whole)
		w.Write(in)
		w.Flush()
		cut = int(uint(cut) % uint(len(in)+1))
		w = NewWriter(&parts)
		w.Write(in[:cut])
		w.Write(in[cut:])
		w.Flush()
		out := whole.String()
		if parts.String() != out {
			t.Fatalf("cut at %d: %q, in one write %q", cut, parts.String(), out)
		}
		if !utf8.ValidString(out) {
			t.Fatalf("not UTF-8: %q", out)
		}
		for _, r := range out {
			if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) ||
				(r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				t.Fatalf("%q obeys %U", out, r)
			}
		}
	})
}
