package smtpd

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestGreetingAndQuit(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("QUIT", "221 2.0.0 Bye")
	c.expectClosed()
}

func TestSimpleCommands(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxErrors = 100 })
	c := f.dial()
	c.script(
		step{"NOOP", "250 2.0.0 OK"},
		step{"NOOP anything", "250 2.0.0 OK"},
		step{"RSET", "250 2.0.0 OK"},
		step{"RSET x", "501 5.5.4"},
		step{"VRFY bob", "252 2.5.0 Cannot VRFY user"},
		step{"VRFY", "501 5.5.4"},
		step{"EXPN staff", "502 5.5.1"},
		step{"HELP", "214 2.0.0 "},
		step{"FROB", "500 5.5.1 Command unrecognized"},
		step{"BDAT 0 LAST", "503 5.5.1"},
		step{"TURN", "502 5.5.1"},
		step{"ETRN example.org", "502 5.5.1"},
		step{"EHLO", "501 5.5.4"},
		step{"HELO", "501 5.5.4"},
		step{"EHLO  ", "501 5.5.4"},
		step{"MAIL FROM:<a@example.net>", "503 5.5.1"},
		step{"RCPT TO:<bob@example.org>", "503 5.5.1"},
		step{"DATA", "503 5.5.1"},
		step{"AUTH PLAIN", "502 5.5.1"}, // mx: never AUTH
		step{"noop", "250 2.0.0 OK"},
	)
	if got := c.do("HELO client.example", "250 "); got != "250 "+testHost {
		t.Errorf("HELO reply %q, want %q", got, "250 "+testHost)
	}
	c.do("AUTH PLAIN "+plainAuth("alice", testPassword), "502 5.5.1")
}

