package smtpd

import (
	"strings"
	"testing"
)

// hasKeyword reports whether the EHLO reply lists keyword as a line of
// its own.
func hasKeyword(reply, keyword string) bool {
	for _, l := range strings.Split(reply, "\n") {
		if len(l) > 4 && l[4:] == keyword {
			return true
		}
	}
	return false
}

// RFC 8689 §4: REQUIRETLS is offered on submission only once TLS is on.
func TestRequireTLSAdvertised(t *testing.T) {
	sub := newFixture(t, RoleSubmission)
	c := sub.dial()
	if got := c.do("EHLO client.example", "250 "); hasKeyword(got, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered before STARTTLS:\n%s", got)
	}
	c.startTLS()
	if got := c.do("EHLO client.example", "250 "); !hasKeyword(got, "REQUIRETLS") {
		t.Errorf("REQUIRETLS not offered after STARTTLS:\n%s", got)
	}

	subs := newFixture(t, RoleSubmissions)
	if got := subs.dial().do("EHLO client.example", "250 "); !hasKeyword(got, "REQUIRETLS") {
		t.Errorf("REQUIRETLS not offered on implicit TLS:\n%s", got)
	}

	mx := newFixture(t, RoleMX)
	c = mx.dial()
	c.startTLS()
	if got := c.do("EHLO client.example", "250 "); hasKeyword(got, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered on mx:\n%s", got)
	}
	// Not offered, so not accepted either.
	c.do("MAIL FROM:<someone@elsewhere.example> REQUIRETLS", "555 5.5.4")
}

func TestRequireTLSParameter(t *testing.T) {
	f := newFixture(t, RoleSubmissions)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.login()
	c.script(
		step{"MAIL FROM:<alice@example.org> REQUIRETLS=yes", "501 5.5.4"},
		step{"MAIL FROM:<alice@example.org> REQUIRETLS", "250 2.1.0"},
		step{"RCPT TO:<someone@elsewhere.example>", "250 2.1.5"},
		step{"DATA", "354 "},
		step{message("From: Alice <alice@example.org>", "Subject: secret") + ".", "250 2.0.0"},
		step{"MAIL FROM:<alice@example.org> BODY=8BITMIME", "250 2.1.0"},
		step{"RCPT TO:<someone@elsewhere.example>", "250 2.1.5"},
		step{"DATA", "354 "},
		step{message("From: Alice <alice@example.org>", "Subject: plain") + ".", "250 2.0.0"},
	)
	msgs := f.spool.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages spooled, want 2", len(msgs))
	}
	if msgs[1].env.RequireTLS {
		t.Errorf("REQUIRETLS leaked into the next transaction")
	}
	if !msgs[0].env.RequireTLS {
		t.Errorf("REQUIRETLS on MAIL FROM not carried into the Envelope")
	}
}

// On submission before STARTTLS the parameter is refused like any
// unknown one (RFC 8689 §4.1, RFC 5321 §4.1.1.11), even after AUTH
// would have been possible.
func TestRequireTLSBeforeTLS(t *testing.T) {
	f := newFixture(t, RoleSubmission)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<alice@example.org> REQUIRETLS", "530 5.7.0") // auth first
	c.startTLS()
	c.do("EHLO client.example", "250 ")
	c.login()
	c.do("MAIL FROM:<alice@example.org> REQUIRETLS", "250 2.1.0")
	c.do("RSET", "250 ")
	c.do("HELO client.example", "250 ")
	c.do("MAIL FROM:<alice@example.org> REQUIRETLS", "555 5.5.4") // no parameters after HELO
}
