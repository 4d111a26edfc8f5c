package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
)

func TestWriteReply(t *testing.T) {
	tests := []struct {
		code     int
		enhanced string
		lines    []string
		want     string
	}{
		{250, "", []string{"ok"}, "250 ok\r\n"},
		{250, "2.0.0", []string{"ok"}, "250 2.0.0 ok\r\n"},
		{250, "", []string{"first", "last"}, "250-first\r\n250 last\r\n"},
		{250, "2.0.0", []string{"first", "last"}, "250-2.0.0 first\r\n250 2.0.0 last\r\n"},
		{250, "", []string{"mx.example", "PIPELINING", "SIZE 100"}, "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n"},
		{550, "5.7.1", []string{"a\nb"}, "550-5.7.1 a\r\n550 5.7.1 b\r\n"},
		{550, "5.7.1", []string{"a\r\nb\rc"}, "550-5.7.1 a\r\n550-5.7.1 b\r\n550 5.7.1 c\r\n"},
		{550, "5.7.1", []string{"a", "b\n"}, "550-5.7.1 a\r\n550-5.7.1 b\r\n550 5.7.1\r\n"},
		{354, "", []string{"Start mail input; end with <CRLF>.<CRLF>"}, "354 Start mail input; end with <CRLF>.<CRLF>\r\n"},
		{250, "", nil, "250\r\n"},
		{250, "2.0.0", nil, "250 2.0.0\r\n"},
		{250, "", []string{""}, "250\r\n"},
		{421, "4.3.2", []string{"shutting down"}, "421 4.3.2 shutting down\r\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := WriteReply(w, tt.code, tt.enhanced, tt.lines...); err != nil {
			t.Errorf("WriteReply(%d, %q, %q) = %v", tt.code, tt.enhanced, tt.lines, err)
			continue
		}
		w.Flush()
		if b.String() != tt.want {
			t.Errorf("WriteReply(%d, %q, %q) wrote %q, want %q", tt.code, tt.enhanced, tt.lines, b.String(), tt.want)
		}
	}
}

func TestWriteReplyBad(t *testing.T) {
	tests := []struct {
		code     int
		enhanced string
	}{
		{0, ""}, {199, ""}, {600, ""}, {1250, ""},
		{250, "5.0.0"}, {550, "2.0.0"}, {250, "2.0"}, {250, "2.0.0 x"},
		{250, "2.0000.0"}, {250, "2..0"}, {250, "2.0.0\r\n"}, {250, "2.a.0"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := WriteReply(w, tt.code, tt.enhanced, "x"); err == nil {
			t.Errorf("WriteReply(%d, %q) = nil, want an error", tt.code, tt.enhanced)
		}
		w.Flush()
		if b.Len() != 0 {
			t.Errorf("WriteReply(%d, %q) wrote %q after an error", tt.code, tt.enhanced, b.String())
		}
	}
}

func TestWriteReplyAllocs(t *testing.T) {
	w := bufio.NewWriter(discard{})
	n := testing.AllocsPerRun(100, func() { WriteReply(w, 250, "2.1.0", "Sender ok") })
	if n != 0 {
		t.Errorf("WriteReply allocates %v times", n)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestError(t *testing.T) {
	e := NewError(550, "5.7.1", "relaying denied")
	if got, want := e.Error(), "550 5.7.1 relaying denied"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	r := e.WithReason("not a local domain")
	if got, want := r.Error(), "550 5.7.1 relaying denied (reason: not a local domain)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if e.Reason != "" {
		t.Errorf("WithReason changed the original: %+v", e)
	}
	if got, want := NewError(220, "", "ready").Error(), "220 ready"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var target *Error
	if err := error(r); !errors.As(err, &target) || target.Code != 550 {
		t.Errorf("errors.As failed on %v", err)
	}
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	if err := r.WriteReplyTo(w); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if got, want := b.String(), "550 5.7.1 relaying denied\r\n"; got != want {
		t.Errorf("WriteReplyTo wrote %q, want %q", got, want)
	}
}
