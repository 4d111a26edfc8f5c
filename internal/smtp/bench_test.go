package smtp

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// message returns a dot-stuffed message of about n bytes of 78-octet
// lines, some starting with a dot, followed by the terminator.
func message(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.org\r\nSubject: benchmark\r\n\r\n")
	line := strings.Repeat("abcdefghij", 8)[:76] + "\r\n"
	for i := 0; b.Len() < n; i++ {
		if i%50 == 0 {
			b.WriteString(".")
		}
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// replay is an io.Reader that serves the same bytes again after each
// Reset, so benchmarks allocate no readers.
type replay struct {
	data []byte
	off  int
}

func (r *replay) Read(p []byte) (int, error) {
	if r.off == len(r.data) {
		r.off = 0 // loop for the next iteration
	}
	n := copy(p, r.data[r.off:])
	r.off += n
	return n, nil
}

func benchmarkReadData(b *testing.B, size, bufSize int) {
	msg := message(size)
	br := bufio.NewReaderSize(&replay{data: msg}, bufSize)
	var dst bytes.Buffer
	dst.Grow(len(msg))
	lim := DataLimits{MaxSize: 64 << 20, MaxLine: 1000}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		if err := ReadData(br, &dst, lim); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadData10KiB(b *testing.B) { benchmarkReadData(b, 10<<10, 64<<10) }
func BenchmarkReadData1MiB(b *testing.B)  { benchmarkReadData(b, 1<<20, 64<<10) }

// The same with bufio's default 4 KiB buffer.
func BenchmarkReadData10KiBBuf4K(b *testing.B) { benchmarkReadData(b, 10<<10, 4096) }
func BenchmarkReadData1MiBBuf4K(b *testing.B)  { benchmarkReadData(b, 1<<20, 4096) }

func BenchmarkReadLine(b *testing.B) {
	cmds := []byte("MAIL FROM:<someone@example.com> SIZE=12345 BODY=8BITMIME\r\nRCPT TO:<other@example.org>\r\nDATA\r\n")
	r := NewReader(bufio.NewReader(&replay{data: cmds}))
	b.SetBytes(int64(len(cmds)) / 3)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadLine(MaxCommandLine); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMailFrom(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseMailFrom("FROM:<someone@example.com> SIZE=12345 BODY=8BITMIME", true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCommand(b *testing.B) {
	line := []byte("RCPT TO:<other@example.org>")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCommand(line); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReadDataAllocs checks that ReadData allocates nothing once dst has
// room (the server pools its buffers).
func TestReadDataAllocs(t *testing.T) {
	msg := message(10 << 10)
	br := bufio.NewReader(&replay{data: msg})
	var dst bytes.Buffer
	dst.Grow(len(msg))
	n := testing.AllocsPerRun(20, func() {
		dst.Reset()
		if err := ReadData(br, &dst, DataLimits{}); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("ReadData allocates %v times per message", n)
	}
	r := NewReader(bufio.NewReader(&replay{data: []byte("NOOP\r\n")}))
	if n := testing.AllocsPerRun(100, func() { r.ReadLine(512) }); n != 0 {
		t.Errorf("ReadLine allocates %v times per line", n)
	}
}

// benchmarkChunkReader reads a message of about size octets as one
// BDAT chunk: the CPU cost of the line checks, next to ReadData's.
func benchmarkChunkReader(b *testing.B, size, bufSize int) {
	msg := message(size)
	msg = msg[:len(msg)-3] // no terminator in a chunk
	br := bufio.NewReaderSize(&replay{data: msg}, bufSize)
	var dst bytes.Buffer
	dst.Grow(len(msg))
	var r ChunkReader
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		dst.Reset()
		r.Reset(1000)
		if err := r.Read(br, int64(len(msg)), &dst); err != nil {
			b.Fatal(err)
		}
		if err := r.End(&dst); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkReader10KiBBuf4K(b *testing.B) { benchmarkChunkReader(b, 10<<10, 4096) }
func BenchmarkChunkReader1MiBBuf4K(b *testing.B)  { benchmarkChunkReader(b, 1<<20, 4096) }
