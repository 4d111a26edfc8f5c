package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sendmailLink makes a symlink named name (sendmail, mailq) to the
// binary and a wrapper script that runs it with the server's
// configuration, as /usr/sbin/sendmail would be with $POSTERN_CONFIG
// set; it returns the wrapper's path.
func (s *server) sendmailLink(name string) string {
	s.t.Helper()
	dir := s.t.TempDir()
	link := filepath.Join(dir, "bin", name)
	os.Mkdir(filepath.Dir(link), 0o755)
	if err := os.Symlink(binPath, link); err != nil {
		s.t.Fatal(err)
	}
	wrapper := filepath.Join(dir, name)
	script := fmt.Sprintf("#!/bin/sh\nPOSTERN_CONFIG=%q exec %q \"$@\"\n", s.config, link)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		s.t.Fatal(err)
	}
	return wrapper
}

// sh runs a shell command line and returns its combined output and exit
// status.
func sh(t *testing.T, line string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Env = append(os.Environ(), env...)
	return combinedStatus(t, cmd)
}

// TestSendmailSystemMail: the mail system programs send reaches the
// postmaster, each called exactly as its Debian 12 package calls
// /usr/sbin/sendmail (read from the binaries and scripts of cron
// 3.0pl1-162, unattended-upgrades 2.9.1+nmu3, logwatch 7.7-1, mdadm
// 4.2-5, and smartmontools 7.3 through bsd-mailx 8.1.2).
func TestSendmailSystemMail(t *testing.T) {
	integration(t)
	mailx := needTool(t, "bsd-mailx")
	s := testConfig(t, t.TempDir(), `
[aliases]
"backup@localhost" = "alice@example.test"
`)
	s.start()
	s.addUser("postmaster@localhost", "pw-postmaster-1")
	s.addUser("alice@example.test", "pw-alice-12")
	sendmail := s.sendmailLink("sendmail")

	// The issue's own line: a bare name as the only argument.
	if out, code := sh(t, "printf 'x\\n' | "+sendmail+" root"); code != 0 {
		t.Fatalf("printf x | sendmail root: exit %d: %s", code, out)
	}
	s.waitMaildir("postmaster@localhost", "\r\n\r\nx\r\n")

	// cron: the job runs under /bin/sh -c; its output, after the
	// headers do_command.c writes, goes to sendmail with cron's
	// arguments ("%s -FCronDaemon -i -B8BITMIME -oem  %s").
	cron := `out=$(/bin/sh -c 'echo out; echo err >&2; exit 1' 2>&1)
{ printf 'From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@host> echo out\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\nX-Cron-Env: <LOGNAME=root>\n\n'; printf '%s\n' "$out"; } | ` + sendmail + ` -FCronDaemon -i -B8BITMIME -oem  root`
	if out, code := sh(t, cron); code != 0 {
		t.Fatalf("cron: exit %d: %s", code, out)
	}
	got := s.waitMaildir("postmaster@localhost", "Subject: Cron <root@host> echo out")
	for _, want := range []string{"From: root@localhost (Cron Daemon)\r\n", "To: root@localhost\r\n", "\r\n\r\nout\r\nerr\r\n", "X-Cron-Env: <SHELL=/bin/sh>\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("cron's message lacks %q:\n%s", want, got)
		}
	}

	// unattended-upgrades: [SENDMAIL_BINARY, "-oi", "-t"], From and To root.
	uu := "printf 'Subject: unattended-upgrades result for host: True\\nFrom: root\\nTo: root\\nAuto-Submitted: auto-generated\\nContent-Type: text/plain; charset=\"utf-8\"\\n\\nUnattended upgrade result: All upgrades installed\\n' | " + sendmail + " -oi -t"
	if out, code := sh(t, uu); code != 0 {
		t.Fatalf("unattended-upgrades: exit %d: %s", code, out)
	}
	s.waitMaildir("postmaster@localhost", "Subject: unattended-upgrades result", "From: root@localhost\r\n")

	// logwatch: mailer = "/usr/sbin/sendmail -t", MailFrom = Logwatch.
	lw := "printf 'To: root\\nFrom: Logwatch\\nSubject: Logwatch for host (Linux)\\n\\n ###### Logwatch 7.7 ######\\n' | " + sendmail + " -t"
	if out, code := sh(t, lw); code != 0 {
		t.Fatalf("logwatch: exit %d: %s", code, out)
	}
	s.waitMaildir("postmaster@localhost", "Subject: Logwatch for host", "From: Logwatch@localhost\r\n")

	// mdadm --monitor: popen("/usr/sbin/sendmail -t"), MAILADDR root.
	md := "printf 'From: mdadm monitoring <root@host>\\nTo: root\\nSubject: Fail event on /dev/md0:host\\n\\nThis is an automatically generated mail message.\\n' | " + sendmail + " -t"
	if out, code := sh(t, md); code != 0 {
		t.Fatalf("mdadm: exit %d: %s", code, out)
	}
	s.waitMaildir("postmaster@localhost", "Subject: Fail event on /dev/md0", "From: mdadm monitoring <root@host>\r\n")

	// smartd: /etc/smartmontools/run.d/10mail runs mail -s SUBJECT root;
	// bsd-mailx runs "sendmail -i -t" (its sendmail variable points it
	// to ours).
	rc := filepath.Join(t.TempDir(), "mailrc")
	os.WriteFile(rc, []byte("set sendmail="+sendmail+"\n"), 0o644)
	if out, code := sh(t, "echo 'Device: /dev/sda, 8 Currently unreadable (pending) sectors' | "+mailx+" -s 'SMART error (CurrentPendingSector) detected on host' root", "MAILRC="+rc, "HOME="+t.TempDir()); code != 0 {
		t.Fatalf("mail(1) for smartd: exit %d: %s", code, out)
	}
	s.waitMaildir("postmaster@localhost", "Subject: SMART error (CurrentPendingSector)", "To: root@localhost\r\n")

	// An alias overrides: backup goes to alice, not to the postmaster.
	if out, code := sh(t, "printf 'Subject: to backup\\n\\nb\\n' | "+sendmail+" backup"); code != 0 {
		t.Fatalf("sendmail backup: exit %d: %s", code, out)
	}
	s.waitMaildir("alice@example.test", "Subject: to backup")
	for _, m := range s.maildirNew("postmaster@localhost") {
		if strings.Contains(m, "Subject: to backup") {
			t.Errorf("mail for the alias backup reached the postmaster too")
		}
	}
}

