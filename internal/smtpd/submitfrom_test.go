package smtpd

import "testing"

// TestSubmissionFromAsClientsShow checks the send_as rule against From
// fields that mail clients read leniently (issue 12 §1): alice may send
// as alice@example.org and alias@example.org. A field that net/mail
// refuses is refused, whatever a client would show; a field net/mail
// accepts passes only when every address a client may show is hers.
func TestSubmissionFromAsClientsShow(t *testing.T) {
	f := newFixture(t, RoleSubmissions, func(s *Server) { s.Limits.MaxErrors = 100 })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.login()
	accepted := 0
	for _, tt := range []struct{ hdr, want string }{
		// net/mail refuses these; clients show an address.
		{"From: Bob <bob@example.org", "554 5.6.0"},
		{"From: Alice <alice@example.org", "554 5.6.0"},
		{"From: bob(x)@example.org", "554 5.6.0"},
		{"From: alice@example.org <bob@example.org>", "554 5.6.0"},
		{"From: <alice@example.org> bob@example.org", "554 5.6.0"},
		{"From: Alice <alice@example.org> <bob@example.org>", "554 5.6.0"},
		{"From: alice@example.org.", "554 5.6.0"},
		// net/mail reads alice; a client that decodes encoded words
		// before it parses shows bob, or an address in another domain.
		{"From: =?utf-8?q?bob=40example.org?= <alice@example.org>", "553 5.7.1"},
		{"From: =?utf-8?q?service=40paypal.test?= <alice@example.org>", "554 5.6.0 From header field is ambiguous"},
		{"From: \"x@paypal.test\"@example.org", "554 5.6.0 From header field is ambiguous"},
		// Hers, however written.
		{"From: =?utf-8?q?alias=40example.org?= <alice@example.org>", "250 2.0.0"},
		{"From: \"bob@example.org\" <alice@example.org>", "250 2.0.0"},
		{"From: alice@example.org (bob@example.org)", "250 2.0.0"},
		{"From: =?utf-8?q?Alice_A=2E?= <alice@example.org>", "250 2.0.0"},
	} {
		c.transaction("alice@example.org", "bob@example.org")
		c.do(message(tt.hdr)+".", tt.want)
		if tt.want[0] == '2' {
			accepted++
		}
	}
	if n := len(f.spool.messages()); n != accepted {
		t.Errorf("%d messages spooled, want %d", n, accepted)
	}
}

// TestSubmissionFromKelvinSign: the From address goes to MaySendAs with
// only its ASCII letters lowered (issue 12 §8). strings.ToLower made
// "alice@wor\u212A.test" (a KELVIN SIGN) alice@work.test, which alice
// may send as: the message passed as hers.
func TestSubmissionFromKelvinSign(t *testing.T) {
	f := newFixture(t, RoleSubmissions, func(s *Server) { s.Limits.MaxErrors = 100 })
	f.dir.mu.Lock()
	f.dir.sendAs["alice"] = append(f.dir.sendAs["alice"], "alice@work.test")
	f.dir.mu.Unlock()
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.login()
	for _, tt := range []struct{ hdr, want string }{
		{"From: alice@WORK.test", "250 2.0.0"},
		{"From: alice@wor\u212A.test", "553 5.7.1"},
		{"From: Alice <alice@wor\u212A.test>", "553 5.7.1"},
	} {
		c.transaction("alice@example.org", "bob@example.org")
		c.do(message(tt.hdr)+".", tt.want)
	}
}
