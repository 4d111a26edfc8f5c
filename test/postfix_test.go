package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/testcert"
)

// postfixMX is a private Postfix instance: its own configuration
// directory, queue, data directory and log under one temporary folder,
// listening for SMTP on one loopback address, port 25, and storing mail for
// every address of its domain in one Maildir. It does not touch the
// system's Postfix (/etc/postfix, /var/spool/postfix), which may be
// running at the same time.
type postfixMX struct {
	t       *testing.T
	bin     string
	conf    string // configuration directory (main.cf, master.cf)
	log     string // maillog_file
	maildir string // the one mailbox's Maildir
	mark    int    // length of the log once the instance was ready
}

// startPostfix configures and starts a Postfix instance that accepts mail
// for domain on ip:25 with STARTTLS offered (a self-signed certificate
// for localhost), and stops it when the test ends. Postfix must be
// installed (scripts/test installs it unconfigured); the test is skipped
// without it, or failed under POSTERN_INTEGRATION=1.
func startPostfix(t *testing.T, ip, domain string) *postfixMX {
	t.Helper()
	return startPostfixTLS(t, ip, nil, domain)
}

// startPostfixTLS is startPostfix with the certificate Postfix presents
// (nil: a self-signed one for localhost) and one or more domains it
// accepts mail for, the first of which names the host.
func startPostfixTLS(t *testing.T, ip string, cert *tls.Certificate, domains ...string) *postfixMX {
	t.Helper()
	return startPostfixConf(t, ip, cert, "", "", domains...)
}

