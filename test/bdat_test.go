package test

import (
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/delivery/dovecottest"
)

// startDovecotSubmission runs Dovecot's submission service on a free
// loopback port, with user fred@example.net (password fredpass),
// relaying what it is given to relay (host:port) in plaintext, and
// stops it when the test ends. Dovecot's SMTP client sends the message
// with BDAT when the relay offers CHUNKING.
func startDovecotSubmission(t *testing.T, relay string) (addr string, logFile string) {
	t.Helper()
	bin := "/usr/sbin/dovecot"
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("dovecot is required (scripts/test installs dovecot-submissiond): %v", err)
	}
	if _, err := os.Stat("/usr/lib/dovecot/submission"); err != nil {
		t.Fatalf("dovecot's submission service is required (scripts/test installs dovecot-submissiond): %v", err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	dir := sharedTempDir(t, "postern-dovecot-sub-", 0o755)
	for _, d := range []string{"run", "state", "mail"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("fred@example.net:{PLAIN}fredpass::::::\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr = freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	relayHost, relayPort, _ := net.SplitHostPort(relay)
	logFile = filepath.Join(dir, "dovecot.log")
	conf := fmt.Sprintf(`protocols = submission
disable_plaintext_auth = no
auth_mechanisms = plain
hostname = relay.example.net
default_login_user = dovenull
mail_uid = %[1]s
mail_gid = %[1]s
submission_relay_host = %[2]s
submission_relay_port = %[3]s
submission_relay_ssl = no
submission_relay_trusted = no
service submission-login {
  chroot =
  inet_listener submission {
    address = 127.0.0.1
    port = %[4]s
  }
}
`, nobody.Uid, relayHost, relayPort, port)
	dovecottest.Run(t, bin, conf, dir, addr)
	return addr, logFile
}

// TestBdatFromDovecot has a real SMTP client that uses CHUNKING send
// mail to the real binary's mx listener: Dovecot's submission service
// relays a message to Postern, which offers CHUNKING, and Postern's
// protocol trace shows the message came in a BDAT LAST chunk, not
// DATA. The message reaches the local mailbox intact, dot-led lines
// and all (BDAT does not stuff), with Postern's Received and
// Authentication-Results on top.
func TestBdatFromDovecot(t *testing.T) {
	integration(t)
	s := startWithUser(t, "\n[log]\nformat = \"json\"\ntrace = [\"127.0.0.1\"]\n", "dora@example.test", "dora-password")
	sub, _ := startDovecotSubmission(t, s.mx)

	body := "first line\r\n.\r\n..two dots\r\n.leading dot\r\n" + strings.Repeat("a body line to make it larger\r\n", 5000) + "last line\r\n"
	msg := "From: fred@example.net\r\nTo: dora@example.test\r\nSubject: bdat-from-dovecot\r\n\r\n" + body
	c, err := smtp.Dial(sub)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "fred@example.net", "fredpass", "127.0.0.1")); err != nil {
		t.Fatalf("AUTH at Dovecot: %v", err)
	}
	if err := send(c, "fred@example.net", "dora@example.test", msg); err != nil {
		t.Fatalf("submit to Dovecot: %v", err)
	}
	c.Quit()
	got := s.waitMaildir("dora@example.test", "Subject: bdat-from-dovecot")
	if !strings.HasSuffix(got, "\r\n\r\n"+body) {
		t.Errorf("the body changed on the way (%d octets stored)", len(got))
	}
	// The mx checks of the end of the message ran: Received and
	// Authentication-Results (SPF, DKIM, DMARC) on top.
	if !strings.Contains(got, "Received: from relay.example.net") || !strings.Contains(got, "Authentication-Results: localhost;") {
		t.Errorf("no Received from Dovecot's session or no Authentication-Results:\n%.800s", got)
	}
	var bdat, data []string
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if !strings.Contains(l, `"msg":"smtp trace"`) || !strings.Contains(l, `"from":"client"`) {
			continue
		}
		if strings.Contains(l, `"line":"BDAT `) {
			bdat = append(bdat, l)
		}
		if strings.Contains(l, `"line":"DATA"`) {
			data = append(data, l)
		}
	}
	if len(bdat) == 0 || !strings.Contains(bdat[len(bdat)-1], ` LAST"`) || len(data) != 0 {
		t.Errorf("Dovecot did not send the message with BDAT: BDAT lines %q, DATA lines %q", bdat, data)
	}
}

