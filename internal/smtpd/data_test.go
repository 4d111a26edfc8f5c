package smtpd

import (
	"crypto/tls"
	"errors"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

// transaction opens MAIL and RCPT on c (already greeted) and sends DATA.
func (c *client) transaction(from, to string) {
	c.t.Helper()
	c.do("MAIL FROM:<"+from+">", "250 2.1.0")
	c.do("RCPT TO:<"+to+">", "250 2.1.5")
	c.do("DATA", "354 ")
}

func TestDataAcceptedMX(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	body := message("From: a@example.net", "Subject: test") + "..dot-stuffed\r\n"
	got := c.do(body+".", "250 2.0.0 OK queued as ")
	id := strings.TrimPrefix(got, "250 2.0.0 OK queued as ")
	if !regexp.MustCompile(`^[0-9a-v]{20}$`).MatchString(id) {
		t.Errorf("queue id %q", id)
	}
	m := f.spool.messages()[0]
	if m.env.ID != id || m.env.Helo != "client.example" || m.env.Listener != f.srv.Name ||
		m.env.Body != "7BIT" || m.env.SMTPUTF8 || m.env.AuthUser != "" || !m.env.ReceivedAt.Equal(fixedNow) ||
		m.env.Remote.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("envelope %+v", m.env)
	}
	wantRcvd := "Received: from client.example ([127.0.0.1]) by " + testHost + " (Postern)\r\n" +
		"\twith ESMTP id " + id + " for <bob@example.org>;\r\n" +
		"\tFri, 27 Nov 2026 09:30:00 +0000\r\n"
	wantBody := strings.Replace(body, "..dot", ".dot", 1)
	if string(m.data) != wantRcvd+wantBody {
		t.Errorf("spooled\n%q\nwant\n%q", m.data, wantRcvd+wantBody)
	}
	if strings.Contains(string(m.data), "Message-ID") || strings.Contains(string(m.data), "\r\nDate:") {
		t.Errorf("mx repaired headers:\n%s", m.data)
	}
	waitLog(t, f, "id="+id+" from=a@example.net rcpts=1")
}

func TestDataSmuggling(t *testing.T) {
	for name, payload := range map[string]string{
		"LF.LF":     "Hello\n.\nMAIL FROM:<evil@example.net>\r\n",
		"CRLF.LF":   "Hello\r\n.\nMAIL FROM:<evil@example.net>\r\n",
		"LF.CRLF":   "Hello\n.\r\nMAIL FROM:<evil@example.net>\r\n",
		"CR.CR":     "Hello\r.\rMAIL FROM:<evil@example.net>\r\n",
		"CRLF.CR":   "Hello\r\n.\rMAIL FROM:<evil@example.net>\r\n",
		"bare CR":   "Hel\rlo\r\n",
		"bare LF":   "Hel\nlo\r\n",
		"NUL":       "Hel\x00lo\r\n",
		"LF at end": "Hello\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, RoleMX)
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			c.transaction("a@example.net", "bob@example.org")
			c.raw("Subject: x\r\n\r\n" + payload + ".\r\n")
			c.expect("554 5.6.0")
			// The session is still in step, and usable.
			c.do("NOOP", "250 2.0.0")
			c.do("RCPT TO:<bob@example.org>", "503 5.5.1")
			c.transaction("a@example.net", "bob@example.org")
			c.do(message("From: a@example.net")+".", "250 2.0.0")
			msgs := f.spool.messages()
			if len(msgs) != 1 || strings.Contains(string(msgs[0].data), "evil") {
				t.Errorf("spooled %d messages: %+v", len(msgs), msgs)
			}
		})
	}
}

func TestDataLimits(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxMessageSize = 1000 })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.do(strings.Repeat(strings.Repeat("x", 98)+"\r\n", 11)+".", "552 5.3.4 Message too big")
	c.transaction("a@example.net", "bob@example.org")
	c.do(strings.Repeat("x", 999)+"\r\n.", "500 5.5.2 Line too long")
	c.transaction("a@example.net", "bob@example.org")
	c.do(strings.Repeat(strings.Repeat("x", 98)+"\r\n", 10)+".", "250 2.0.0") // exactly 1000
	if n := len(f.spool.messages()); n != 1 {
		t.Errorf("%d messages spooled", n)
	}
}

func TestDataTimeout(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.DataTimeout = time.Second })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	// Each read restarts the clock: slow but steady is fine.
	start := time.Now()
	for range 4 {
		c.raw("Subject: slow\r\n")
		time.Sleep(300 * time.Millisecond)
	}
	c.raw("\r\nbody\r\n")
	c.expect("421 4.4.2 Timeout")
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("timed out after %v", d)
	}
	c.expectClosed()
}

func TestSpoolError(t *testing.T) {
	f := newFixture(t, RoleMX)
	f.spool.fail = errors.New("disk full")
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net")+".", "451 4.3.0 Local error, try again")
	c.do("DATA", "503 5.5.1")
	waitLog(t, f, "disk full")
}

