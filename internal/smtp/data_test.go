package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadData(t *testing.T) {
	x := func(n int) string { return strings.Repeat("x", n) }
	def := DataLimits{MaxSize: 1 << 20, MaxLine: 1000}
	tests := []struct {
		name    string
		in      string // followed by "QUIT\r\n", which must be left unread
		lim     DataLimits
		want    string // appended to dst
		wantErr error
	}{
		{"empty message", ".\r\n", def, "", nil},
		{"one line", "Subject: hi\r\n\r\nbody\r\n.\r\n", def, "Subject: hi\r\n\r\nbody\r\n", nil},
		{"dot stuffed", "..\r\n..x\r\n.y\r\n...\r\n.\r\n", def, ".\r\n.x\r\ny\r\n..\r\n", nil},
		{"dot inside line", "a.b\r\n a\r\n.\r\n", def, "a.b\r\n a\r\n", nil},
		{"empty lines", "\r\n\r\n.\r\n", def, "\r\n\r\n", nil},
		{"dot then space is not end", ". \r\n.\r\n", def, " \r\n", nil},
		{"no final CRLF before end is impossible", "a\r\n.\r\n", def, "a\r\n", nil},

		// SMTP smuggling: none of these end the message.
		{"LF.LF", "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", def, "", ErrBareLF},
		{"CRLF.LF", "a\r\n.\nb\r\n.\r\n", def, "a\r\n", ErrBareLF},
		{"LF.CRLF", "a\n.\r\nb\r\n.\r\n", def, "", ErrBareLF},
		{"CR.CR", "a\r.\rb\r\n.\r\n", def, "", ErrBareCR},
		{"CRLF.CR", "a\r\n.\r\r\n.\r\n", def, "a\r\n", ErrBareCR},
		{"start .LF", ".\nb\r\n.\r\n", def, "", ErrBareLF},
		{"LF LF", "a\n\n.\r\n.\r\n", def, "", ErrBareLF},

		{"bare LF", "a\nb\r\n.\r\n", def, "", ErrBareLF},
		{"bare CR", "a\rb\r\n.\r\n", def, "", ErrBareCR},
		{"CR CR LF", "a\r\r\n.\r\n", def, "", ErrBareCR},
		{"NUL", "a\x00b\r\nc\r\n.\r\n", def, "", ErrNUL},
		{"first error kept", "ok\r\na\x00\r\nb\nc\r\n.\r\n", def, "ok\r\n", ErrNUL},

		{"line max exactly", x(998) + "\r\n.\r\n", def, x(998) + "\r\n", nil},
		{"line max plus one", x(999) + "\r\n.\r\n", def, "", ErrLineTooLong},
		{"stuffed line counts its dot", "." + x(998) + "\r\n.\r\n", def, "", ErrLineTooLong},
		{"stuffed line max", "." + x(997) + "\r\n.\r\n", def, x(997) + "\r\n", nil},
		{"default line limit", x(999) + "\r\n.\r\n", DataLimits{}, "", ErrLineTooLong},
		{"huge line", x(1<<20) + "\r\n.\r\n", def, "", ErrLineTooLong},

		{"size exactly", x(8) + "\r\n.\r\n", DataLimits{MaxSize: 10}, x(8) + "\r\n", nil},
		{"size plus one", x(9) + "\r\n.\r\n", DataLimits{MaxSize: 10}, "", ErrTooBig},
		{"size after unstuffing", "." + x(8) + "\r\n.\r\n", DataLimits{MaxSize: 10}, x(8) + "\r\n", nil},
		{"size over later", "abcd\r\nefgh\r\n.\r\n", DataLimits{MaxSize: 10}, "abcd\r\n", ErrTooBig},
		{"too big wins over later bare LF", "abcd\r\nefghijk\r\nx\nmore\r\n.\r\n", DataLimits{MaxSize: 10}, "abcd\r\n", ErrTooBig},
		{"bare LF wins over NUL", "a\x00b\nc\r\n.\r\n", def, "", ErrBareLF},
		{"too long wins over early bare CR", "a\rb" + x(40) + "\r\n.\r\n", DataLimits{MaxLine: 30}, "", ErrLineTooLong},
		{"bare CR wins over too big", "abc\rdefghijklmn\r\n.\r\n", DataLimits{MaxSize: 5}, "", ErrBareCR},
		{"CR at chunk end then LF", x(15) + "\r\n" + x(14) + "\r\n.\r\n", def, x(15) + "\r\n" + x(14) + "\r\n", nil},
		{"CR at chunk end then not LF", x(15) + "\rx\r\n.\r\n", def, "", ErrBareCR},
		{"NUL after many lines", strings.Repeat("abc\r\n", 20) + "a\x00\r\n" + strings.Repeat("abc\r\n", 5) + ".\r\n", def, strings.Repeat("abc\r\n", 20), ErrNUL},
		{"bare CR after many lines", strings.Repeat("abc\r\n", 20) + "a\rb\r\n.\r\n", def, strings.Repeat("abc\r\n", 20), ErrBareCR},
		{"bare LF after many lines", strings.Repeat("abc\r\n", 20) + "ab\nc\r\n.\r\n", def, strings.Repeat("abc\r\n", 20), ErrBareLF},
		{"long line after many lines", strings.Repeat("abc\r\n", 20) + x(30) + "\r\n.\r\n", DataLimits{MaxLine: 31}, strings.Repeat("abc\r\n", 20), ErrLineTooLong},
		{"size reached after many lines", strings.Repeat("abc\r\n", 20) + "x\r\n.\r\n", DataLimits{MaxSize: 100}, strings.Repeat("abc\r\n", 20), ErrTooBig},
		{"size exactly after many lines", strings.Repeat("abc\r\n", 20) + "x\r\n.\r\n", DataLimits{MaxSize: 103}, strings.Repeat("abc\r\n", 20) + "x\r\n", nil},
		{"dots among many lines", strings.Repeat("abc\r\n..\r\n", 10) + ".\r\n", def, strings.Repeat("abc\r\n.\r\n", 10), nil},
		{"no size limit", x(900) + "\r\n.\r\n", DataLimits{MaxLine: 1000}, x(900) + "\r\n", nil},
	}
	for _, tt := range tests {
		for _, size := range []int{16, 4096} {
			for _, oneByte := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/buf%d/onebyte=%v", tt.name, size, oneByte), func(t *testing.T) {
					var src io.Reader = strings.NewReader(tt.in + "QUIT\r\n")
					if oneByte {
						src = iotest.OneByteReader(src)
					}
					br := bufio.NewReaderSize(src, size)
					var dst bytes.Buffer
					err := ReadData(br, &dst, tt.lim)
					if err != tt.wantErr {
						t.Errorf("err = %v, want %v", err, tt.wantErr)
					}
					if dst.String() != tt.want {
						t.Errorf("dst = %q, want %q", dst.String(), tt.want)
					}
					if tt.lim.MaxSize > 0 && int64(dst.Len()) > tt.lim.MaxSize {
						t.Errorf("dst has %d bytes, more than MaxSize %d", dst.Len(), tt.lim.MaxSize)
					}
					rest, _ := io.ReadAll(br)
					if string(rest) != "QUIT\r\n" {
						t.Errorf("left unread %q, want %q", rest, "QUIT\r\n")
					}
				})
			}
		}
	}
}

