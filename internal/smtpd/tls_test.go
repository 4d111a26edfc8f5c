package smtpd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"postern/internal/testkit"
)

// TestSTARTTLSDiscardsPipelined checks RFC 3207 §4.2: commands sent in
// plaintext after STARTTLS are thrown away, and the session starts over.
func TestSTARTTLSDiscardsPipelined(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmission} {
		t.Run(role.String(), func(t *testing.T) {
			f := newFixture(t, role)
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			c.raw("STARTTLS\r\nEHLO x\r\nMAIL FROM:<a@b>\r\n")
			c.expect("220 2.0.0 Ready to start TLS")
			// Anything more in plaintext would show here or break the handshake.
			time.Sleep(50 * time.Millisecond)
			if n := c.br.Buffered(); n > 0 {
				t.Fatalf("%d plaintext bytes after 220", n)
			}
			tc := tls.Client(c.conn, clientTLSConfig())
			tc.SetDeadline(time.Now().Add(5 * time.Second))
			if err := tc.Handshake(); err != nil {
				t.Fatalf("handshake: %v", err)
			}
			c.conn, c.br = tc, bufio.NewReader(tc)
			// The pipelined EHLO was discarded, and so was the first one.
			c.do("MAIL FROM:<a@example.net>", "503 5.5.1")
			c.do("AUTH PLAIN "+plainAuth("alice", testPassword), map[Role]string{RoleMX: "502 5.5.1", RoleSubmission: "503 5.5.1"}[role])
			c.do("EHLO client.example", "250 ")
			c.do("STARTTLS", "503 5.5.1")
			if role == RoleMX {
				c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
			} else {
				c.do("MAIL FROM:<alice@example.org>", "530 5.7.0")
			}
		})
	}
}

func TestSTARTTLSReplies(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("STARTTLS now", "501 5.5.4")
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	cs := c.startTLS() // STARTTLS needs no EHLO and ends the transaction
	if cs.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x", cs.Version)
	}
	c.do("STARTTLS", "503 5.5.1")
	c.do("RCPT TO:<bob@example.org>", "503 5.5.1")
	c.do("EHLO client.example", "250 ")
	c.do("RCPT TO:<bob@example.org>", "503 5.5.1") // no MAIL survived
	c.script(
		step{"MAIL FROM:<a@example.net>", "250 "},
		step{"RCPT TO:<bob@example.org>", "250 "},
		step{"DATA", "354 "},
		step{message("From: a@example.net") + ".", "250 2.0.0"},
	)
	data := string(f.spool.messages()[0].data)
	wantWith := "with ESMTPS id "
	if !strings.Contains(data, wantWith) || !strings.Contains(data, "(TLS1.3 TLS_") {
		t.Errorf("Received lacks %q or TLS comment:\n%s", wantWith, data)
	}
	if !regexp.MustCompile(`msg=tls listener=[\w-]+ session=\w+ version="TLS 1.3" cipher=TLS_\w+ sni=mx.example.org`).MatchString(f.logs.String()) {
		t.Errorf("no tls log event:\n%s", f.logs)
	}
}

func TestSTARTTLSHandshakeFailure(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("STARTTLS", "220 2.0.0")
	c.raw("EHLO this is not a ClientHello\r\n")
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := c.br.ReadString('\n') // at most a TLS alert, then EOF
	if strings.HasPrefix(b, "250") || strings.HasPrefix(b, "5") {
		t.Fatalf("server answered in plaintext: %q", b)
	}
	c.expectClosed()
	waitLog(t, f, "tls handshake failed")
}

func waitLog(t *testing.T, f *fixture, s string) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%q in the log", s), func() bool { return strings.Contains(f.logs.String(), s) })
}

func TestSTARTTLSWithoutConfig(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.TLSConfig = nil })
	c := f.dial()
	if got := c.do("EHLO client.example", "250 "); strings.Contains(got, "STARTTLS") {
		t.Errorf("STARTTLS offered without a TLSConfig:\n%s", got)
	}
	c.do("STARTTLS", "454 4.7.0")
}

func TestSubmissionNeedsTLSForAuth(t *testing.T) {
	f := newFixture(t, RoleSubmission)
	c := f.dial()
	c.do("AUTH PLAIN "+plainAuth("alice", testPassword), "503 5.5.1") // no EHLO yet
	got := c.do("EHLO client.example", "250 ")
	if strings.Contains(got, "AUTH") || !strings.Contains(got, "STARTTLS") {
		t.Errorf("EHLO before TLS:\n%s", got)
	}
	c.do("AUTH PLAIN "+plainAuth("alice", testPassword), "530 5.7.0 Must issue a STARTTLS command first")
	c.do("MAIL FROM:<alice@example.org>", "530 5.7.0 Authentication required")
	c.startTLS()
	c.do("AUTH PLAIN "+plainAuth("alice", testPassword), "503 5.5.1") // EHLO again first
	got = c.do("EHLO client.example", "250 ")
	if !strings.Contains(got, "250 AUTH PLAIN LOGIN") || strings.Contains(got, "STARTTLS") {
		t.Errorf("EHLO after TLS:\n%s", got)
	}
	c.do("MAIL FROM:<alice@example.org>", "530 5.7.0 Authentication required")
	c.login()
	c.do("AUTH PLAIN "+plainAuth("alice", testPassword), "503 5.5.1")
	c.do("MAIL FROM:<alice@example.org>", "250 2.1.0")
	c.do("AUTH LOGIN", "503 5.5.1")
}