// TestPostfixRelaysToPostern has the real Postfix relay a message to
// the binary's mx listener, which offers CHUNKING. Postfix's smtp
// client (3.7, as every Postfix so far) has no BDAT: it sends with DATA
// whatever the server offers, and Postern's offer changes nothing for
// it. The trace shows DATA; the message arrives intact.
func TestPostfixRelaysToPostern(t *testing.T) {
	integration(t)
	s := startWithUser(t, "\n[log]\nformat = \"json\"\ntrace = [\"127.0.0.81\"]\n", "dora@example.test", "dora-password")
	const ip = "127.0.0.81"
	host, port, _ := net.SplitHostPort(s.mx)
	pf := startPostfixConf(t, ip, nil, fmt.Sprintf(`relay_domains = example.test
relayhost = [%s]:%s
relay_transport = smtp
smtp_bind_address = %s
`, host, port, ip), "", "relay.example.net")

	body := "first\r\n.\r\n..two dots\r\nlast\r\n"
	c, err := smtp.Dial(ip + ":25")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(c, "fred@example.net", "dora@example.test",
		"From: fred@example.net\r\nSubject: postfix-to-postern\r\n\r\n"+body); err != nil {
		t.Fatalf("submit to Postfix: %v", err)
	}
	c.Quit()
	got := s.waitMaildir("dora@example.test", "Subject: postfix-to-postern")
	if !strings.HasSuffix(got, "\r\n\r\n"+body) {
		t.Errorf("the body changed on the way:\n%q", got)
	}
	pf.waitLog("to=<dora@example.test>", "status=sent")
	var verbs []string
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if strings.Contains(l, `"msg":"smtp trace"`) && strings.Contains(l, `"from":"client"`) {
			if _, after, ok := strings.Cut(l, `"line":"`); ok {
				verbs = append(verbs, strings.Fields(after)[0])
			}
		}
	}
	if v := strings.Join(verbs, " "); !strings.Contains(v, `DATA"}`) || strings.Contains(v, "BDAT") {
		t.Errorf("Postfix's commands: %s", v)
	}
}

// TestBdatSubmissionSigned sends a message in BDAT chunks on the
// submission port of the real binary: it gets the checks and repairs
// of submission (Message-ID added) and Postern's DKIM signature, as
// with DATA, and arrives intact.
func TestBdatSubmissionSigned(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	os.MkdirAll(s.data, 0o700)
	if out, err := s.run("", "dkim", "keygen", "example.test", "--selector", "s1", "--algorithm", "ed25519"); err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	s.start()
	s.addUser("gina@example.test", "gina-password")
	s.addUser("ivan@example.test", "ivan-password")
	c := mustDial(t, s.sub, "gina@example.test", "gina-password")
	defer c.Close()
	if ok, _ := c.Extension("CHUNKING"); !ok {
		t.Fatal("submission does not offer CHUNKING")
	}
	if err := c.Mail("gina@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("ivan@example.test"); err != nil {
		t.Fatal(err)
	}
	head := "From: gina@example.test\r\nTo: ivan@example.test\r\nSubject: bdat-signed\r\n\r\n"
	body := ".dot line\r\nsigned body\r\n"
	w := c.Text.W
	fmt.Fprintf(w, "BDAT %d\r\n%s", len(head), head)
	fmt.Fprintf(w, "BDAT %d LAST\r\n%s", len(body), body)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Text.ReadResponse(250); err != nil {
		t.Fatalf("first chunk: %v", err)
	}
	if _, msg, err := c.Text.ReadResponse(250); err != nil || !strings.Contains(msg, "queued as") {
		t.Fatalf("last chunk: %q, %v", msg, err)
	}
	c.Quit()
	got := s.waitMaildir("ivan@example.test", "Subject: bdat-signed")
	for _, want := range []string{"DKIM-Signature: v=1; a=ed25519-sha256", "Message-ID: <", "\r\n\r\n" + body} {
		if !strings.Contains(strings.ReplaceAll(got, "\r\n\t", " "), want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
}