func TestEHLOExtensions(t *testing.T) {
	tests := []struct {
		role      Role
		startTLS  bool // do STARTTLS first
		want, not []string
	}{
		{RoleMX, false, []string{"STARTTLS"}, []string{"AUTH"}},
		{RoleMX, true, nil, []string{"STARTTLS", "AUTH"}},
		{RoleSubmission, false, []string{"STARTTLS"}, []string{"AUTH"}},
		{RoleSubmission, true, []string{"AUTH PLAIN LOGIN"}, []string{"STARTTLS"}},
		{RoleSubmissions, false, []string{"AUTH PLAIN LOGIN"}, []string{"STARTTLS"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/tls=%v", tt.role, tt.startTLS), func(t *testing.T) {
			f := newFixture(t, tt.role, func(s *Server) { s.Limits.MaxMessageSize = 1234567 })
			c := f.dial()
			if tt.startTLS {
				c.startTLS()
			}
			got := c.do("EHLO client.example", "250 ")
			lines := strings.Split(got, "\n")
			if lines[0] != "250-"+testHost {
				t.Errorf("first line %q", lines[0])
			}
			var kw []string
			for _, l := range lines[1:] {
				kw = append(kw, l[4:])
			}
			for _, w := range []string{"PIPELINING", "SIZE 1234567", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8"} {
				if !contains(kw, w) {
					t.Errorf("EHLO lacks %q: %q", w, kw)
				}
			}
			for _, w := range tt.want {
				if !contains(kw, w) {
					t.Errorf("EHLO lacks %q: %q", w, kw)
				}
			}
			for _, w := range tt.not {
				for _, k := range kw {
					if strings.HasPrefix(k, w) {
						t.Errorf("EHLO offers %q: %q", w, kw)
					}
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestMailFrom(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) {
		s.Limits.MaxMessageSize = 1000
		s.Limits.MaxErrors = 100
	})
	c := f.dial()
	c.script(
		step{"EHLO client.example", "250 "},
		step{"MAIL FROM:<a@example.net> SIZE=1001", "552 5.3.4"},
		step{"MAIL FROM:<a@example.net> SIZE=big", "501 5.5.4"},
		step{"MAIL FROM:<a@example.net> BODY=BINARYMIME", "501 5.5.4"},
		step{"MAIL FROM:<a@example.net> SMTPUTF8=yes", "501 5.5.4"},
		step{"MAIL FROM:<a@example.net> FOO=bar", "555 5.5.4"},
		step{"MAIL FROM:<a@example.net> AUTH=<>", "555 5.5.4"},
		step{"MAIL FROM:a@example.net", "501 "},
		step{"MAIL TO:<a@example.net>", "501 "},
		step{"MAIL FROM:<a@example.net> SIZE=1000 BODY=8bitmime SMTPUTF8", "250 2.1.0 OK"},
		step{"MAIL FROM:<a@example.net>", "503 5.5.1"},
		step{"RSET", "250 2.0.0"},
		step{"MAIL FROM:<>", "250 2.1.0"},  // null sender fine on mx
		step{"EHLO again.example", "250 "}, // resets the transaction
		step{"RCPT TO:<bob@example.org>", "503 5.5.1"},
		step{"HELO old.example", "250 "},
		step{"MAIL FROM:<a@example.net> BODY=8BITMIME", "555 5.5.4"}, // no ESMTP after HELO
		step{"MAIL FROM:<a@example.net>", "250 2.1.0"},
		step{"HELO old.example", "250 "},
		step{"RCPT TO:<bob@example.org>", "503 5.5.1"},
	)
}

func TestRcptTo(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxErrors = 100 })
	f.dir.addUser("postmaster@" + testHost)
	c := f.dial()
	c.script(
		step{"EHLO client.example", "250 "},
		step{"MAIL FROM:<a@example.net>", "250 2.1.0"},
		step{"RCPT TO:<x@elsewhere.example>", "550 5.7.1 Relaying denied"},
		step{"RCPT TO:<x@[127.0.0.1]>", "550 5.7.1 Relaying denied"},
		step{"RCPT TO:<bob@elsewhere.example>", "550 5.7.1"},
		step{"RCPT TO:<nobody@example.org>", "550 5.1.1 User unknown"},
		step{"RCPT TO:<dirfail@example.org>", "451 4.3.0"},
		step{"RCPT TO:<bob@example.org> XUNKNOWN=1", "555 5.5.4"},
		step{"RCPT TO:<>", "501 "},
		step{"RCPT TO:bob@example.org", "501 "},
		step{"RCPT TO:<bob@EXAMPLE.ORG>", "250 2.1.5 OK"},
		step{"RCPT TO:<bob@example.org>", "250 2.1.5 OK"}, // duplicate: stored once
		step{"RCPT TO:<Postmaster>", "250 2.1.5 OK"},
		step{"RCPT TO:<carol@example.org>", "250 2.1.5 OK"},
		step{"DATA", "354 "},
		step{message("From: a@example.net", "Subject: hi") + ".", "250 2.0.0 OK queued as "},
	)
	msgs := f.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages spooled", len(msgs))
	}
	want := []string{"bob@example.org", "postmaster@" + testHost, "carol@example.org"}
	if got := msgs[0].env.Recipients; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("recipients %q, want %q", got, want)
	}
	if got := msgs[0].env.From; got != "a@example.net" {
		t.Errorf("from %q", got)
	}
}

func TestPostmasterAddress(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.PostmasterAddress = "hostmaster@example.org" })
	f.dir.addUser("hostmaster@example.org")
	c := f.dial()
	c.script(
		step{"EHLO client.example", "250 "},
		step{"MAIL FROM:<>", "250 2.1.0"},
		step{"RCPT TO:<postMASTER>", "250 2.1.5"},
		step{"DATA", "354 "},
		step{message("From: a@example.net") + ".", "250 2.0.0"},
	)
	if got := f.spool.messages()[0].env.Recipients; len(got) != 1 || got[0] != "hostmaster@example.org" {
		t.Errorf("recipients %q", got)
	}
}

func TestTooManyRecipients(t *testing.T) {
	f := newFixture(t, RoleMX)
	for i := range 101 {
		f.dir.addUser(fmt.Sprintf("u%d@example.org", i))
	}
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 ")
	var b strings.Builder
	for i := range 101 {
		fmt.Fprintf(&b, "RCPT TO:<u%d@example.org>\r\n", i)
	}
	c.raw(b.String())
	for range 100 {
		c.expect("250 2.1.5")
	}
	c.expect("452 4.5.3 Too many recipients")
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net")+".", "250 2.0.0")
	if n := len(f.spool.messages()[0].env.Recipients); n != 100 {
		t.Errorf("%d recipients spooled, want 100", n)
	}
}

