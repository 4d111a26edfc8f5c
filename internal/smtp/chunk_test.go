package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseBDAT(t *testing.T) {
	tests := []struct {
		arg  string
		size int64
		last bool
		err  error
	}{
		{"0", 0, false, nil},
		{"0 LAST", 0, true, nil},
		{"10 last", 10, true, nil},
		{"00042", 42, false, nil},
		{"9223372036854775807", math.MaxInt64, false, nil},
		{"9223372036854775808 LAST", math.MaxInt64, true, nil}, // 2^63: a number, too big for anything
		{strings.Repeat("9", 60), math.MaxInt64, false, nil},
		{strings.Repeat("9", 101), 0, false, ErrChunkSyntax},
		{"", 0, false, ErrChunkSyntax},
		{" 10", 0, false, ErrChunkSyntax},
		{"-1", 0, false, ErrChunkSyntax},
		{"+1", 0, false, ErrChunkSyntax},
		{"0x10", 0, false, ErrChunkSyntax},
		{"ten LAST", 0, false, ErrChunkSyntax},
		{"10 LAST x", 10, false, ErrChunkMarker},
		{"10  LAST", 10, false, ErrChunkMarker},
		{"10 FIRST", 10, false, ErrChunkMarker},
		{"10 ", 10, false, ErrChunkMarker},
	}
	for _, tt := range tests {
		size, last, err := ParseBDAT(tt.arg)
		if err != tt.err || (err != ErrChunkSyntax && (size != tt.size || last != tt.last)) {
			t.Errorf("ParseBDAT(%q) = %d, %v, %v; want %d, %v, %v", tt.arg, size, last, err, tt.size, tt.last, tt.err)
		}
	}
}

// readChunks reads msg cut into chunks at the given sizes (the rest in
// a last chunk) from a stream holding them back to back followed by
// "NEXT", with a reader buffer of buf bytes, and returns what
// ChunkReader wrote, its error, and what is left on the stream.
func readChunks(t *testing.T, msg []byte, cuts []int, buf int, oneByte bool) ([]byte, error, string) {
	t.Helper()
	var src io.Reader = bytes.NewReader(append(append([]byte{}, msg...), "NEXT"...))
	if oneByte {
		src = iotest.OneByteReader(src)
	}
	return readChunksFrom(bufio.NewReaderSize(src, buf), msg, cuts, 40)
}

// readChunksFrom is readChunks on br, with lines of at most maxLine.
func readChunksFrom(br *bufio.Reader, msg []byte, cuts []int, maxLine int) ([]byte, error, string) {
	var r ChunkReader
	r.Reset(maxLine)
	var out bytes.Buffer
	var first error
	off := 0
	for _, c := range append(cuts, len(msg)) {
		c = max(0, min(c, len(msg))-off)
		if err := r.Read(br, int64(c), &out); err != nil && first == nil {
			first = err
		}
		off += c
	}
	if err := r.End(&out); err != nil && first == nil {
		first = err
	}
	if r.Size() != int64(len(msg)) {
		first = errors.New("Size is not the length of the message")
	}
	rest, _ := io.ReadAll(br)
	return out.Bytes(), first, string(rest)
}

// Chunks are read exactly, whatever they hold; the lines of the message
// are checked across chunk boundaries as in DATA; a last line without
// CRLF gets one.
func TestChunkReader(t *testing.T) {
	long := strings.Repeat("x", 38)
	tests := []struct {
		msg  string
		want string // what the sink gets; "" with an error
		err  error
	}{
		{"", "", nil},
		{"Subject: x\r\n\r\n.dot stays\r\n", "Subject: x\r\n\r\n.dot stays\r\n", nil},
		{"a\r\n.\r\nQUIT\r\n", "a\r\n.\r\nQUIT\r\n", nil}, // no terminator in BDAT
		{"no final line ending", "no final line ending\r\n", nil},
		{long + "\r\n", long + "\r\n", nil},
		{long + "x\r\n", "", ErrLineTooLong},
		{long + "x", "", ErrLineTooLong}, // with its CRLF it would be 41
		{"a\nb\r\n", "", ErrBareLF},
		{"a\rb\r\n", "", ErrBareCR},
		{"a\r\nb\r", "", ErrBareCR},
		{"a\x00b\r\n", "", ErrNUL},
		{"ok\r\n\n", "", ErrBareLF},
	}
	for _, tt := range tests {
		msg := []byte(tt.msg)
		// Every way to cut the message in two chunks, and odd buffers.
		for cut := 0; cut <= len(msg); cut++ {
			for _, buf := range []int{16, 4096} {
				for _, one := range []bool{false, true} {
					got, err, rest := readChunks(t, msg, []int{cut}, buf, one)
					if rest != "NEXT" {
						t.Fatalf("%q cut at %d: left %q on the stream", tt.msg, cut, rest)
					}
					if err != tt.err || (err == nil && string(got) != tt.want) {
						t.Fatalf("%q cut at %d, buffer %d: got %q, %v; want %q, %v", tt.msg, cut, buf, got, err, tt.want, tt.err)
					}
				}
			}
		}
	}
}