func TestSubmissionHeaders(t *testing.T) {
	f := newFixture(t, RoleSubmission)
	c := f.dial()
	cs := c.loginTLS()
	c.do("MAIL FROM:<alice@example.org>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.do("RCPT TO:<carol@example.org>", "250 2.1.5")
	c.do("DATA", "354 ")
	c.do(message("From: alice@example.org", "Subject: no id, no date")+".", "250 2.0.0")
	m := f.spool.messages()[0]
	id := m.env.ID
	proto := "(" + strings.ReplaceAll(tls.VersionName(cs.Version), " ", "") + " " + tls.CipherSuiteName(cs.CipherSuite) + ")"
	wantHead := "Received: from client.example ([127.0.0.1]) by " + testHost + " (Postern)\r\n" +
		"\twith ESMTPSA id " + id + " " + proto + ";\r\n" +
		"\tFri, 27 Nov 2026 09:30:00 +0000\r\n" +
		"Message-ID: <" + id + "@" + testHost + ">\r\n" +
		"Date: Fri, 27 Nov 2026 09:30:00 +0000\r\n" +
		"From: alice@example.org\r\n"
	if !strings.HasPrefix(string(m.data), wantHead) {
		t.Errorf("spooled\n%s\nwant prefix\n%s", m.data, wantHead)
	}
	// Present headers are kept as they are.
	c.transaction("alice@example.org", "bob@example.org")
	c.do(message("Date: Thu, 26 Nov 2026 10:00:00 +0100", "Message-ID: <x@y>", "From: alice@example.org")+".", "250 2.0.0")
	data := string(f.spool.messages()[1].data)
	if strings.Count(data, "Message-ID") != 1 || strings.Count(data, "Date:") != 1 || !strings.Contains(data, "for <bob@example.org>") {
		t.Errorf("spooled\n%s", data)
	}
}

func TestSubmissionFromCheck(t *testing.T) {
	f := newFixture(t, RoleSubmissions, func(s *Server) { s.Limits.MaxErrors = 100 })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.login()
	for _, tt := range []struct{ hdr, want string }{
		{"From: bob@example.org", "553 5.7.1"},
		{"From: alice@example.org, bob@example.org", "553 5.7.1"},
		{"From: Bob <dirfail@example.org>", "451 4.3.0"},
		{"Subject: no from", "554 5.6.0"},
		{"From: <<<not an address", "554 5.6.0"},
		{"From: alice@example.org\r\nFrom: alias@example.org", "554 5.6.0"},
		{"From: \"Alice A.\" <alice@EXAMPLE.ORG>,\r\n alias@example.org", "250 2.0.0"},
	} {
		c.transaction("alice@example.org", "bob@example.org")
		c.do(message(tt.hdr)+".", tt.want)
	}
	if n := len(f.spool.messages()); n != 1 {
		t.Errorf("%d messages spooled, want 1", n)
	}
}

func TestReceivedProtocols(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("HELO old.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net")+".", "250 ")
	c.do("EHLO new.example", "250 ")
	c.do("MAIL FROM:<ä@example.net> SMTPUTF8", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 ")
	c.do("RCPT TO:<carol@example.org>", "250 ")
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net")+".", "250 ")
	msgs := f.spool.messages()
	if !strings.Contains(unfold(msgs[0].data), "with SMTP id") {
		t.Errorf("HELO message:\n%s", msgs[0].data)
	}
	if d := unfold(msgs[1].data); !strings.Contains(d, "with UTF8SMTP id") || strings.Contains(d, " for <") {
		t.Errorf("SMTPUTF8 message:\n%s", d)
	}
	if !msgs[1].env.SMTPUTF8 || msgs[1].env.From != "ä@example.net" {
		t.Errorf("envelope %+v", msgs[1].env)
	}
}

func unfold(b []byte) string { return strings.ReplaceAll(string(b), "\r\n\t", " ") }

func TestClientEOFInData(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.raw("Subject: cut\r\n\r\npartial")
	c.conn.Close()
	waitLog(t, f, "session end")
	if strings.Contains(f.logs.String(), "rejected") || len(f.spool.messages()) != 0 {
		t.Errorf("logs:\n%s", f.logs)
	}
}

func TestHeaderBufPrepend(t *testing.T) {
	for _, n := range []int{0, 100, headroom, headroom + 1, 3000} {
		b := append(make([]byte, headroom), "Subject: x\r\n\r\n"...)
		h := &headerBuf{b: b, start: headroom}
		head := strings.Repeat("h", n)
		h.prepend([]byte(head))
		h.prepend([]byte("X: 1\r\n"))
		if got := string(h.bytes()); got != "X: 1\r\n"+head+"Subject: x\r\n\r\n" {
			t.Errorf("head of %d: got %d bytes %.20q...", n, len(got), got)
		}
	}
}
