package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fuzzConn is the server end of a net.Pipe whose reads come from a fixed
// input (then io.EOF), so a session ends when the input does.
type fuzzConn struct {
	net.Conn
	r io.Reader
}

func (c *fuzzConn) Read(p []byte) (int, error) { return c.r.Read(p) }

var replyLine = regexp.MustCompile(`^[2-5][0-9]{2}[ -]`)

func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nFrom: a@b\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"HELO x\r\nMAIL FROM:<> SIZE=10 BODY=8BITMIME\r\nRCPT TO:<Postmaster>\r\nDATA\r\n\n.\n\r\n.\r\n",
		"EHLO x\nRCPT TO:<a@b>\r\nAUTH PLAIN AGFsaWNlAHg=\r\n",
		"STARTTLS x\r\nNOOP\x00\r\nVRFY\r\nEXPN a\r\nHELP\r\nBDAT 1\r\n\r\n",
		"EHLO x\r\nMAIL FROM:<ä@b> SMTPUTF8\r\nRCPT TO:<bob@example.org> X=Y\r\nDATA x\r\nRSET\r\n",
		"EHLO x\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
		"POST / HTTP/1.1\r\nHost: x\r\n\r\nEHLO x\r\n",
		"EHLO x\r\nMAIL FROM:<a@example.net> RET=HDRS ENVID=a+2Bb\r\nRCPT TO:<bob@example.org> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+2B@x\r\nRCPT TO:<carol@example.org> NOTIFY=NEVER,FAILURE\r\nDATA\r\n\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b\u212A.test> SMTPUTF8\r\nRCPT TO:<a@wor\u212A.test>\r\n" + strings.Repeat("RCPT TO:<x@y.example>\r\n", 12),
	} {
		f.Add([]byte(s))
	}
	dir := newTestDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := &Server{
			Name:      "fuzz",
			Role:      RoleMX,
			Hostname:  testHost,
			TLSConfig: serverTLSConfig(),
			Limits:    Limits{MaxMessageSize: 4096, CommandTimeout: time.Second, DataTimeout: time.Second, TLSHandshakeTimeout: time.Second},
			Directory: dir,
			Spool:     &testSpool{},
			Logger:    slog.New(slog.DiscardHandler),
			After:     instantAfter, // the error delay, without waiting
		}
		server, client := net.Pipe()
		out := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(client)
			out <- b
		}()
		srv.serveConn(&fuzzConn{Conn: server, r: bytes.NewReader(in)})
		client.Close()
		checkReplies(t, <-out)
	})
}

// checkReplies checks that every line is a well-formed reply line of
// printable ASCII ending in CRLF (RFC 5321 §4.2), up to the 220 that starts TLS (after which bytes are TLS).
func checkReplies(t *testing.T, b []byte) {
	br := bufio.NewReader(bytes.NewReader(b))
	for {
		l, err := br.ReadString('\n')
		if err == io.EOF {
			if l != "" {
				t.Fatalf("unterminated reply %q", l)
			}
			return
		}
		if !replyLine.MatchString(l) || len(l) < 6 || l[len(l)-2] != '\r' {
			t.Fatalf("bad reply line %q in %q", l, b)
		}
		for _, c := range []byte(l[:len(l)-2]) {
			if c < ' ' || c > '~' {
				t.Fatalf("non-ASCII or control byte in reply %q", l)
			}
		}
		if l == "220 2.0.0 Ready to start TLS\r\n" {
			return
		}
	}
}