// An error of the sink stops the copying, not the reading.
func TestChunkReaderSinkError(t *testing.T) {
	errFull := errors.New("full")
	br := bufio.NewReader(strings.NewReader("abc\r\ndef\r\nNEXT"))
	var r ChunkReader
	if err := r.Read(br, 5, failWriter{errFull}); err != errFull {
		t.Fatalf("Read = %v", err)
	}
	if err := r.Read(br, 5, failWriter{errFull}); err != errFull {
		t.Fatalf("second Read = %v", err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "NEXT" {
		t.Fatalf("left %q", rest)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write(p []byte) (int, error) { return 0, w.err }

// The end of input inside a chunk is io.ErrUnexpectedEOF, for reading
// and for discarding.
func TestChunkShort(t *testing.T) {
	var r ChunkReader
	if err := r.Read(bufio.NewReader(strings.NewReader("0123456789")), 100, io.Discard); err != io.ErrUnexpectedEOF {
		t.Errorf("Read = %v", err)
	}
	if err := DiscardN(bufio.NewReader(strings.NewReader("0123456789")), 100); err != io.ErrUnexpectedEOF {
		t.Errorf("DiscardN = %v", err)
	}
	br := bufio.NewReader(strings.NewReader("0123456789"))
	if err := DiscardN(br, 4); err != nil {
		t.Fatal(err)
	}
	if rest, _ := io.ReadAll(br); string(rest) != "456789" {
		t.Errorf("left %q", rest)
	}
}

// ChunkSize counts what a chunk DataWriter writes.
func TestChunkSize(t *testing.T) {
	for _, body := range []string{
		"", "x", "x\r\n", "x\n", "x\r", "\r", "\n", "\r\n", "a\r\rb", "a\r\r\nb\n\n", ".dot\r\n.", "a\r",
	} {
		for _, hdr := range []string{"", "Subject: x\r\n\r\n", "Subject: x\r"} {
			m := &Message{Header: []byte(hdr), Body: BodyBytes([]byte(body))}
			got, err := ChunkSize(m)
			want := chunkWritten(t, m)
			if err != nil || got != int64(len(want)) {
				t.Errorf("ChunkSize(%q + %q) = %d, %v; the writer wrote %d: %q", hdr, body, got, err, len(want), want)
			}
		}
	}
}

// chunkWritten returns what NewChunkWriter writes for m.
func chunkWritten(t testing.TB, m *Message) []byte {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	w := NewChunkWriter(bw)
	w.Write(m.Header)
	if _, err := m.Body.WriteTo(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzChunkReader checks the BDAT framing: every chunk is read exactly,
// whatever it holds and however the reads are cut, the stream is in
// step after it, and the message either comes out whole (a CRLF added
// to a last line without one) with lines that DATA could carry, or is
// refused, the same way however it was cut into chunks.
func FuzzChunkReader(f *testing.F) {
	for _, s := range []string{
		"Subject: x\r\n\r\nhello\r\n", "a\nb\r\n", "a\rb", "a\r", ".\r\nQUIT\r\n", "x\x00\r\n",
		strings.Repeat("y", 80) + "\r\n", "BDAT 5 LAST\r\nhello",
	} {
		f.Add([]byte(s), uint8(3), uint8(7), uint8(0))
	}
	f.Fuzz(func(t *testing.T, msg []byte, c1, c2, size uint8) {
		cuts := []int{int(c1), int(c1) + int(c2)}
		got, err, rest := readChunksFuzz(msg, cuts, size, 60)
		if rest != "NEXT" {
			t.Fatalf("left %q on the stream", rest)
		}
		whole, wholeErr, _ := readChunksFuzz(msg, nil, 255, 60)
		if (err == nil) != (wholeErr == nil) || err == nil && !bytes.Equal(got, whole) {
			t.Fatalf("cut %v: %q, %v; in one chunk: %q, %v", cuts, got, err, whole, wholeErr)
		}
		if err != nil {
			return
		}
		want := msg
		if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
			want = append(append([]byte{}, msg...), "\r\n"...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("got %q from %q", got, msg)
		}
		for _, l := range bytes.SplitAfter(got, []byte("\r\n")) {
			if len(l) > 60 || bytes.ContainsAny(bytes.TrimSuffix(l, []byte("\r\n")), "\r\n\x00") {
				t.Fatalf("accepted line %q", l)
			}
		}
		// What was taken leaves by DATA as it came, and by BDAT with the
		// size counted.
		m := &Message{Body: BodyBytes(got)}
		if n, _ := ChunkSize(m); n != int64(len(got)) {
			t.Fatalf("ChunkSize %d of a clean message of %d", n, len(got))
		}
	})
}

func readChunksFuzz(msg []byte, cuts []int, size uint8, maxLine int) ([]byte, error, string) {
	return readChunksFrom(fuzzSource(append(append([]byte{}, msg...), "NEXT"...), size), msg, cuts, maxLine)
}

// FuzzChunkSize checks that ChunkSize counts exactly what the chunk
// writer sends for any message, however its body is cut: the size
// announced in BDAT is the octets that follow.
func FuzzChunkSize(f *testing.F) {
	for _, s := range []string{"a\r\nb", "a\nb\r", "\r\r\n\n", ".x\r\n"} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		k := min(int(cut), len(data))
		m := &Message{Header: data[:k], Body: BodyBytes(data[k:])}
		n, err := ChunkSize(m)
		if err != nil {
			t.Fatal(err)
		}
		if w := chunkWritten(t, m); int64(len(w)) != n {
			t.Fatalf("ChunkSize %d, writer wrote %d: %q", n, len(w), w)
		}
	})
}
