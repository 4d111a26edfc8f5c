package test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sendmail runs the binary as `postern sendmail` (or, with name, through
// a symlink of that name) with the server's configuration and returns its
// output and exit status.
func (s *server) sendmail(name, stdin string, args ...string) (string, int) {
	s.t.Helper()
	bin := binPath
	if name != "" {
		bin = filepath.Join(s.t.TempDir(), name)
		if err := os.Symlink(binPath, bin); err != nil {
			s.t.Fatal(err)
		}
	} else {
		args = append([]string{"sendmail"}, args...)
	}
	cmd := exec.Command(bin, append(args, "-C", s.config)...)
	cmd.Stdin = strings.NewReader(stdin)
	return combinedStatus(s.t, cmd)
}

func TestSendmail(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")

	// Server down: EX_UNAVAILABLE.
	if out, code := s.sendmail("", "Subject: x\n\nbody\n", "postmaster@localhost"); code != 69 || !strings.Contains(out, "not running") {
		t.Fatalf("server down: exit %d, %q; want 69", code, out)
	}
	s.start()
	s.addUser("postmaster@localhost", "pw-postmaster-1")
	s.addUser("alice@example.test", "pw-alice-1")

	// -t -i: recipients from To and Bcc, Bcc removed, a lone "." kept,
	// LF turned into CRLF, From added with -F, Received/Message-ID/Date added.
	msg := "To: postmaster@localhost\nBcc: alice@example.test\nSubject: cron output\n\nline one\n.\nline three\n"
	if out, code := s.sendmail("", msg, "-t", "-i", "-F", "Cron Daemon", "-f", "root@localhost"); code != 0 {
		t.Fatalf("sendmail -t -i: exit %d: %s", code, out)
	}
	got := s.waitMaildir("postmaster@localhost", "Subject: cron output")
	for _, want := range []string{"Received: by localhost (Postern, from userid ", "Message-ID: <", "Date: ",
		"From: \"Cron Daemon\" <root@localhost>\r\n", "\r\n\r\nline one\r\n.\r\nline three\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "Bcc") || strings.Contains(got, "alice@") {
		t.Errorf("Bcc not removed:\n%s", got)
	}
	s.waitMaildir("alice@example.test", "Subject: cron output")

	// Through a "sendmail" symlink, recipients as arguments, without -i a
	// lone "." ends the message.
	if out, code := s.sendmail("sendmail", "Subject: via symlink\n\nkept\n.\ndropped\n", "-oi", "-oem", "postmaster@localhost"); code != 0 {
		t.Fatalf("sendmail symlink: exit %d: %s", code, out)
	}
	got = s.waitMaildir("postmaster@localhost", "Subject: via symlink", "dropped")
	if !strings.Contains(got, "From: postmaster@localhost\r\n") {
		t.Errorf("default sender not in From:\n%s", got)
	}
	if out, code := s.sendmail("sendmail", "Subject: dot\n\nkept\n.\ndropped\n", "postmaster@localhost"); code != 0 {
		t.Fatalf("sendmail without -i: exit %d: %s", code, out)
	}
	got = s.waitMaildir("postmaster@localhost", "Subject: dot")
	if strings.Contains(got, "dropped") {
		t.Errorf("a lone dot did not end the message:\n%s", got)
	}

	// Usage and data errors.
	if _, code := s.sendmail("", "x\n", "-bd"); code != 64 { // daemon mode: not Postern's
		t.Errorf("-bd: exit %d, want 64", code)
	}
	if _, code := s.sendmail("", "Subject: x\n\nb\n", "-t"); code != 65 {
		t.Errorf("-t without recipients: exit %d, want 65", code)
	}
	if _, code := s.sendmail("", "Subject: x\n\nb\n", "not an address"); code != 65 {
		t.Errorf("bad recipient: exit %d, want 65", code)
	}
}

// TestSendmailSendLimits: the real binary counts sendmail submissions
// against [send_limits] under the caller's Unix user: over the limit
// sendmail exits 75 (EX_TEMPFAIL) and says why; with over_limit = "hold"
// for that user the message is queued, held, and sendmail says so.
func TestSendmailSendLimits(t *testing.T) {
	integration(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	me := "local:" + u.Username
	s := testConfig(t, t.TempDir(), `
[send_limits]
messages_per_hour = 1
`)
	s.start()
	s.addUser("postmaster@localhost", "pw-postmaster-1")
	if out, code := s.sendmail("", "Subject: first\n\nb\n", "postmaster@localhost"); code != 0 {
		t.Fatalf("first: exit %d: %s", code, out)
	}
	out, code := s.sendmail("", "Subject: second\n\nb\n", "-f", "someone-else@localhost", "postmaster@localhost")
	if code != 75 || !strings.Contains(out, "Send limit of 1 messages per hour reached, try again later ("+me+"); the message was not queued") {
		t.Errorf("over the limit: exit %d, %q; want 75 naming the limit and %s", code, out, me)
	}
	// The server logs the event as it answers; the line may reach its
	// stderr a moment after sendmail has exited.
	waitLogFor(t, s, `msg="send limit reached" user=`+me+` limit=messages`, 10*time.Second)
	s.signal(syscall.SIGTERM)

	// The same caller with over_limit = "hold".
	h := testConfig(t, t.TempDir(), fmt.Sprintf(`
[send_limits.users.%q]
messages_per_hour = 1
over_limit = "hold"
`, me))
	h.start()
	h.addUser("postmaster@localhost", "pw-postmaster-1")
	h.sendmail("", "Subject: first\n\nb\n", "postmaster@localhost")
	out, code = h.sendmail("", "Subject: held\n\nb\n", "postmaster@localhost")
	if code != 0 || !strings.Contains(out, "queued but held for review (send limit: messages per hour)") {
		t.Errorf("over the limit with hold: exit %d, %q", code, out)
	}
	if list, err := h.run("", "queue", "list"); err != nil || !strings.Contains(list, "held") {
		t.Errorf("queue list: %v\n%s", err, list)
	}
}

// TestSendmailDSN: postern sendmail -N, -R and -V give the message the
// DSN parameters (RFC 3461) an SMTP client's MAIL and RCPT would: with
// -N success the sender gets a success notice carrying -V's id as
// Original-Envelope-Id; a bad value is a usage error (exit 64).
func TestSendmailDSN(t *testing.T) {
	s := testConfig(t, t.TempDir(), "")
	s.start()
	s.addUser("postmaster@localhost", "pw-postmaster-1")
	s.addUser("alice@example.test", "pw-alice-1")
	if out, code := s.sendmail("", "Subject: nightly backup\n\ndone\n", "-N", "success,failure", "-R", "hdrs", "-V", "backup 7",
		"-f", "postmaster@localhost", "alice@example.test"); code != 0 {
		t.Fatalf("sendmail -N -R -V: exit %d: %s", code, out)
	}
	s.waitMaildir("alice@example.test", "Subject: nightly backup")
	notice := s.waitMaildir("postmaster@localhost", "Original-Envelope-Id: backup 7")
	if want := "Final-Recipient: rfc822; alice@example.test\r\nAction: delivered\r\n"; !strings.Contains(notice, want) {
		t.Errorf("notice lacks %q:\n%s", want, notice)
	}
	for _, bad := range [][]string{{"-N", "sometimes"}, {"-R", "all"}, {"-V", strings.Repeat("x", 101)}} {
		if out, code := s.sendmail("", "Subject: x\n\nb\n", append(bad, "alice@example.test")...); code != 64 || !strings.Contains(out, bad[0]) {
			t.Errorf("sendmail %q: exit %d, %q; want 64 naming the option", bad, code, out)
		}
	}
}
