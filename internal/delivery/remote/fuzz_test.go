package remote

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"postern/internal/smtp"
)

// crlf makes every line ending of s CRLF, as writeDotStuffed promises
// the next hop: CRLF stays, a bare CR or bare LF becomes CRLF.
var crlf = strings.NewReplacer("\r\n", "\r\n", "\r", "\r\n", "\n", "\r\n")

// FuzzDotStuffed checks writeDotStuffed against the receiving side: what
// it writes, followed by the terminator, is read back by the strict DATA
// reader (the same one Postern's server uses) as the message with every
// line ending made CRLF, and a final CRLF added to a message that lacks
// one; the terminator ends it, and nothing the message holds does.
func FuzzDotStuffed(f *testing.F) {
	for _, s := range []string{"", "a", ".", ".\r\n", "a\r\n.\r\nb", "a\n.\nb", "a\r.\rb", "..\r\n", "\r\r\n", ".\n.\r\n.", "x\r\n.\r\nQUIT\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.IndexByte(data, 0) >= 0 {
			return // the DATA reader refuses NUL; nothing to compare
		}
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		if err := writeDotStuffed(w, data); err != nil {
			t.Fatal(err)
		}
		out.WriteString(".\r\nNEXT\r\n")
		want := crlf.Replace(string(data))
		if want != "" && !strings.HasSuffix(want, "\r\n") {
			want += "\r\n"
		}
		br := bufio.NewReader(&out)
		var got bytes.Buffer
		if err := smtp.ReadData(br, &got, smtp.DataLimits{MaxLine: 1 << 20}); err != nil {
			t.Fatalf("the DATA reader refused what writeDotStuffed wrote for %q: %v", data, err)
		}
		if got.String() != want {
			t.Fatalf("read back %q, want %q", got.String(), want)
		}
		if rest, _ := br.ReadString(0); rest != "NEXT\r\n" {
			t.Fatalf("after the terminator: %q, want the next command", rest)
		}
	})
}
