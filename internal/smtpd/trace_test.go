package smtpd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"postern/internal/sasl"
)

// traceLines returns the "smtp trace" lines of a log, as "from: line".
func traceLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `msg="smtp trace"`) {
			continue
		}
		from := l[strings.Index(l, "from=")+5:]
		from = from[:strings.IndexByte(from, ' ')]
		line := l[strings.Index(l, "line=")+5:]
		out = append(out, from+": "+strings.Trim(line, `"`))
	}
	return out
}

// wantTrace checks that the trace holds want in order (not necessarily
// next to each other).
func wantTrace(t *testing.T, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && strings.HasPrefix(g, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("trace lacks %q (in order):\n%s", want[i], strings.Join(got, "\n"))
	}
}

// secretFree fails when the log holds one of the secrets.
func secretFree(t *testing.T, log string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("the log holds %q:\n%s", s, log)
		}
	}
}

// TestTraceByAddress traces a client by its address: the whole dialogue
// is logged, STARTTLS and what follows included, with AUTH's payloads
// and the message data left out; a session from another address is not
// traced.
func TestTraceByAddress(t *testing.T) {
	t.Parallel()
	list, err := ParseTraceList([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	var tr Trace
	tr.Set(list)
	f := newFixture(t, RoleSubmission, func(s *Server) { s.Trace = &tr })
	c := f.dial()
	c.loginTLS()
	c.do("AUTH LOGIN", "503 5.5.1") // already authenticated
	c.do("MAIL FROM:<alice@example.org>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.do("DATA", "354 ")
	c.do(message("From: alice@example.org", "Subject: the secret plan")+".", "250 2.0.0")
	c.do("QUIT", "221 ")
	c.expectClosed()
	waitLog(t, f, `msg="session end"`)
	log := f.logs.String()
	wantTrace(t, traceLines(log),
		"server: [trace of 127.0.0.1:",
		"server: 220 "+testHost+" ESMTP Postern",
		"client: EHLO client.example",
		"server: 250-"+testHost,
		"client: STARTTLS",
		"server: 220 2.0.0 Ready to start TLS",
		"client: EHLO client.example",
		"server: 250 AUTH PLAIN LOGIN",
		"client: AUTH PLAIN [initial response, 24 bytes, not logged]",
		"server: 235 2.7.0",
		"client: MAIL FROM:<alice@example.org>",
		"client: RCPT TO:<bob@example.org>",
		"client: DATA",
		"server: 354 ",
		"client: [message data, not logged]",
		"server: 250 2.0.0 OK queued as ",
		"client: QUIT",
		"server: 221 2.0.0 Bye",
	)
	secretFree(t, log, testPassword, plainAuth("alice", testPassword), "the secret plan")

	// Not listed: nothing traced.
	list, _ = ParseTraceList([]string{"192.0.2.0/24", "bob@example.org"})
	tr.Set(list)
	before := len(traceLines(f.logs.String()))
	c = f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("QUIT", "221 ")
	c.expectClosed()
	if n := len(traceLines(f.logs.String())); n != before {
		t.Errorf("an untraced session logged %d trace lines", n-before)
	}
}

// TestTraceByUser traces the sessions that log in as (or claim) a
// listed user, from their first line on, and no other session.
func TestTraceByUser(t *testing.T) {
	t.Parallel()
	list, err := ParseTraceList([]string{"ALICE", "198.51.100.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	var tr Trace
	tr.Set(list)
	f := newFixture(t, RoleSubmission, func(s *Server) { s.Trace = &tr; s.Limits.MaxErrors = 100 })

	// Another user: not traced, though the list names users.
	c := f.dial()
	c.do("EHLO other.example", "250 ")
	c.startTLS()
	c.do("EHLO other.example", "250 ")
	c.do("AUTH PLAIN "+plainAuth("mallory", "guess"), "535 5.7.8")
	c.do("QUIT", "221 ")
	c.expectClosed()
	waitLog(t, f, `msg="session end"`)
	if lines := traceLines(f.logs.String()); len(lines) != 0 {
		t.Fatalf("an unlisted user's session was traced:\n%s", strings.Join(lines, "\n"))
	}

	// alice fails with LOGIN, then logs in: traced from the greeting.
	c = f.dial()
	c.do("EHLO client.example", "250 ")
	c.startTLS()
	c.do("EHLO client.example", "250 ")
	c.script(
		step{"AUTH LOGIN", "334 VXNlcm5hbWU6"},
		step{b64("alice"), "334 UGFzc3dvcmQ6"},
		step{b64("wrong-" + testPassword), "535 5.7.8"},
	)
	c.login()
	c.do("QUIT", "221 ")
	c.expectClosed()
	waitLog(t, f, "line=QUIT")
	log := f.logs.String()
	wantTrace(t, traceLines(log),
		"server: [trace of user alice: the dialogue so far follows]",
		"server: 220 ",
		"client: EHLO client.example",
		"client: STARTTLS",
		"client: AUTH LOGIN",
		"server: 334 [AUTH challenge, 12 bytes, not logged]",
		"client: [AUTH response, 8 bytes, not logged]",
		"server: 334 [AUTH challenge, 12 bytes, not logged]",
		"client: [AUTH response, ",
		"server: 535 5.7.8",
		"client: AUTH PLAIN [initial response",
		"server: 235 2.7.0",
		"client: QUIT",
	)
	secretFree(t, log, testPassword, b64("wrong-"+testPassword), plainAuth("alice", testPassword), "other.example")
}

// TestAuthFailureReason: the server's log says whether the user is
// unknown or the password wrong; the client hears the same 535 for
// both, and the password is never logged.
func TestAuthFailureReason(t *testing.T) {
	t.Parallel()
	check := func(_ context.Context, user, pass string) (string, error) {
		switch {
		case user != "alice":
			return "", fmt.Errorf("check: %w", sasl.ErrUnknownUser)
		case pass != testPassword:
			return "", fmt.Errorf("check: %w", sasl.ErrBadPassword)
		}
		return "alice", nil
	}
	f := newFixture(t, RoleSubmissions, func(s *Server) {
		s.Auth = &sasl.Passwords{Check: check}
		s.Limits.MaxErrors = 100
	})
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	a := c.do("AUTH PLAIN "+plainAuth("nobody", "pw-one"), "535 5.7.8")
	b := c.do("AUTH PLAIN "+plainAuth("alice", "pw-two"), "535 5.7.8")
	if a != b {
		t.Errorf("the replies differ: %q and %q", a, b)
	}
	c.do("QUIT", "221 ")
	log := f.logs.String()
	for _, want := range []string{
		`mechanism=PLAIN user=nobody remote=127.0.0.1:`,
		`outcome=failure reason="unknown user"`,
		`mechanism=PLAIN user=alice remote=127.0.0.1:`,
		`outcome=failure reason="bad password"`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	secretFree(t, log, "pw-one", "pw-two")
}

func TestParseTraceList(t *testing.T) {
	l, err := ParseTraceList([]string{"192.0.2.7", "2001:db8::/48", "Alice@Example.COM", "::ffff:198.51.100.9", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{
		"192.0.2.7": true, "192.0.2.8": false, "2001:db8:0:1::5": true, "2001:db9::1": false,
		"198.51.100.9": true, "::ffff:192.0.2.7": true, "10.200.0.1": true,
	} {
		if got := l.MatchAddr(netip.MustParseAddr(a)); got != want {
			t.Errorf("MatchAddr(%s) = %v", a, got)
		}
	}
	if !l.MatchUser("alice@example.com") || l.MatchUser("bob@example.com") || l.MatchUser("") {
		t.Errorf("MatchUser")
	}
	if l.Len() != 5 {
		t.Errorf("Len = %d", l.Len())
	}
	for _, bad := range []string{"", "a b", "192.0.2.0/33", "x\x00", "\xff", strings.Repeat("a", 321)} {
		if _, err := ParseTraceList([]string{bad}); err == nil {
			t.Errorf("ParseTraceList(%q) took it", bad)
		}
	}
	var nilList *TraceList
	if nilList.MatchAddr(netip.MustParseAddr("192.0.2.7")) || nilList.MatchUser("a") || (*Trace)(nil).List() != nil {
		t.Errorf("nil lists trace")
	}
}

// FuzzParseTraceList: an entry is taken as an address, a prefix or a
// user name, never half; a user entry matches itself.
func FuzzParseTraceList(f *testing.F) {
	for _, s := range []string{"192.0.2.7", "2001:db8::/48", "alice@example.com", "", "a/b", "::ffff:1.2.3.4/120"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, e string) {
		l, err := ParseTraceList([]string{e})
		if err != nil {
			return
		}
		if l.Len() != 1 {
			t.Fatalf("%q: %d entries", e, l.Len())
		}
		if len(l.users) == 1 && !l.MatchUser(strings.ToUpper(e)) {
			t.Fatalf("%q does not match itself", e)
		}
	})
}
