package test

import (
	"net"
	"net/smtp"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialMX opens a session on the mx listener at addr and greets it with
// EHLO helo, failing t if either fails; the caller closes it.
func dialMX(t *testing.T, addr, helo string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello(helo); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// mailFromOnMX opens a session on the mx listener at addr with a
// transaction from a remote sender begun; the caller closes it.
func mailFromOnMX(t *testing.T, addr string) *smtp.Client {
	t.Helper()
	c := dialMX(t, addr, "client.test")
	if err := c.Mail("someone@remote.test"); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

// rcptOnMX opens a session on the mx listener at addr and reports the
// error of RCPT TO:<to> (nil for 250); the session is closed.
func rcptOnMX(t *testing.T, addr, to string) error {
	t.Helper()
	c := mailFromOnMX(t, addr)
	defer c.Close()
	return c.Rcpt(to)
}

// mailOnMX sends one message from a remote sender to to on the mx
// listener at addr.
func mailOnMX(t *testing.T, addr, to, body string) {
	t.Helper()
	c := dialMX(t, addr, "client.test")
	defer c.Close()
	if err := send(c, "someone@remote.test", to, body); err != nil {
		t.Fatalf("mail to %s: %v", to, err)
	}
	c.Quit()
}

// appendConfig adds text to the server's configuration file.
func appendConfig(t *testing.T, s *server, text string) {
	t.Helper()
	b, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.config, append(b, text...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadAppliesAliases: an alias added to the file is refused (550)
// until `postern reload`, which names it among the changes; then mail to
// it is delivered, without a restart. SIGHUP does the same and logs the
// same report.
func TestReloadAppliesAliases(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	pid := s.cmd.Process.Pid
	s.addUser("bob@example.test", "bob-password-1")
	if err := rcptOnMX(t, s.mx, "info@example.test"); err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("RCPT to an unknown alias: %v, want 550", err)
	}

	appendConfig(t, s, "\n[aliases]\n\"info@example.test\" = [\"bob@example.test\"]\n")
	setLimits(t, s, "max_recipients = 1")
	out, code := s.runOut("", "reload")
	if code != 0 || !strings.Contains(out, `aliases."info@example.test": (none) → ["bob@example.test"]`) ||
		!strings.Contains(out, "limits.max_recipients: 100 → 1") || !strings.Contains(out, "Reloaded") {
		t.Fatalf("postern reload: exit %d\n%s", code, out)
	}
	t.Logf("postern reload:\n%s", out)
	mailOnMX(t, s.mx, "info@example.test", "From: someone@remote.test\r\nSubject: reload-alias-marker\r\n\r\nx\r\n")
	s.waitMaildir("bob@example.test", "reload-alias-marker")
	// The new limit holds for the next session: a second recipient is
	// refused (RFC 5321 §4.5.3.1.10: 452).
	c := mailFromOnMX(t, s.mx)
	defer c.Close()
	if err := c.Rcpt("info@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.test"); err == nil || !strings.HasPrefix(err.Error(), "452") {
		t.Fatalf("a second recipient with max_recipients = 1: %v, want 452", err)
	}
	if !strings.Contains(s.stderr.String(), `aliases.\"info@example.test\"`) {
		t.Errorf("the log does not name the changed key:\n%s", s.stderr.String())
	}

	// SIGHUP: the same reload, its report in the log; the log level
	// changes at once (no more INFO session events).
	b, _ := os.ReadFile(s.config)
	os.WriteFile(s.config, []byte(strings.Replace(string(b), "[aliases]\n", "[aliases]\n\"sales@example.test\" = [\"bob@example.test\"]\n", 1)+"\n[log]\nlevel = \"warn\"\n"), 0o600)
	s.signal(syscall.SIGHUP)
	waitLogFor(t, s, `aliases.\"sales@example.test\"`, 10*time.Second)
	// A reload waits for the one in progress: after it, SIGHUP's is done.
	if out, code := s.runOut("", "reload"); code != 0 || !strings.Contains(out, "the configuration is unchanged") {
		t.Fatalf("postern reload after SIGHUP's: exit %d\n%s", code, out)
	}
	sessions := strings.Count(s.stderr.String(), "session start")
	mailOnMX(t, s.mx, "sales@example.test", "From: someone@remote.test\r\nSubject: sighup-alias-marker\r\n\r\nx\r\n")
	s.waitMaildir("bob@example.test", "sighup-alias-marker")
	if n := strings.Count(s.stderr.String(), "session start"); n != sessions {
		t.Errorf("INFO events logged after a reload to level = \"warn\"")
	}
	if s.cmd.Process.Pid != pid || !s.running() {
		t.Fatal("the server restarted")
	}
}

// TestReloadRefusesInvalidFile: a file with an error is refused whole:
// `postern reload` exits non-zero naming the error, nothing of the file
// applies (not the alias added beside the error), and the server serves
// on with what it had.
func TestReloadRefusesInvalidFile(t *testing.T) {
	integration(t)
	s := startWithUser(t, "", "bob@example.test", "bob-password-1")
	appendConfig(t, s, "\n[aliases]\n\"info@example.test\" = [\"bob@example.test\"]\n\n[delivery]\nretry_first = \"soon\"\n")
	out, code := s.runOut("", "reload")
	if code == 0 || !strings.Contains(out, "delivery.retry_first") || !strings.Contains(out, "refused") {
		t.Fatalf("postern reload of an invalid file: exit %d\n%s", code, out)
	}
	t.Logf("postern reload:\n%s", out)
	if err := rcptOnMX(t, s.mx, "info@example.test"); err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("RCPT to the alias of a refused file: %v, want 550", err)
	}
	if !s.running() {
		t.Fatal("the server exited")
	}
	if err := rcptOnMX(t, s.mx, "bob@example.test"); err != nil {
		t.Fatalf("RCPT to a user after the refused reload: %v", err)
	}

	// A file that loads but that the server cannot apply (a CA file
	// that is not there) is refused by the server, whole, too; the same
	// over SIGHUP, which logs why.
	b, _ := os.ReadFile(s.config)
	bad := strings.Replace(string(b), `retry_first = "soon"`, `ca_file = "missing-ca.pem"`, 1)
	if err := os.WriteFile(s.config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = s.runOut("", "reload")
	if code == 0 || !strings.Contains(out, "delivery.ca_file") || !strings.Contains(out, "refused") {
		t.Fatalf("postern reload of a file the server refuses: exit %d\n%s", code, out)
	}
	t.Logf("postern reload:\n%s", out)
	s.signal(syscall.SIGHUP)
	waitLogFor(t, s, "reload done", 10*time.Second)
	if !strings.Contains(s.stderr.String(), "reload: configuration refused") {
		t.Errorf("the log does not say the file was refused:\n%s", s.stderr.String())
	}
	if err := rcptOnMX(t, s.mx, "info@example.test"); err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("RCPT to the alias of a refused file: %v, want 550", err)
	}
}

// TestReloadRestartOnlyKey: a key that cannot change live (a listener's
// address) is named as needing a restart and not applied: the old
// address serves on, the new one is not bound; what can change live in
// the same file (an alias) is applied.
func TestReloadRestartOnlyKey(t *testing.T) {
	integration(t)
	s := startWithUser(t, "", "bob@example.test", "bob-password-1")
	moved := freeAddr(t)
	b, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "address = \""+s.mx+"\"", "address = \""+moved+"\"", 1)
	text += "\n[aliases]\n\"info@example.test\" = [\"bob@example.test\"]\n"
	if err := os.WriteFile(s.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := s.runOut("", "reload")
	if code != 0 || !strings.Contains(out, "needs a restart") || !strings.Contains(out, `listener[0].address: "`+s.mx+`" → "`+moved+`"`) {
		t.Fatalf("postern reload: exit %d\n%s", code, out)
	}
	t.Logf("postern reload:\n%s", out)
	if err := rcptOnMX(t, s.mx, "info@example.test"); err != nil {
		t.Fatalf("RCPT on the old address to the new alias: %v", err)
	}
	if c, err := net.DialTimeout("tcp", moved, time.Second); err == nil {
		c.Close()
		t.Fatalf("the new address %s was bound by a reload", moved)
	}
	if !strings.Contains(s.stderr.String(), "needs a restart") {
		t.Errorf("the log does not say what needs a restart:\n%s", s.stderr.String())
	}
}
