package remote

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"postern/internal/delivery/policy"
	"postern/internal/smtp"
)

// A next hop that offers CHUNKING gets the message as one BDAT LAST
// chunk of the size counted (RFC 3030 §2): no DATA, no dot-stuffing,
// line endings made CRLF, the body streamed from its file; its reply
// decides the outcome, with the step named BDAT.
func TestDeliverBdat(t *testing.T) {
	var refuse atomic.Bool
	s := newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Ext = []string{"PIPELINING", "CHUNKING"}
		s.Reply = func(cmd string) string {
			if cmd == "." && refuse.Load() {
				return "554 5.6.0 content refused"
			}
			return ""
		}
	})
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	body := "hello\r\n.dot line\r\n..two\r\n.\r\nbare LF\nlast"
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, []byte("JUNK"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	msg := testMsg("b@example.test", "c@example.test")
	msg.Data = &smtp.Message{Header: []byte("Subject: hi\r\n\r\n"), Body: smtp.BodyFile(fh, 4, int64(len(body)))}
	delivered(t, f.one(t, msg))
	_, _, _, msgs := s.stats()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	want := "Subject: hi\r\n\r\n" + strings.ReplaceAll(body, "bare LF\n", "bare LF\r\n") + "\r\n"
	if string(msgs[0].Raw) != want {
		t.Errorf("wire %q, want %q", msgs[0].Raw, want)
	}
	if len(msgs[0].BDAT) != 1 || msgs[0].BDAT[0] != "BDAT "+itoa(len(want))+" LAST" {
		t.Errorf("BDAT commands %q", msgs[0].BDAT)
	}

	refuse.Store(true)
	failed(t, f.one(t, testMsg("b@example.test")), true, "content refused")
	if !strings.Contains(f.one(t, testMsg("b@example.test"))[0].Err.Error(), ": BDAT: 554 5.6.0") {
		t.Error("the error does not name BDAT")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
