package smtp

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestDataWriter(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"a", "a\r\n"},
		{".", "..\r\n"},
		{"a\r\n.b\r\n", "a\r\n..b\r\n"},
		{"a\n.b\nc", "a\r\n..b\r\nc\r\n"},
		{"a\rb\r", "a\r\nb\r\n"},
		{"a\rb", "a\r\nb\r\n"},
		{"..\r\n.\r\n", "...\r\n..\r\n"},
		{"x.y\r\n", "x.y\r\n"},
		{"a\r\n\r\n.\r\n", "a\r\n\r\n..\r\n"},
		{"\r\r\n.", "\r\n\r\n..\r\n"},
	} {
		// Whole, and in every split into two pieces.
		for k := 0; k <= len(c.in); k++ {
			var b bytes.Buffer
			bw := bufio.NewWriter(&b)
			d := NewDataWriter(bw)
			d.Write([]byte(c.in[:k]))
			d.Write([]byte(c.in[k:]))
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			if b.String() != c.want {
				t.Errorf("%q split at %d: got %q, want %q", c.in, k, b.String(), c.want)
			}
		}
	}
}

// crlf makes every line ending of s CRLF, as DataWriter promises the
// next hop: CRLF stays, a bare CR or bare LF becomes CRLF.
var crlf = strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n")

// FuzzDataWriter checks DataWriter against the receiving side: what it
// writes, in two pieces split anywhere, followed by the terminator, is
// read back by the strict DATA reader (the one Postern's server uses) as
// the message with every line ending made CRLF, and a final CRLF added to
// a message that lacks one; the terminator ends it, and nothing the
// message holds does.
func FuzzDataWriter(f *testing.F) {
	for _, s := range []string{"", "a", ".", ".\r\n", "a\r\n.\r\nb", "a\n.\nb", "a\r.\rb", "..\r\n", "\r\r\n", ".\n.\r\n.", "x\r\n.\r\nQUIT\r\n"} {
		f.Add([]byte(s), uint16(len(s)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		if bytes.IndexByte(data, 0) >= 0 {
			return // the DATA reader refuses NUL; nothing to compare
		}
		k := int(split) % (len(data) + 1)
		var out bytes.Buffer
		d := NewDataWriter(bufio.NewWriter(&out))
		d.Write(data[:k])
		d.Write(data[k:])
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		out.WriteString(".\r\nNEXT\r\n")
		want := crlf.Replace(string(data))
		if want != "" && !strings.HasSuffix(want, "\r\n") {
			want += "\r\n"
		}
		br := bufio.NewReader(&out)
		var got bytes.Buffer
		if err := ReadData(br, &got, DataLimits{MaxLine: 1 << 20}); err != nil {
			t.Fatalf("the DATA reader refused what DataWriter wrote for %q: %v", data, err)
		}
		if got.String() != want {
			t.Fatalf("read back %q, want %q", got.String(), want)
		}
		if rest, _ := br.ReadString(0); rest != "NEXT\r\n" {
			t.Fatalf("after the terminator: %q, want the next command", rest)
		}
	})
}

// WriteMessage writes a message whose body is in a file as the same
// message in memory.
func TestWriteMessageFromFile(t *testing.T) {
	body := strings.Repeat(".line\r\n", 20000) + "end"
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("junk" + body)
	var a, b bytes.Buffer
	hdr := []byte("Subject: x\r\n\r\n")
	wa, wb := bufio.NewWriter(&a), bufio.NewWriter(&b)
	if err := WriteMessage(wa, &Message{Header: hdr, Body: BodyFile(f, 4, int64(len(body)))}); err != nil {
		t.Fatal(err)
	}
	WriteMessage(wb, &Message{Header: hdr, Body: BodyBytes([]byte(body))})
	if a.String() != b.String() || !strings.HasSuffix(a.String(), "\r\n..line\r\nend\r\n") {
		t.Errorf("from a file %d bytes, from memory %d bytes", a.Len(), b.Len())
	}
}
