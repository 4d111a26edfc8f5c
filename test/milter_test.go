package test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/milter/miltertest"
	"postern/internal/testkit"
)

// gtube is the GTUBE test string every spam filter rejects.
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// daemon is a milter process a test started.
type daemon struct {
	cmd  *exec.Cmd
	log  string // its log file
	done chan struct{}
}

// stop kills the process and the workers it forked, and waits for it.
func (d *daemon) stop() {
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

// startDaemon runs cmd until the test ends and waits, up to wait, for
// addr to accept connections.
func startDaemon(t *testing.T, cmd *exec.Cmd, addr, log string, wait time.Duration) *daemon {
	t.Helper()
	out := &testkit.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: killing it kills the workers it forks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("%s output:\n%s\nlog (end):\n%s", filepath.Base(cmd.Path), out.String(), tail(string(b), 3000))
		}
	})
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return d
		}
		select {
		case <-d.done:
			b, _ := os.ReadFile(log)
			t.Fatalf("%s exited: %s\n%s", cmd.Path, out.String(), tail(string(b), 3000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening on %s after %v", cmd.Path, addr, wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// startRspamd runs a private rspamd (Debian's package) whose proxy
// worker listens on addr in milter mode and scans by itself (no normal
// worker, no controller, no Redis), with a copy of /etc/rspamd and dns
// as its only resolver. Its compiled regular expressions are cached
// across runs in the temporary directory: compiling them takes about 40
// seconds on a small machine, starting with them 2.
func startRspamd(t *testing.T, addr, dns string) *daemon {
	t.Helper()
	bin := needTool(t, "rspamd")
	if _, err := os.Stat("/etc/rspamd/rspamd.conf"); err != nil {
		t.Fatalf("rspamd's configuration is missing (Debian's rspamd package installs it): %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	if out, err := exec.Command("cp", "-r", "/etc/rspamd", conf).CombinedOutput(); err != nil {
		t.Fatalf("copy /etc/rspamd: %v\n%s", err, out)
	}
	cache := filepath.Join(os.TempDir(), "postern-rspamd-hs-cache")
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"db", "run", "log"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	log := filepath.Join(dir, "log", "rspamd.log")
	files := map[string]string{
		"override.d/worker-proxy.inc": fmt.Sprintf(`bind_socket = "%s";
milter = yes;
timeout = 120s;
upstream "local" {
  default = yes;
  self_scan = yes;
}
count = 1;
discard_on_reject = false;
quarantine_on_reject = false;
spam_header = "X-Spam";
reject_message = "Spam message rejected";
`, addr),
		"override.d/worker-normal.inc":     "enabled = false;\n",
		"override.d/worker-controller.inc": "enabled = false;\n",
		"override.d/logging.inc":           fmt.Sprintf("type = \"file\";\nfilename = %q;\nlevel = \"info\";\n", log),
		"local.d/options.inc": fmt.Sprintf(`dns {
  nameserver = ["%s"];
  timeout = 1s;
  retransmits = 1;
}
hs_cache_dir = %q;
`, dns, cache+"/"),
		// rspamd's own headers on every message, local and
		// authenticated ones too (the tests' clients are on loopback).
		"local.d/milter_headers.conf": "extended_spam_headers = true;\nskip_local = false;\nskip_authenticated = false;\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-f", "-i", "-c", filepath.Join(conf, "rspamd.conf"),
		"--var", "CONFDIR="+conf, "--var", "LOCAL_CONFDIR="+conf, "--var", "DBDIR="+filepath.Join(dir, "db"),
		"--var", "RUNDIR="+filepath.Join(dir, "run"), "--var", "LOGDIR="+filepath.Join(dir, "log"))
	cmd.Dir = dir
	return startDaemon(t, cmd, addr, log, 4*time.Minute)
}

// TestMilterRspamd runs the binary with a real rspamd as the milter of
// port 25: GTUBE is rejected with rspamd's reply, a clean message gets
// rspamd's headers (its queue id is Postern's), and with rspamd down the
// listener does what default_action says: tempfail (421 at connect),
// or accept (the message goes through unfiltered). Both are counted.
func TestMilterRspamd(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	rspamdAddr := freeAddr(t)
	milterConf := func(action string) string {
		return fmt.Sprintf("\n[[milter]]\nname = \"rspamd\"\naddress = \"inet:%s\"\nroles = [\"mx\"]\ndefault_action = %q\n", rspamdAddr, action)
	}
	dir := t.TempDir()
	s := testConfig(t, dir, milterConf("tempfail"))
	rspamd := startRspamd(t, rspamdAddr, s.dns.Addr())
	s.start()
	s.addUser("bob@example.test", "bob-password-1")
	mx := func(subject, body string) (string, error) {
		o, err := exec.Command(swaks, "--server", s.mx, "--helo", "client.example.net", "--from", "sender@example.net",
			"--to", "bob@example.test", "--header", "From: sender@example.net", "--header", "Subject: "+subject,
			"--body", body).CombinedOutput()
		return string(o), err
	}

	t.Run("GTUBE is rejected on port 25", func(t *testing.T) {
		o, err := mx("gtube-marker", "Buy now\n"+gtube+"\n")
		if err == nil || !strings.Contains(o, "<** 554 5.7.1 Gtube pattern") {
			t.Fatalf("not rejected with rspamd's reply: %v\n%s", err, o)
		}
		time.Sleep(200 * time.Millisecond)
		for _, m := range s.maildirNew("bob@example.test") {
			if strings.Contains(m, "gtube-marker") {
				t.Fatal("the GTUBE message was delivered")
			}
		}
	})
	t.Run("a clean message gets rspamd's headers", func(t *testing.T) {
		if o, err := mx("clean-marker", "Hello Bob, see you at lunch.\n"); err != nil {
			t.Fatalf("refused: %v\n%s", err, o)
		}
		m := s.waitMaildir("bob@example.test", "clean-marker")
		id := regexp.MustCompile(`(?m)^Received: from client\.example\.net[^;]*\s+id ([0-9a-v]{20})`).FindStringSubmatch(m)
		if id == nil {
			t.Fatalf("no Received with our queue id:\n%s", m)
		}
		for _, want := range []string{"X-Spamd-Result: default: ", "X-Rspamd-Server: ", "X-Rspamd-Queue-Id: " + id[1], "Authentication-Results: localhost;"} {
			if !strings.Contains(m, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, m)
			}
		}
		// Postern's checks come first: rspamd sees its Authentication-Results.
		if strings.Index(m, "Authentication-Results: localhost;") > strings.Index(m, "X-Spamd-Result") {
			t.Errorf("headers out of order:\n%s", m)
		}
	})

	rspamd.stop()
	t.Run("rspamd down: tempfail", func(t *testing.T) {
		o, err := mx("down-tempfail-marker", "x\n")
		if err == nil || !strings.Contains(o, "<** 421 localhost Service unavailable - try again later") {
			t.Fatalf("not 421 at connect: %v\n%s", err, o)
		}
		if l := metricLine(t, s.http, `postern_milter_errors_total{error="unavailable",listener="mx",milter="rspamd",stage="negotiate"}`); l == "" {
			t.Errorf("the failure is not counted")
		}
		if l := metricLine(t, s.http, `postern_milter_default_actions_total{action="tempfail",listener="mx",milter="rspamd"}`); l == "" {
			t.Errorf("the default action is not counted")
		}
		if logs := s.stdout.String() + s.stderr.String(); !regexp.MustCompile(`"milter failed".* session=\S+ milter=rspamd stage=negotiate error=unavailable default_action=tempfail`).MatchString(logs) {
			t.Errorf("no \"milter failed\" event with the session in the log")
		}
	})
	t.Run("rspamd down: accept", func(t *testing.T) {
		if err := s.signal(syscall.SIGTERM); err != nil {
			t.Fatalf("stop: %v", err)
		}
		s = testConfig(t, dir, milterConf("accept"))
		s.start()
		if o, err := mx("down-accept-marker", "x\n"); err != nil {
			t.Fatalf("refused with default_action = accept: %v\n%s", err, o)
		}
		if m := s.waitMaildir("bob@example.test", "down-accept-marker"); strings.Contains(m, "X-Spamd-Result") {
			t.Errorf("rspamd's headers without rspamd:\n%s", m)
		}
		if l := metricLine(t, s.http, `postern_milter_default_actions_total{action="accept",listener="mx",milter="rspamd"}`); l == "" {
			t.Errorf("the default action is not counted")
		}
	})
}

// opendkimBin returns Debian's opendkim (in /usr/sbin, which may not be
// on PATH).
func opendkimBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("opendkim"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/opendkim"); err == nil {
		return "/usr/sbin/opendkim"
	}
	return needTool(t, "opendkim")
}

// TestMilterOpenDKIM runs the binary with a real OpenDKIM in sign mode as
// the milter of the submission listeners, and a key of Postern's own for
// the same domain: a submitted message is delivered with OpenDKIM's
// DKIM-Signature and, on top, Postern's, made after the milter; dkimpy
// verifies both on the stored message against the test DNS.
func TestMilterOpenDKIM(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	bin := opendkimBin(t)
	if exec.Command("/usr/bin/python3", "-c", "import dkim, dns.resolver").Run() != nil {
		needTool(t, "dkimverify") // python3-dkim
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	s := testConfig(t, dir, fmt.Sprintf("\n[[milter]]\nname = \"opendkim\"\naddress = \"inet:%s\"\nroles = [\"submission\", \"submissions\"]\n", addr))

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "odk.private")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	s.dns.Set("odk._domainkey.example.test", dnstest.TXT("v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(pub)))
	conf := filepath.Join(dir, "opendkim.conf")
	log := filepath.Join(dir, "opendkim.log")
	os.WriteFile(conf, []byte(fmt.Sprintf(`Syslog no
Background no
Mode s
Domain example.test
Selector odk
KeyFile %s
RequireSafeKeys no
Canonicalization relaxed/relaxed
Socket inet:%s@%s
PidFile %s
LogWhy yes
`, keyFile, port, host, filepath.Join(dir, "opendkim.pid"))), 0o600)
	startDaemon(t, exec.Command(bin, "-f", "-x", conf), addr, log, 30*time.Second)
	os.MkdirAll(s.data, 0o700)
	out, err := s.run("", "dkim", "keygen", "example.test", "--selector", "own", "--algorithm", "ed25519")
	if err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	rec := regexp.MustCompile(`own\._domainkey\.example\.test\.?\s+IN\s+TXT\s+"(v=DKIM1;[^"]+)"`).FindStringSubmatch(out)
	if rec == nil {
		t.Fatalf("keygen printed no TXT record:\n%s", out)
	}
	s.dns.Set("own._domainkey.example.test", dnstest.TXT(rec[1]))
	s.start()
	s.addUser("alice@example.test", "alice-password-1")
	s.addUser("bob@example.test", "bob-password-1")

	o, err := exec.Command(swaks, "--server", s.sub, "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.test",
		"--auth-password", "alice-password-1", "--from", "alice@example.test", "--to", "bob@example.test",
		"--header", "From: alice@example.test", "--header", "Subject: opendkim-marker",
		"--body", "Signed by OpenDKIM, a milter.\n").CombinedOutput()
	if err != nil {
		t.Fatalf("submission refused: %v\n%s", err, o)
	}
	m := s.waitMaildir("bob@example.test", "opendkim-marker")
	odk := regexp.MustCompile(`DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;\s+s=odk;`).FindStringIndex(m)
	own := regexp.MustCompile(`DKIM-Signature: v=1; a=ed25519-sha256;[^:]*s=own;`).FindStringIndex(m)
	if odk == nil || own == nil || own[0] > odk[0] {
		t.Fatalf("want Postern's signature on top of OpenDKIM's:\n%s", m)
	}
	f := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(f, []byte(m), 0o600)
	v, err := exec.Command("/usr/bin/python3", "../internal/mailauth/testdata/dkimpy_verify.py", s.dns.Addr(), f).CombinedOutput()
	if err != nil || strings.TrimSpace(string(v)) != "ok ok" {
		t.Fatalf("dkimpy: %v: %s\n%s", err, v, m)
	}
}

// TestMilterQuarantine runs the binary with a milter that quarantines:
// the message is taken (250), held in the queue with the milter's reason
// across a restart, and `postern queue release` delivers it.
func TestMilterQuarantine(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	m := &miltertest.Server{Handler: miltertest.At('E', miltertest.Quarantine("looks like phishing"), miltertest.Continue)}
	m.Start(t)
	s := startWithUser(t, fmt.Sprintf("\n[[milter]]\nname = \"checker\"\naddress = %q\nroles = [\"mx\"]\n", m.Address()), "bob@example.test", "bob-password-1")
	o, err := exec.Command(swaks, "--server", s.mx, "--from", "sender@example.net", "--to", "bob@example.test",
		"--header", "Subject: quarantine-marker").CombinedOutput()
	if err != nil || !strings.Contains(string(o), "<~  250 2.0.0 OK queued as") && !strings.Contains(string(o), "<-  250 2.0.0 OK queued as") {
		t.Fatalf("not taken: %v\n%s", err, o)
	}
	out, err := s.run("", "queue", "list")
	id := regexp.MustCompile(`(?m)^([0-9a-v]{20}) .*bob@example\.test \(held: milter checker: looks like phishing\)$`).FindStringSubmatch(out)
	if err != nil || id == nil {
		t.Fatalf("queue list does not show the message held: %v\n%s", err, out)
	}
	s.restartHolding("bob@example.test", "quarantine-marker")
	s.releaseHeld(id[1], "bob@example.test", "quarantine-marker")
}
