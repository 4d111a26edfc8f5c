package test

import (
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSendLimitHold runs the real binary with over_limit = "hold": the
// user's second message in the hour is taken (250) but held, not
// delivered; `postern queue list` shows it held, it stays held across a
// restart, and `postern queue release ID` delivers it.
func TestSendLimitHold(t *testing.T) {
	integration(t)
	s := startWithUser(t, "\n[send_limits]\nmessages_per_hour = 1\nover_limit = \"hold\"\n", "alice@example.test", "alice-secret-1")
	c := mustDial(t, s.sub, "alice@example.test", "alice-secret-1")
	defer c.Close()
	msg := func(tok string) string {
		return "From: alice@example.test\r\nSubject: " + tok + "\r\n\r\nbody of " + tok + "\r\n"
	}
	if err := send(c, "alice@example.test", "alice@example.test", msg("hold-tok-1")); err != nil {
		t.Fatal(err)
	}
	s.waitMaildir("alice@example.test", "hold-tok-1")
	if err := send(c, "alice@example.test", "alice@example.test", msg("hold-tok-2")); err != nil {
		t.Fatalf("second message (over the limit, to be held): %v", err)
	}
	c.Quit()

	out, err := s.run("", "queue", "list")
	if err != nil {
		t.Fatalf("queue list: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^([0-9a-v]{20}) .*alice@example\.test \(held: send limit: messages per hour\)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("queue list does not show the message held:\n%s", out)
	}
	id := m[1]
	if logs := s.stdout.String() + s.stderr.String(); !strings.Contains(logs, "message held") || !strings.Contains(logs, id) {
		t.Errorf("no \"message held\" event for %s in the log", id)
	}

	// Held across a restart, and never delivered meanwhile.
	s.restartHolding("alice@example.test", "hold-tok-2")
	if out, err := s.run("", "queue", "list"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "(held: send limit") {
		t.Fatalf("after a restart, queue list: %v\n%s", err, out)
	}

	s.releaseHeld(id, "alice@example.test", "hold-tok-2")
	if out, err := s.run("", "queue", "release", id); err == nil {
		t.Errorf("a second release succeeded:\n%s", out)
	}
}

// restartHolding stops and starts s, then fails the test if the held
// message carrying marker reached mailbox meanwhile.
func (s *server) restartHolding(mailbox, marker string) {
	s.t.Helper()
	if err := s.signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("stop: %v", err)
	}
	s.start()
	time.Sleep(300 * time.Millisecond)
	for _, mail := range s.maildirNew(mailbox) {
		if strings.Contains(mail, marker) {
			s.t.Fatalf("the held message %s was delivered", marker)
		}
	}
}

// releaseHeld releases the held message id with postern queue release
// and waits for it, carrying marker, in mailbox.
func (s *server) releaseHeld(id, mailbox, marker string) {
	s.t.Helper()
	if out, err := s.run("", "queue", "release", id); err != nil || out != "Released 1 message (1 recipient): delivered now.\n" {
		s.t.Fatalf("queue release: %v\n%s", err, out)
	}
	s.waitMaildir(mailbox, marker)
}