func TestDataSequence(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.script(
		step{"EHLO client.example", "250 "},
		step{"DATA", "503 5.5.1"},
		step{"MAIL FROM:<a@example.net>", "250 "},
		step{"DATA", "503 5.5.1"},
		step{"RCPT TO:<nobody@example.org>", "550 5.1.1"},
		step{"DATA", "554 5.5.1 No valid recipients"},
		step{"RCPT TO:<bob@example.org>", "250 "},
		step{"DATA now", "501 5.5.4"},
		step{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
		step{message("From: a@example.net") + ".", "250 2.0.0"},
		step{"DATA", "503 5.5.1"}, // the transaction ended
	)
}

func TestCommandLineChecks(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxErrors = 100 })
	c := f.dial()
	c.do("NOOP "+strings.Repeat("x", 505), "250 2.0.0") // 512 with CRLF
	c.do("NOOP "+strings.Repeat("x", 506), "500 5.5.2 Line too long")
	c.do("NOOP "+strings.Repeat("x", 20000), "500 5.5.2 Line too long")
	c.raw("NOOP\n")
	c.expect("500 5.5.2 Bare LF")
	c.raw("NO\rOP\r\n")
	c.expect("500 5.5.2 Bare CR")
	c.raw("NOOP\x00\r\n")
	c.expect("500 5.5.2 NUL")
	c.raw("EHLO a\nMAIL FROM:<a@example.net>\r\n")
	c.expect("500 5.5.2 Bare LF")
	c.expect("503 5.5.1") // the bare-LF EHLO did not count
	c.do("NOOP", "250 2.0.0")
	c.do("N0OP", "500 5.5.2")
}

func TestTooManyErrors(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxErrors = 10 })
	c := f.dial()
	for i := range 9 {
		c.do(fmt.Sprintf("BOGUS%c", 'A'+i), "500 5.5.1")
	}
	c.do("BOGUS", "500 5.5.1")
	c.expect("421 4.7.0 Too many errors")
	c.expectClosed()
}

func TestCommandTimeout(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.CommandTimeout = 200 * time.Millisecond })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	start := time.Now()
	c.expect("421 4.4.2 Timeout")
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	c.expectClosed()
}

func TestClientEOF(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.raw("EHLO client.example\r\nNOOP")
	c.expect("250 ")
	c.conn.Close()
	waitLog(t, f, "session end")
	if strings.Contains(f.logs.String(), "rejected") {
		t.Errorf("EOF logged as rejection:\n%s", f.logs)
	}
}

func TestPipelinedTransaction(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.raw("EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n" +
		"RCPT TO:<nobody@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n" +
		message("From: a@example.net", "Subject: pipelined") + ".\r\n" +
		"MAIL FROM:<b@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n" +
		message("From: b@example.net") + ".\r\nQUIT\r\n")
	for _, want := range []string{"250 ", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354 ", "250 2.0.0 OK queued as ",
		"250 2.1.0", "250 2.1.5", "354 ", "250 2.0.0 OK queued as ", "221 2.0.0"} {
		c.expect(want)
	}
	c.expectClosed()
	if n := len(f.spool.messages()); n != 2 {
		t.Errorf("%d messages spooled", n)
	}
}

func TestLogEvents(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 ")
	c.do("RCPT TO:<x@elsewhere.example>", "550 5.7.1")
	c.do("QUIT", "221 ")
	c.expectClosed()
	waitLog(t, f, "session end")
	for _, re := range []string{
		`msg="session start" listener=test-mx session=(\w{20}) remote=127\.0\.0\.1:\d+ tls=false`,
		`msg=rejected listener=test-mx session=\w{20} cmd=RCPT code=550 enhanced=5\.7\.1 reason="domain elsewhere\.example not local"`,
		`msg="session end" listener=test-mx session=\w{20} duration=\S+ messages=0 errors=1`,
	} {
		if !regexp.MustCompile(re).MatchString(f.logs.String()) {
			t.Errorf("log lacks %s:\n%s", re, f.logs)
		}
	}
	if strings.Count(f.logs.String(), "\n") != 3 {
		t.Errorf("want 3 log lines:\n%s", f.logs)
	}
}

// TestTooManyErrorsPipelined checks that the 421 reaches a client that
// is still sending when the server closes.
func TestTooManyErrorsPipelined(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxErrors = 10 })
	c := f.dial()
	c.raw(strings.Repeat("BOGUS "+strings.Repeat("x", 400)+"\r\n", 40))
	for range 10 {
		c.expect("500 5.5.1")
	}
	c.expect("421 4.7.0 Too many errors")
	c.expectClosed()
}
