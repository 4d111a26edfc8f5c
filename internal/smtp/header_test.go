package smtp

import (
	"strings"
	"testing"
)

func TestHeaderEnd(t *testing.T) {
	tests := []struct {
		msg  string
		want int
	}{
		{"", 0},
		{"\r\n", 2},
		{"\r\nbody\r\n", 2},
		{"A: b\r\n\r\nbody", 8},
		{"A: b\r\n\r\n", 8},
		{"A: b\r\n", 6},
		{"A: b\r\nC: d\r\n\r\n\r\nbody\r\n", 14},
		{"A: b\n\nbody", 10},
	}
	for _, tt := range tests {
		if got := HeaderEnd([]byte(tt.msg)); got != tt.want {
			t.Errorf("HeaderEnd(%q) = %d, want %d", tt.msg, got, tt.want)
		}
	}
}

func TestHeaderValues(t *testing.T) {
	msg := "Received: from a\r\n\tby b;\r\n Fri, 27 Nov 2026\r\n" +
		"Subject:  Hello  \r\n" +
		"subject: second\r\n" +
		"SUBJECT :obsolete\r\n" +
		"Not a field\r\n" +
		" continued junk\r\n" +
		"X-Empty:\r\n" +
		"DKIM-Signature: v=1;\r\n b=abc\r\n" +
		"To: a@b.c\r\n" +
		"\r\n" +
		"Subject: in the body\r\n"
	tests := []struct {
		name string
		want []string
	}{
		{"Subject", []string{"Hello", "second", "obsolete"}},
		{"received", []string{"from a\tby b; Fri, 27 Nov 2026"}},
		{"X-Empty", []string{""}},
		{"DKIM-Signature", []string{"v=1; b=abc"}},
		{"To", []string{"a@b.c"}},
		{"From", nil},
		{"Not a field", nil},
		{"", nil},
	}
	for _, tt := range tests {
		got := HeaderValues([]byte(msg), tt.name)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("HeaderValues(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	// Without a final CRLF, and with LF line ends.
	if got := HeaderValues([]byte("A: 1\nB: 2\n x"), "b"); len(got) != 1 || got[0] != "2 x" {
		t.Errorf("HeaderValues on LF lines = %q", got)
	}
}

func TestCountFields(t *testing.T) {
	hdr := []byte("Received: a\r\n b\r\nreceived : c\r\nX: d\r\nReceivedX: e\r\n\r\nReceived: in the body\r\n")
	if n := CountFields(hdr, "Received"); n != 2 {
		t.Errorf("CountFields = %d, want 2", n)
	}
	if n := CountFields(nil, "Received"); n != 0 {
		t.Errorf("CountFields(nil) = %d", n)
	}
	// It runs on every message, twice: it must not allocate.
	if a := testing.AllocsPerRun(100, func() { CountFields(hdr, "Received") }); a != 0 {
		t.Errorf("CountFields: %v allocations, want 0", a)
	}
}

// TestCommentEnd: the end of a comment that nests and quotes, and of one
// that is not closed.
func TestCommentEnd(t *testing.T) {
	for _, c := range []struct {
		in   string
		i    int
		want int
	}{
		{"(a) b", 0, 2},
		{"x (a (b) c) d", 2, 10},
		{`(a \) b) c`, 0, 7},
		{`(a \\) b`, 0, 5},
		{"(a (b) c", 0, 7},
		{`(a\`, 0, 2},
	} {
		if got := CommentEnd(c.in, c.i); got != c.want {
			t.Errorf("CommentEnd(%q, %d) = %d, want %d", c.in, c.i, got, c.want)
		}
		if got := CommentEnd([]byte(c.in), c.i); got != c.want {
			t.Errorf("CommentEnd([]byte(%q), %d) = %d, want %d", c.in, c.i, got, c.want)
		}
	}
}
