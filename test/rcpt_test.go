package test

import (
	"net/smtp"
	"strings"
	"testing"
)

// TestSubmissionRcptRefusals: on submission, a recipient that cannot be
// delivered is refused at RCPT, not accepted and bounced: an unknown
// user of a local domain (550 5.1.1), and an address literal (550
// 5.1.2), which names a host rather than a domain.
func TestSubmissionRcptRefusals(t *testing.T) {
	integration(t)
	s := startWithUser(t, "", "alice@example.test", "pw-alice-12")
	c := mustDial(t, s.sub, "alice@example.test", "pw-alice-12")
	defer c.Close()
	if err := c.Mail("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	for rcpt, want := range map[string]string{
		"nobody@example.test":    `550 "5.1.1`,
		"NoBody@Localhost":       `550 "5.1.1`,
		"someone@[127.0.0.1]":    `550 "5.1.2`,
		"someone@[IPv6:::1]":     `550 "5.1.2`,
		"alice@example.test":     "",
		"someone@remote.example": "",
	} {
		wantRcpt(t, c, rcpt, want)
	}
}

// wantRcpt sends RCPT TO:<rcpt> on c and checks the reply: taken (250)
// when want is "", else refused with a reply that begins with want.
func wantRcpt(t *testing.T, c *smtp.Client, rcpt, want string) {
	t.Helper()
	err := c.Rcpt(rcpt)
	switch {
	case want == "" && err != nil:
		t.Errorf("RCPT TO:<%s>: %v, want 250", rcpt, err)
	case want != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
		t.Errorf("RCPT TO:<%s>: %v, want %s", rcpt, err, want)
	}
}
