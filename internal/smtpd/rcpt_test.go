package smtpd

import "testing"

// TestPostmasterNobody checks that the bare <Postmaster> is refused like
// any unknown user when the postmaster address is local and nobody
// receives it (the Directory decides), and accepted when it is in
// another domain: the mail is relayed there.
func TestPostmasterNobody(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<>", "250 2.1.0")
	c.do("RCPT TO:<Postmaster>", "550 5.1.1")
	c.do("RCPT TO:<postmaster@"+testHost+">", "550 5.1.1")
	f.dir.addUser("postmaster@" + testHost)
	c.do("RCPT TO:<Postmaster>", "250 2.1.5")
	c.do("RCPT TO:<postmaster@example.org>", "250 2.1.5")

	f2 := newFixture(t, RoleMX, func(s *Server) { s.PostmasterAddress = "ops@elsewhere.example" })
	c2 := f2.dial()
	c2.do("EHLO client.example", "250 ")
	c2.do("MAIL FROM:<>", "250 2.1.0")
	c2.do("RCPT TO:<Postmaster>", "250 2.1.5")
	c2.do("DATA", "354 ")
	c2.do(message("From: a@example.net")+".", "250 2.0.0")
	if got := f2.spool.messages()[0].env.Recipients; len(got) != 1 || got[0] != "ops@elsewhere.example" {
		t.Errorf("recipients %q", got)
	}
}

// TestIDNADomains checks that a domain that is not a valid IDNA2008
// name is refused at MAIL and RCPT, on every listener: "wor\u212A.test"
// (KELVIN SIGN) would pass for work.test where a comparison folds case
// with strings.ToLower, and on submission it would be relayed.
func TestIDNADomains(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmission} {
		f := newFixture(t, role)
		c := f.dial()
		if role == RoleSubmission {
			c.loginTLS()
			c.do("MAIL FROM:<alice@example.org> SMTPUTF8", "250 ")
		} else {
			c.do("EHLO client.example", "250 ")
			c.do("MAIL FROM:<a@exampl\u212A.net> SMTPUTF8", "501 5.1.7")
			c.do("MAIL FROM:<a@bücher.example> SMTPUTF8", "250 ")
		}
		c.do("RCPT TO:<alice@wor\u212A.test>", "501 5.1.3")
		c.do("RCPT TO:<alice@BÜCHER.example>", "501 5.1.3")
		c.do("RCPT TO:<bob@example.org>", "250 ")
	}
}

// TestAddressLiteralRcpt: on submission, an address literal
// ("someone@[127.0.0.1]", RFC 5321 §4.1.3) is refused at RCPT (it names
// a host, and would be accepted and bounced); on mx it is not a local
// domain, so relaying is denied as before.
func TestAddressLiteralRcpt(t *testing.T) {
	f := newFixture(t, RoleSubmission)
	c := f.dial()
	c.loginTLS()
	c.do("MAIL FROM:<alice@example.org>", "250 ")
	c.do("RCPT TO:<someone@[127.0.0.1]>", "550 5.1.2 Address literals are not accepted as recipients")
	c.do("RCPT TO:<someone@[IPv6:::1]>", "550 5.1.2 ")
	c.do("RCPT TO:<bob@example.net>", "250 ")

	m := newFixture(t, RoleMX)
	cm := m.dial()
	cm.do("EHLO client.example", "250 ")
	cm.do("MAIL FROM:<>", "250 ")
	cm.do("RCPT TO:<postmaster@[127.0.0.1]>", "550 5.7.1")
}
