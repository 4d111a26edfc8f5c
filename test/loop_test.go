package test

import (
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// A message with more Received fields than the loop limit (50) is refused
// at the end of DATA with 554 5.4.6 on every listener (mx, submission
// with STARTTLS, submissions) and by `postern sendmail`: nothing is
// queued and nobody gets a bounce (issue 12 §8). The same message one
// Received field shorter is delivered.
func TestMailLoopRefused(t *testing.T) {
	integration(t)
	s := startWithUser(t, "", "alice@example.test", "pw-alice-1")
	s.addUser("bob@example.test", "pw-bob-1")
	received := strings.Repeat("Received: from a.example by b.example; Fri, 27 Nov 2026 09:30:00 +0000\r\n", 50)
	msg := func(subject string) string {
		return received + "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: " + subject + "\r\n\r\nround and round\r\n"
	}

	submissions := func() (*smtp.Client, error) {
		c, err := smtpsFrom("127.0.0.1", s.subs)
		if err == nil {
			err = c.Auth(smtp.PlainAuth("", "alice@example.test", "pw-alice-1", "localhost"))
		}
		return c, err
	}
	for name, dial := range map[string]func() (*smtp.Client, error){
		"mx": func() (*smtp.Client, error) {
			c, err := smtp.Dial(s.mx)
			if err == nil {
				err = c.Hello("client.test")
			}
			return c, err
		},
		"submission":  func() (*smtp.Client, error) { return dial(t, s.sub, "alice@example.test", "pw-alice-1") },
		"submissions": submissions,
	} {
		c, err := dial()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		err = send(c, "alice@example.test", "bob@example.test", msg("loop via "+name))
		if err == nil || !strings.Contains(err.Error(), "554") || !strings.Contains(err.Error(), "5.4.6 Routing loop detected") {
			t.Errorf("%s: %v, want 554 5.4.6", name, err)
		}
		c.Quit()
	}
	if out, code := s.sendmail("", strings.ReplaceAll(msg("loop via sendmail"), "\r\n", "\n"), "-f", "alice@example.test", "bob@example.test"); code == 0 || !strings.Contains(out, "routing loop") {
		t.Errorf("sendmail: exit %d, %q; want a refusal for a routing loop", code, out)
	}

	// One Received field fewer (ours makes 50): delivered.
	c := mustDial(t, s.sub, "alice@example.test", "pw-alice-1")
	if err := send(c, "alice@example.test", "bob@example.test", strings.TrimPrefix(msg("no loop"), received[:strings.Index(received, "\r\n")+2])); err != nil {
		t.Fatalf("49 Received fields: %v", err)
	}
	c.Quit()
	s.waitMaildir("bob@example.test", "Subject: no loop")
	time.Sleep(500 * time.Millisecond) // a bounce would be delivered by now
	for _, m := range append(s.maildirNew("bob@example.test"), s.maildirNew("alice@example.test")...) {
		if strings.Contains(m, "loop via") || strings.Contains(m, "Delivery Status Notification") {
			t.Errorf("a looping message or its bounce was delivered:\n%.300s", m)
		}
	}
	if out, err := s.run("", "queue", "list"); err != nil || strings.Contains(out, "alice@example.test") {
		t.Errorf("queue list: %v\n%s", err, out)
	}
}
