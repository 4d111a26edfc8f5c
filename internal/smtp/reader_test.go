package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAllLines calls ReadLine until an I/O error and records each result
// as "line" or "!error".
func readAllLines(t *testing.T, br *bufio.Reader, max int) []string {
	t.Helper()
	r := NewReader(br)
	var got []string
	for range 1000 {
		line, err := r.ReadLine(max)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return append(got, "!"+err.Error())
		case err != nil:
			if line != nil {
				t.Errorf("ReadLine returned %q with error %v", line, err)
			}
			got = append(got, "!"+err.Error())
		default:
			got = append(got, string(line))
		}
	}
	t.Fatal("ReadLine does not make progress")
	return nil
}

func TestReadLine(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	const (
		eof   = "!EOF"
		ueof  = "!unexpected EOF"
		tooLg = "!smtp: line too long"
		bLF   = "!smtp: bare LF"
		bCR   = "!smtp: bare CR"
		nul   = "!smtp: NUL byte"
	)
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{"empty input", "", 512, []string{eof}},
		{"one line", "EHLO x\r\n", 512, []string{"EHLO x", eof}},
		{"empty line", "\r\n", 512, []string{"", eof}},
		{"two lines", "A\r\nB\r\n", 512, []string{"A", "B", eof}},
		{"eof within line", "QUIT", 512, []string{ueof}},
		{"eof after CR", "QUIT\r", 512, []string{ueof}},
		{"bare LF", "A\nB\r\n", 512, []string{bLF, "B", eof}},
		{"lone LF", "\nB\r\n", 512, []string{bLF, "B", eof}},
		{"bare CR inside", "A\rB\r\nC\r\n", 512, []string{bCR, "C", eof}},
		{"bare CR at end of line", "A\r\r\nC\r\n", 512, []string{bCR, "C", eof}},
		{"CR CR LF", "\r\r\n", 512, []string{bCR, eof}},
		{"bare CR and bare LF", "A\rB\nC\r\n", 512, []string{bCR, "C", eof}},
		{"NUL", "MAIL\x00\r\nC\r\n", 512, []string{nul, "C", eof}},
		{"max exactly", long(510) + "\r\nC\r\n", 512, []string{long(510), "C", eof}},
		{"max plus one", long(511) + "\r\nC\r\n", 512, []string{tooLg, "C", eof}},
		{"too long wins over bare LF", long(600) + "\nC\r\n", 512, []string{tooLg, "C", eof}},
		{"very long line", long(100000) + "\r\nC\r\n", 512, []string{tooLg, "C", eof}},
		{"very long line then eof", long(100000), 512, []string{ueof}},
		{"CR split from LF at max", long(511) + "\r\n", 512, []string{tooLg, eof}},
		{"LF alone fits", "\n", 1, []string{bLF, eof}},
		{"smuggling in command", "DATA\n.\r\nQUIT\r\n", 512, []string{bLF, ".", "QUIT", eof}},
	}
	for _, tt := range tests {
		for _, size := range []int{16, 4096} {
			for _, oneByte := range []bool{false, true} {
				name := fmt.Sprintf("%s/buf%d/onebyte=%v", tt.name, size, oneByte)
				t.Run(name, func(t *testing.T) {
					var src io.Reader = strings.NewReader(tt.in)
					if oneByte {
						src = iotest.OneByteReader(src)
					}
					got := readAllLines(t, bufio.NewReaderSize(src, size), tt.max)
					if strings.Join(got, "|") != strings.Join(tt.want, "|") {
						t.Errorf("got  %q\nwant %q", got, tt.want)
					}
				})
			}
		}
	}
}

// TestReadLineBounded checks that a too-long line never grows the
// Reader's buffer past max.
func TestReadLineBounded(t *testing.T) {
	r := NewReader(bufio.NewReaderSize(strings.NewReader(strings.Repeat("y", 1<<20)+"\r\n"), 16))
	if _, err := r.ReadLine(512); err != ErrLineTooLong {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	if cap(r.buf) > 1024 {
		t.Errorf("buffer grew to %d bytes for max 512", cap(r.buf))
	}
}

// TestReadLineIOError checks that a read error other than EOF is returned
// as it is.
func TestReadLineIOError(t *testing.T) {
	boom := errors.New("boom")
	src := io.MultiReader(strings.NewReader("AB"), iotest.ErrReader(boom))
	r := NewReader(bufio.NewReader(src))
	if _, err := r.ReadLine(512); err != boom {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}