// TestReadDataInSync reads two messages in a row, the first one bad, and
// checks that the second one comes out whole.
func TestReadDataInSync(t *testing.T) {
	in := "a\n.\nRCPT TO:<evil@x>\r\n\r\n.\r\nsecond\r\n..dot\r\n.\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	var dst bytes.Buffer
	if err := ReadData(br, &dst, DataLimits{MaxSize: 100}); err != ErrBareLF {
		t.Fatalf("first message: err = %v, want ErrBareLF", err)
	}
	dst.Reset()
	if err := ReadData(br, &dst, DataLimits{MaxSize: 100}); err != nil {
		t.Fatalf("second message: err = %v", err)
	}
	if got, want := dst.String(), "second\r\n.dot\r\n"; got != want {
		t.Errorf("second message = %q, want %q", got, want)
	}
}

// TestReadDataAppends checks that ReadData appends to dst and counts
// MaxSize from what it appends.
func TestReadDataAppends(t *testing.T) {
	var dst bytes.Buffer
	dst.WriteString("Received: x\r\n")
	br := bufio.NewReader(strings.NewReader("abc\r\n.\r\n"))
	if err := ReadData(br, &dst, DataLimits{MaxSize: 5}); err != nil {
		t.Fatal(err)
	}
	if got, want := dst.String(), "Received: x\r\nabc\r\n"; got != want {
		t.Errorf("dst = %q, want %q", got, want)
	}
}

func TestReadDataEOF(t *testing.T) {
	for _, in := range []string{"", "abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r", "a\n.\n", "x\r"} {
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		var dst bytes.Buffer
		if err := ReadData(br, &dst, DataLimits{}); err != io.ErrUnexpectedEOF {
			t.Errorf("ReadData(%q) = %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
	boom := errors.New("boom")
	br := bufio.NewReader(io.MultiReader(strings.NewReader("abc\r\n"), iotest.ErrReader(boom)))
	var dst bytes.Buffer
	if err := ReadData(br, &dst, DataLimits{}); err != boom {
		t.Errorf("ReadData with failing reader = %v, want %v", err, boom)
	}
}

// failSink is a DataSink whose Write fails once it holds max bytes.
type failSink struct {
	bytes.Buffer
	max    int
	writes int // Write calls after the failure
	failed bool
}

var errSinkFull = errors.New("sink full")

func (f *failSink) Write(p []byte) (int, error) {
	if f.failed {
		f.writes++
	}
	if f.Len()+len(p) > f.max {
		f.failed = true
		return 0, errSinkFull
	}
	return f.Buffer.Write(p)
}

// TestReadDataSinkError checks that a failing dst.Write is returned once
// the whole message is read, that dst gets nothing after it, and that the
// next message is read in step, through the fast and the line-by-line
// paths (buffers of 16 bytes and 64 KiB).
func TestReadDataSinkError(t *testing.T) {
	body := strings.Repeat("0123456789abcdef\r\n", 200) + "..dot\r\n" + strings.Repeat("x\r\n", 100)
	for _, size := range []int{16, 64 << 10} {
		br := bufio.NewReaderSize(strings.NewReader(body+".\r\nnext\r\n.\r\n"), size)
		dst := &failSink{max: 1000}
		if err := ReadData(br, dst, DataLimits{}); err != errSinkFull {
			t.Fatalf("buffer %d: err = %v, want the sink's error", size, err)
		}
		if dst.writes != 0 || dst.Len() > 1000 {
			t.Errorf("buffer %d: %d writes after the failure, %d bytes held", size, dst.writes, dst.Len())
		}
		var next bytes.Buffer
		if err := ReadData(br, &next, DataLimits{}); err != nil || next.String() != "next\r\n" {
			t.Errorf("buffer %d: next message %q, %v", size, next.String(), err)
		}
	}
}