// TestSendmailModes: -bs (SMTP on stdin, driven by swaks --pipe), -bp
// and a mailq link (the queue), -q (retry the deferred mail now).
func TestSendmailModes(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	s := testConfig(t, t.TempDir(), fmt.Sprintf(`
[smarthost]
address = %q
`, freeAddr(t))) // nothing listens there: remote mail is deferred
	s.start()
	s.addUser("postmaster@localhost", "pw-postmaster-1")
	sendmail := s.sendmailLink("sendmail")

	// -bs: a whole SMTP dialogue on the pipe; bare names qualified.
	out, code := sh(t, swaks+` --pipe '`+sendmail+` -bs' --from root --to root,bob@remote.example --header 'Subject: over -bs' --body 'smtp on stdin'`)
	if code != 0 || !strings.Contains(out, "<-  220 localhost ESMTP Postern (sendmail -bs)") || !regexp.MustCompile(`<-  250 2\.0\.0 OK queued as [0-9a-v]{20}`).MatchString(out) {
		t.Fatalf("swaks -bs: exit %d\n%s", code, out)
	}
	got := s.waitMaildir("postmaster@localhost", "Subject: over -bs", "smtp on stdin")
	if !strings.Contains(got, "From: root@localhost\r\n") {
		t.Errorf("-bs: From not qualified:\n%s", got)
	}

	// -bp and mailq: the message to bob, deferred.
	var list string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if list, code = sh(t, sendmail+" -bp"); code == 0 && strings.Contains(list, "bob@remote.example (deferred") {
			break
		}
	}
	if !strings.Contains(list, "bob@remote.example (deferred, next in ") || !strings.Contains(list, ", 1 attempt)") {
		t.Fatalf("sendmail -bp: exit %d\n%s", code, list)
	}
	mailq := s.sendmailLink("mailq")
	if out, code := sh(t, mailq); code != 0 || !strings.Contains(out, "bob@remote.example (deferred") {
		t.Errorf("mailq: exit %d\n%s", code, out)
	}
	// -q: tried again now, not in a minute.
	if out, code := sh(t, sendmail+" -q"); code != 0 || out != "" {
		t.Fatalf("sendmail -q: exit %d: %q", code, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if list, _ = sh(t, sendmail+" -bp"); strings.Contains(list, ", 2 attempts)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second attempt after sendmail -q:\n%s", list)
		}
	}
}