func TestAuthReplies(t *testing.T) {
	f := newFixture(t, RoleSubmissions, func(s *Server) { s.Limits.MaxErrors = 100 })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.script(
		step{"AUTH", "501 5.5.4"},
		step{"AUTH CRAM-MD5", "504 5.5.4"},
		step{"AUTH PLAIN !!!notbase64", "501 5.5.2"},
		step{"AUTH PLAIN =", "501 5.5.2"}, // empty response: malformed PLAIN
		step{"AUTH PLAIN " + b64("just-one-part"), "501 5.5.2"},
		step{"AUTH PLAIN " + plainAuth("alice", "wrong"), "535 5.7.8 Authentication credentials invalid"},
		step{"AUTH PLAIN " + plainAuth("nobody", "x"), "535 5.7.8"},
		step{"AUTH PLAIN " + plainAuth("temp", "x"), "454 4.7.0"},
		step{"AUTH PLAIN", "334 "},
		step{"*", "501 5.0.0 Authentication canceled"},
		step{"AUTH PLAIN", "334 "},
		step{"%%%", "501 5.5.2"},
		step{"AUTH PLAIN", "334 "},
		step{strings.Repeat("A", 13000), "500 5.5.6"},
		step{"NOOP", "250 2.0.0"},
		// AUTH lines may pass 512 octets (RFC 4954 §4).
		step{"AUTH PLAIN " + plainAuth("alice", strings.Repeat("p", 2000)), "535 5.7.8"},
		step{"AUTH PLAIN " + strings.Repeat("A", 13000), "500 5.5.2 Line too long"},
		step{"AUTH login", "334 VXNlcm5hbWU6"},
		step{b64("alice"), "334 UGFzc3dvcmQ6"},
		step{b64(testPassword), "235 2.7.0 Authentication successful"},
		step{"AUTH PLAIN " + plainAuth("alice", testPassword), "503 5.5.1"},
	)
	c.do("AUTH PLAIN", "503 5.5.1")
	logs := f.logs.String()
	for _, secret := range []string{testPassword, b64(testPassword), plainAuth("alice", testPassword), "wrong"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains secret %q", secret)
		}
	}
	for _, want := range []string{"mechanism=PLAIN user=alice remote=127.0.0.1", "outcome=failure", "outcome=success",
		"outcome=canceled", "outcome=malformed", "outcome=error"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestAuthWithEmptyInitialResponseChallenge(t *testing.T) {
	f := newFixture(t, RoleSubmissions)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("AUTH PLAIN", "334 ")
	c.do(plainAuth("alice", testPassword), "235 2.7.0")
}

func TestAuthFailDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	f := newFixture(t, RoleSubmissions, func(s *Server) { s.Limits.AuthFailDelay = delay })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	start := time.Now()
	c.do("AUTH PLAIN "+plainAuth("alice", "wrong"), "535 5.7.8")
	if d := time.Since(start); d < delay {
		t.Errorf("535 after %v, want at least %v", d, delay)
	}
	start = time.Now()
	c.do("AUTH PLAIN "+b64("garbage"), "501 5.5.2") // malformed: no delay
	if d := time.Since(start); d >= delay {
		t.Errorf("501 after %v", d)
	}
}

func TestAuthFailDelayEndsAtShutdown(t *testing.T) {
	f := newFixture(t, RoleSubmissions, func(s *Server) { s.Limits.AuthFailDelay = time.Minute })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.send("AUTH PLAIN " + plainAuth("alice", "wrong"))
	time.Sleep(50 * time.Millisecond)
	go f.srv.Shutdown(t.Context())
	start := time.Now()
	c.expect("421 4.3.2")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	c.expectClosed()
}

func TestSubmissionsImplicitTLS(t *testing.T) {
	f := newFixture(t, RoleSubmissions)
	c := f.dial()
	got := c.do("EHLO client.example", "250 ")
	if strings.Contains(got, "STARTTLS") || !strings.Contains(got, "AUTH PLAIN LOGIN") {
		t.Errorf("EHLO on 465:\n%s", got)
	}
	c.do("STARTTLS", "503 5.5.1")
	c.do("MAIL FROM:<alice@example.org>", "530 5.7.0 Authentication required")
	c.login()
	c.script(
		step{"MAIL FROM:<>", "553 5.7.1"},
		step{"MAIL FROM:<bob@example.org>", "553 5.7.1 Sender address not owned by user"},
		step{"MAIL FROM:<dirfail@example.org>", "451 4.3.0"},
		step{"MAIL FROM:<alias@EXAMPLE.org>", "250 2.1.0"},
		step{"RCPT TO:<someone@elsewhere.example>", "250 2.1.5"}, // authenticated relay
		step{"RCPT TO:<nobody@example.org>", "550 5.1.1"},
		step{"RCPT TO:<bob@example.org>", "250 2.1.5"},
		step{"AUTH PLAIN", "503 5.5.1"},
		step{"DATA", "354 "},
		step{message("From: Alice <alice@example.org>", "Subject: hi") + ".", "250 2.0.0"},
	)
	m := f.spool.messages()[0]
	if m.env.AuthUser != "alice" || m.env.From != "alias@example.org" || len(m.env.Recipients) != 2 {
		t.Errorf("envelope %+v", m.env)
	}
}

func TestImplicitTLSHandshakeFailure(t *testing.T) {
	f := newFixture(t, RoleSubmissions)
	c := (&fixture{t: t, srv: &Server{Role: RoleMX}, addr: f.addr}).dialNoGreeting()
	c.raw("EHLO plaintext.example\r\n")
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := c.br.ReadString('\n')
	if strings.HasPrefix(b, "220") || strings.HasPrefix(b, "250") {
		t.Fatalf("server answered in plaintext: %q", b)
	}
	c.expectClosed()
}
