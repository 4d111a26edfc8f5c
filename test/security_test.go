package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"postern/internal/delivery/dovecottest"
)

// TestNmapOpenRelay runs nmap's smtp-open-relay script, which auditors
// run to show that a server is no open relay, against the mx port: 16
// relay attempts in one session, RSET between them. The session must
// last to the script's verdict: the errors past limits.error_delay_after
// slow the replies down, and 16 stay below limits.max_errors (issue 12,
// §8). The script's portrule wants port 25 or a detected smtp service;
// "+" runs it on this port as it is.
func TestNmapOpenRelay(t *testing.T) {
	integration(t)
	nmap := needTool(t, "nmap")
	s := testConfig(t, t.TempDir(), "")
	s.start()
	_, port, _ := strings.Cut(s.mx, ":")
	start := time.Now()
	out, err := exec.Command(nmap, "-n", "-Pn", "-p", port, "--script", "+smtp-open-relay", "127.0.0.1").CombinedOutput()
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("nmap: %v\n%s", err, out)
	}
	// The verdict's wording, from smtp-open-relay.nse's action.
	const verdict = "Server doesn't seem to be an open relay, all tests failed"
	if !strings.Contains(string(out), verdict) {
		t.Fatalf("nmap did not conclude %q:\n%s\nserver log:\n%s", verdict, out, s.stderr.String())
	}
	// The session's end is logged once nmap has gone.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.stderr.String(), "errors=16") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, "errors=16") {
		t.Errorf("want one session with the script's 16 refused relay attempts:\n%s", logs)
	}
	if strings.Contains(logs, "Too many errors") {
		t.Errorf("the session was cut for its errors:\n%s", logs)
	}
	// 16 errors: the replies after the 11th wait limits.error_delay (1s),
	// about 16 of them; nmap's own timeout per reply is 10s.
	t.Logf("nmap smtp-open-relay took %v", elapsed.Round(100*time.Millisecond))
	if elapsed > time.Minute {
		t.Errorf("nmap took %v: the slow-down is out of proportion", elapsed)
	}
}

// TestPostmasterNobody runs the real binary with a configuration file
// and no users: postmaster@ reaches nobody, so RCPT refuses it (no
// backscatter later), serve warns at start and postern check fails,
// both with the command that fixes it; once it is run, postmaster mail
// is delivered (issue 12, §6).
func TestPostmasterNobody(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	s := testConfig(t, t.TempDir(), "")
	s.start()
	fix := "postern user add postmaster@localhost --config " + s.config
	waitLogFor(t, s, "postmaster address reaches nobody", 5*time.Second)
	for _, addr := range []string{"postmaster@localhost", "postmaster@example.test"} {
		if !strings.Contains(s.stderr.String(), "address="+addr) {
			t.Errorf("no WARN for %s:\n%s", addr, s.stderr.String())
		}
	}
	if !strings.Contains(s.stderr.String(), fix) {
		t.Errorf("the WARN lacks the fix %q:\n%s", fix, s.stderr.String())
	}
	out, _ := exec.Command(binPath, append([]string{"check", "--json"}, s.args()...)...).Output()
	var rs []struct{ Check, Domain, Status, Message, Fix string }
	if err := json.Unmarshal([]byte(out), &rs); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	failed := 0
	for _, r := range rs {
		if r.Check == "postmaster" {
			if r.Status != "FAIL" || !strings.HasPrefix(r.Fix, fix) {
				t.Errorf("check: %+v, want FAIL with fix %q", r, fix)
			}
			failed++
		}
	}
	if failed != 2 {
		t.Errorf("%d postmaster results, want 2 FAILs:\n%s", failed, out)
	}
	for _, to := range []string{"postmaster@example.test", "postmaster@localhost"} {
		o, err := exec.Command(swaks, "--server", s.mx, "--from", "someone@example.net", "--to", to).CombinedOutput()
		if err == nil || !strings.Contains(string(o), "550 5.1.1") {
			t.Errorf("RCPT %s not refused with 550 5.1.1: %v\n%s", to, err, o)
		}
	}

	s.addUser("postmaster@localhost", "pw-postmaster-1") // the fix
	o, err := exec.Command(swaks, "--server", s.mx, "--from", "someone@example.net", "--to", "postmaster@example.test",
		"--header", "Subject: postmaster-marker").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks after the fix: %v\n%s", err, o)
	}
	s.waitMaildir("postmaster@localhost", "postmaster-marker")
}