// startPostfixConf is startPostfixTLS with lines added to main.cf and
// master.cf (for example a relayhost, and the smtp client's service to
// reach it).
func startPostfixConf(t *testing.T, ip string, cert *tls.Certificate, mainExtra, masterExtra string, domains ...string) *postfixMX {
	t.Helper()
	domain := domains[0]
	bin := postfixTool(t, "postfix")
	// Postfix's daemons run as the postfix user and the virtual delivery
	// agent as nobody; both must reach their folders.
	dir := sharedTempDir(t, "postern-postfix-", 0o755)
	p := &postfixMX{t: t, bin: bin, conf: filepath.Join(dir, "conf"), log: filepath.Join(dir, "postfix.log"),
		maildir: filepath.Join(dir, "mail", "box")}
	// The queue directory belongs to root (Postfix creates its
	// subdirectories with their owners); the mailbox base to nobody.
	for _, d := range []string{p.conf, filepath.Join(dir, "queue"), filepath.Join(dir, "mail")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(filepath.Join(dir, "mail"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if cert != nil {
		testcert.WriteFiles(t, *cert, filepath.Join(p.conf, "cert.pem"), filepath.Join(p.conf, "key.pem"))
	} else {
		writeCert(t, filepath.Join(p.conf, "cert.pem"), filepath.Join(p.conf, "key.pem"))
	}

	// inet_interfaces only names addresses configured on an interface
	// (127.0.0.1 on lo), so the one SMTP service binds ip:25 in master.cf
	// instead. Nothing here asks DNS: the domain is a virtual mailbox
	// domain, and client names are not looked up.
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-postern-test
maillog_file = %[2]s
maillog_file_prefixes = %[1]s
myhostname = mx.%[3]s
mydomain = %[3]s
myorigin = %[3]s
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
alias_maps =
alias_database =
biff = no
smtpd_peername_lookup = no
smtpd_relay_restrictions = reject_unauth_destination
smtpd_tls_cert_file = %[4]s/cert.pem
smtpd_tls_key_file = %[4]s/key.pem
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
virtual_mailbox_domains = %[5]s
virtual_mailbox_base = %[1]s/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
`, dir, p.log, domain, p.conf, strings.Join(domains, " ")) + mainExtra
	// No chroot: the Debian defaults would need a populated
	// /var/spool/postfix-style jail.
	masterCF := ip + `:25 inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
smtp      unix  - - n -  - smtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
` + masterExtra
	if err := os.WriteFile(filepath.Join(p.conf, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(masterCF), 0o644); err != nil {
		t.Fatal(err)
	}

	// `postfix start` waits for the master to initialise, then returns;
	// the master runs on, detached. Root may name any configuration
	// directory with -c (no entry in /etc/postfix/main.cf is needed).
	if out, err := p.postfix(20*time.Second, "start"); err != nil {
		t.Fatalf("postfix start: %v\n%s\nlog:\n%s", err, out, p.logText())
	}
	t.Cleanup(func() {
		if out, err := p.postfix(15*time.Second, "stop"); err != nil {
			t.Logf("postfix stop: %v\n%s", err, out)
		}
		if t.Failed() {
			t.Logf("postfix log:\n%s", p.logText())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", ip+":25")
		if err == nil {
			c.Close()
			// What follows the probe's session in the log is the test's.
			p.waitLog("disconnect from ")
			p.mark = len(p.logText())
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix on %s:25 did not start: %v\nlog:\n%s", ip, err, p.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// postfix runs the postfix command on this instance. Its output goes to a
// file, not a pipe: the master it starts must not hold the test's pipe.
func (p *postfixMX) postfix(timeout time.Duration, args ...string) (string, error) {
	out, err := os.CreateTemp("", "postern-postfix-out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"-c", p.conf}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	return string(b), err
}

// logText returns the instance's log so far.
func (p *postfixMX) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// sessionLog returns the log written since the instance was ready: the
// test's own sessions, without the start-up probe.
func (p *postfixMX) sessionLog() string {
	return p.logText()[p.mark:]
}

// waitMessage waits until the Maildir holds a message containing marker.
func (p *postfixMX) waitMessage(marker string) string {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := fileWith(filepath.Join(p.maildir, "new", "*"), marker); m != "" {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("no message with %q in Postfix's Maildir after 10s\npostfix log:\n%s", marker, p.logText())
	return ""
}

// waitLog waits until the instance's log, since it was ready, has a line
// containing every string in want, and returns it.
func (p *postfixMX) waitLog(want ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(p.sessionLog(), "\n") {
			if containsAll(line, want...) {
				return line
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("no line with %q in Postfix's log after 10s:\n%s", want, p.logText())
	return ""
}

// TestDeliveryToPostfix delivers through the real binary to a real
// Postfix as the recipient domain's MX (found in a DNS server on
// loopback): a body with dot-led lines, a 998-octet line and 8-bit text
// arrives byte for byte (Postfix stores lines with LF), over STARTTLS;
// a second message, sent after the first arrived, reuses the pooled
// connection, which Postfix's log shows as one session with two MAILs,
// each sent with BDAT since Postfix offers CHUNKING.
func TestDeliveryToPostfix(t *testing.T) {
	integration(t)
	const ip = "127.0.0.79"
	pf := startPostfix(t, ip, "example.net")
	s := testConfig(t, t.TempDir(), "")
	s.mxAt("example.net", ip)
	s.start()
	s.addUser("dora@example.test", "dora-password")

	// RFC 5321 §4.5.3.1.6: a text line is at most 998 octets before CRLF.
	line998 := strings.Repeat("0123456789", 99) + "abcdefgh"
	if len(line998) != 998 {
		t.Fatalf("long line has %d octets", len(line998))
	}
	body := strings.Join([]string{
		"first line",
		".",
		"..",
		".leading dot",
		"...three dots",
		"From the start of a line (a Maildir needs no >From quoting)",
		line998,
		"Grüße aus Köln: naïve café, 8-bit text — 5 €",
		"latin-1 byte: \xe9t\xe9",
		"trailing spaces   ",
		"\ttab first",
		"",
		"",
		"last line.",
	}, "\r\n") + "\r\n"
	msg := "From: dora@example.test\r\nTo: eve@example.net\r\nSubject: postfix-interop-1\r\n\r\n" + body

	c := mustDial(t, s.sub, "dora@example.test", "dora-password")
	defer c.Close()
	if err := send(c, "dora@example.test", "eve@example.net", msg); err != nil {
		t.Fatalf("submit: %v", err)
	}
	got := pf.waitMessage("Subject: postfix-interop-1")
	_, gotBody, ok := strings.Cut(got, "\n\n")
	if !ok {
		t.Fatalf("no header/body separator in:\n%q", got)
	}
	if want := strings.ReplaceAll(body, "\r\n", "\n"); gotBody != want {
		t.Errorf("body changed on the way to Postfix:\n got %q\nwant %q", gotBody, want)
	}
	// Postfix's own Received field says the session was encrypted.
	if !strings.Contains(got, "with ESMTPS id") {
		t.Errorf("Postfix did not record an encrypted (ESMTPS) session:\n%s", got[:strings.Index(got, "\n\n")])
	}

	// The second message goes after the first arrived: the pooled,
	// idle connection carries it.
	if err := send(c, "dora@example.test", "eve@example.net",
		"From: dora@example.test\r\nTo: eve@example.net\r\nSubject: postfix-interop-2\r\n\r\nsecond\r\n"); err != nil {
		t.Fatalf("submit the second message: %v", err)
	}
	pf.waitMessage("Subject: postfix-interop-2")
	c.Quit()
	// Stopping Postern ends its idle outbound session with QUIT; Postfix
	// then logs the session's command counts.
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("postern exit: %v", err)
	}
	disc := pf.waitLog("smtpd[", "disconnect from ")
	if log := pf.sessionLog(); strings.Count(log, "]: connect from ") != 1 {
		t.Errorf("Postfix saw %d connections for two messages, want 1 (reuse):\n%s", strings.Count(log, "]: connect from "), log)
	}
	// Postfix offers CHUNKING: each message went as BDAT (RFC 3030),
	// none with DATA.
	for _, w := range []string{"starttls=1", "mail=2", "rcpt=2", "bdat=2", "quit=1"} {
		if !strings.Contains(disc, w) {
			t.Errorf("Postfix's session summary lacks %s: %s", w, disc)
		}
	}
	if strings.Contains(disc, " data=") {
		t.Errorf("Postfix's session summary shows DATA: %s", disc)
	}
}
