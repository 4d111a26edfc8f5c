package smtpd

import (
	"fmt"
	"strings"
	"testing"
)

// TestTooManyRecipientsPipelined checks RFC 5321 §4.5.3.1.10: each
// recipient past max_recipients gets 452 4.5.3, none of them counts as
// an error, and the pipelined DATA carries the accepted ones.
func TestTooManyRecipientsPipelined(t *testing.T) {
	f := newFixture(t, RoleMX)
	for i := range 150 {
		f.dir.addUser(fmt.Sprintf("u%d@example.org", i))
	}
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	var b strings.Builder
	b.WriteString("MAIL FROM:<a@example.net>\r\n")
	for i := range 150 {
		fmt.Fprintf(&b, "RCPT TO:<u%d@example.org>\r\n", i)
	}
	b.WriteString("DATA\r\n")
	c.raw(b.String())
	c.expect("250 2.1.0")
	for range 100 {
		c.expect("250 2.1.5")
	}
	for range 50 {
		c.expect("452 4.5.3 Too many recipients")
	}
	c.expect("354 ")
	c.do(message("From: a@example.net")+".", "250 2.0.0")
	msgs := f.spool.messages()
	if len(msgs) != 1 || len(msgs[0].env.Recipients) != 100 {
		t.Fatalf("spooled %d messages, want 1 with 100 recipients", len(msgs))
	}
	// The client retries the rest in a new transaction, in the same
	// session: the excess recipients did not use up its error budget.
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	for i := 100; i < 150; i++ {
		c.do(fmt.Sprintf("RCPT TO:<u%d@example.org>", i), "250 2.1.5")
	}
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net")+".", "250 2.0.0")
	c.do("QUIT", "221 ")
}

// TestRecipientOvershoot checks that excess recipients count as errors
// only past rcptOvershoot, so that a client cannot send RCPTs forever.
func TestRecipientOvershoot(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxRecipients, s.Limits.MaxErrors = 1, 3 })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.raw(strings.Repeat("RCPT TO:<carol@example.org>\r\n", rcptOvershoot+3))
	for range rcptOvershoot + 3 {
		c.expect("452 4.5.3")
	}
	c.expect("421 4.7.0 Too many errors")
	c.expectClosed()
}
