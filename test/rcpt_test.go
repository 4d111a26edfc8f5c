package test

import (
	"strings"
	"testing"
)

// TestSubmissionRcptRefusals: on submission, a recipient that cannot be
// delivered is refused at RCPT, not accepted and bounced: an unknown
// user of a local domain (550 5.1.1), and an address literal (550
// 5.1.2), which names a host rather than a domain.
func TestSubmissionRcptRefusals(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	s.addUser("alice@example.test", "pw-alice-12")
	c, err := dial(t, s.sub, "alice@example.test", "pw-alice-12")
	if err != nil {
		t.Fatal(err)
	}
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
		err := c.Rcpt(rcpt)
		switch {
		case want == "" && err != nil:
			t.Errorf("RCPT TO:<%s>: %v, want 250", rcpt, err)
		case want != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
			t.Errorf("RCPT TO:<%s>: %v, want %s", rcpt, err, want)
		}
	}
}