// TestReturnPathAndLMTPStatus runs the real binary with Maildir and with
// LMTP to the real Dovecot: each stored copy has one Return-Path field,
// the envelope sender (RFC 5321 §4.4), whatever the sender wrote; and a
// recipient Dovecot refuses bounces with Dovecot's 5.1.1 in the DSN, not
// 5.0.0 (issue 12, §8).
func TestReturnPathAndLMTPStatus(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	forged := "Return-Path: <forged@evil.example>"

	t.Run("maildir", func(t *testing.T) {
		s := startWithUser(t, "", "alice@example.test", "alice-secret-1")
		out, err := exec.Command(swaks, "--server", s.mx, "--from", "bounces@sender.example", "--to", "alice@example.test",
			"--add-header", forged, "--header", "Subject: rp-maildir-marker").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		msg := s.waitMaildir("alice@example.test", "rp-maildir-marker")
		if !strings.HasPrefix(msg, "Return-Path: <bounces@sender.example>\r\n") || strings.Count(msg, "Return-Path:") != 1 {
			t.Errorf("want one Return-Path, the envelope sender, first:\n%s", msg)
		}
	})

	t.Run("lmtp", func(t *testing.T) {
		dc := dovecottest.Start(t, "alice@example.test")
		s := startWithUser(t, "\n[lmtp]\nnetwork = \"tcp\"\naddress = \""+dc.Addr+"\"\n", "alice@example.test", "alice-secret-1")
		s.addUser("bob@example.test", "bob-secret-1") // known here, not to Dovecot
		c := mustDial(t, s.sub, "alice@example.test", "alice-secret-1")
		body := forged + "\r\nFrom: alice@example.test\r\nSubject: rp-lmtp-marker\r\n\r\nhello\r\n"
		if err := send(c, "alice@example.test", "alice@example.test", body); err != nil {
			t.Fatal(err)
		}
		if err := send(c, "alice@example.test", "bob@example.test", body); err != nil {
			t.Fatal(err)
		}
		c.Quit()
		// The body too: the DSN for bob, also alice's, quotes the header
		// only, and may come first in the listing.
		msg := dc.WaitMessage("alice@example.test", "rp-lmtp-marker", "\nhello")
		if !strings.HasPrefix(msg, "Return-Path: <alice@example.test>") || strings.Count(msg, "Return-Path:") != 1 {
			t.Errorf("want one Return-Path, the envelope sender, first:\n%s", msg)
		}
		dsn := dc.WaitMessage("alice@example.test", "Final-Recipient: rfc822; bob@example.test")
		if dsn == "" {
			t.Fatalf("no DSN for bob; alice has %d messages\nlog:\n%s", len(dc.Messages("alice@example.test")), s.stderr.String())
		}
		for _, want := range []string{"Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.test> User doesn't exist"} {
			if !strings.Contains(dsn, want) {
				t.Errorf("DSN lacks %q:\n%s", want, dsn)
			}
		}
	})
}

// TestKelvinDomain runs the real binary with the local domain work.test:
// "alice@wor\u212A.test" (KELVIN SIGN, which strings.ToLower makes a k)
// is no local address, nor any valid one: refused at RCPT on mx, and on
// submission not relayed; alice@work.test itself is taken (issue 12, §8).
func TestKelvinDomain(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	b, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), `local_domains = ["localhost", "example.test"]`, `local_domains = ["localhost", "example.test", "work.test"]`, 1))
	if err := os.WriteFile(s.config, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	s.addUser("alice@work.test", "alice-secret-1")
	c := dialFrom(t, "127.0.0.1", s.mx, "")
	c.expect("220 ")
	say := func(cmd, want string) {
		t.Helper()
		if _, err := c.c.Write([]byte(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		c.expect(want)
	}
	say("EHLO client.example", "250-")
	for l := c.expect("250"); !strings.HasPrefix(l, "250 "); l = c.expect("250") {
	}
	say("MAIL FROM:<someone@example.net> SMTPUTF8", "250 ")
	say("RCPT TO:<alice@wor\u212A.test>", "501 5.1.3")
	say("RCPT TO:<ALICE@Work.Test>", "250 ")
	say("QUIT", "221 ")
	if out, err := s.run("pw-k-1\n", "user", "add", "bob@wor\u212A.test"); err == nil {
		t.Errorf("user add of a Kelvin-sign domain succeeded:\n%s", out)
	}
}
