package delivery

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"postern/internal/delivery/dovecottest"
	"postern/internal/smtp"
	"postern/internal/testkit"
)

// recordingProxy relays one connection at a time to addr and keeps what
// the client sent.
type recordingProxy struct {
	ln   net.Listener
	mu   sync.Mutex
	sent strings.Builder
}

func newRecordingProxy(t *testing.T, addr string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(c, s); c.Close() }()
			go func() { io.Copy(io.MultiWriter(s, p), c); s.Close() }()
		}
	}()
	return p
}

func (p *recordingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.Write(b)
}

func (p *recordingProxy) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent.String()
}

// TestLMTPDovecotBdat delivers to the real Dovecot, which offers
// CHUNKING: the message goes as one BDAT LAST chunk (seen on the wire),
// its body streamed from a file, dot-led lines as they are, and Dovecot
// answers one reply per recipient as after the final dot.
func TestLMTPDovecotBdat(t *testing.T) {
	dc := dovecottest.Start(t, "alice@example.test", "bob@example.test")
	px := newRecordingProxy(t, dc.Addr)
	l := &LMTP{Network: "tcp", Address: px.ln.Addr().String(), Hostname: "mx.postern.test"}
	body := "first\r\n.\r\n..two dots\r\n" + strings.Repeat("line of the body\r\n", 20000)
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	msg := &smtp.Message{Header: []byte("Subject: chunked\r\n\r\n"), Body: smtp.BodyFile(fh, 0, int64(len(body)))}
	errs := l.DeliverMessage(context.Background(), "a@sender.example",
		[]string{"alice@example.test", "nobody@example.test", "bob@example.test"}, msg)
	if errs[0] != nil || errs[2] != nil || errs[1] == nil {
		t.Fatalf("errors %v", errs)
	}
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		got := dc.WaitMessage(u, "Subject: chunked")
		if !strings.HasSuffix(strings.ReplaceAll(got, "\r\n", "\n"), strings.ReplaceAll(body, "\r\n", "\n")) {
			t.Errorf("%s: stored %d octets, body changed", u, len(got))
		}
	}
	testkit.WaitFor(t, "the QUIT", func() bool { return strings.Contains(px.String(), "QUIT\r\n") })
	sent := px.String()
	if !strings.Contains(sent, "\r\nBDAT "+strconv.Itoa(len(msg.Header)+len(body))+" LAST\r\nSubject: chunked\r\n") || strings.Contains(sent, "\r\nDATA\r\n") {
		t.Errorf("the client did not send one BDAT LAST chunk:\n%.300q", sent)
	}
}
