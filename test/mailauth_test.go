package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"postern/internal/dns/dnstest"
)

// TestMailAuthentication drives issue 4 through the binary: mail
// submitted for another domain leaves DKIM-signed with the key `postern
// dkim keygen` made; on port 25, SPF and DMARC decide, and our own domain
// cannot be spoofed.
func TestMailAuthentication(t *testing.T) {
	integration(t)
	swaks := needTool(t, "swaks")
	sinkDir := sink(t, "127.0.0.78")
	dir := t.TempDir()
	// A second key, outside the data directory, named in the configuration.
	s := testConfig(t, dir, "\n[[mail_auth.dkim_key]]\ndomain = \"example.test\"\nselector = \"s9\"\nkey_file = \"alt.pem\"\n")
	os.MkdirAll(s.data, 0o700)
	out, err := s.run("", "dkim", "keygen", "example.test", "--selector", "s1", "--algorithm", "ed25519")
	if err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	if out, err := s.run("", "dkim", "keygen", "example.test", "--selector", "s9", "--algorithm", "rsa"); err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(s.data, "dkim", "example.test", "s9.rsa.pem"), filepath.Join(dir, "alt.pem")); err != nil {
		t.Fatal(err)
	}
	rec := regexp.MustCompile(`s1\._domainkey\.example\.test\.?\s+IN\s+TXT\s+"(v=DKIM1;[^"]+)"`).FindStringSubmatch(out)
	if rec == nil {
		t.Fatalf("keygen printed no TXT record:\n%s", out)
	}
	s.dns.Set("s1._domainkey.example.test", dnstest.TXT(rec[1]))
	s.mxAt("example.net", "127.0.0.78")
	s.dns.Set("good.example", dnstest.TXT("v=spf1 ip4:127.0.0.0/8 -all"))
	s.dns.Set("evil.example", dnstest.TXT("v=spf1 -all"))
	s.dns.Set("_dmarc.evil.example", dnstest.TXT("v=DMARC1; p=reject"))
	s.start()
	s.addUser("gina@example.test", "gina-password")

	t.Run("submission signs with the domain's key", func(t *testing.T) {
		c := mustDial(t, s.sub, "gina@example.test", "gina-password")
		defer c.Close()
		if err := send(c, "gina@example.test", "ivan@example.net", "From: gina@example.test\r\nTo: ivan@example.net\r\nSubject: dkim-marker\r\n\r\nsigned body\r\n"); err != nil {
			t.Fatal(err)
		}
		got := waitSink(t, sinkDir, "dkim-marker")
		for _, want := range []string{"DKIM-Signature: v=1; a=ed25519-sha256", "d=example.test", "s=s1", "a=rsa-sha256", "s=s9"} {
			if !strings.Contains(strings.ReplaceAll(got, "\n\t", " "), want) {
				t.Errorf("sent message lacks %q:\n%s", want, got)
			}
		}
		// The delivery line says what Postfix's status= line says.
		line := regexp.MustCompile(`msg="queue: delivered" id=\w{20} rcpt=ivan@example.net .*`).FindString(s.stderr.String())
		for _, want := range []string{"from=gina@example.test", "outcome=delivered", "local=false", "attempt=1",
			"status=2.0.0", "delay=", "delay_queue=", "delay_connect=", "delay_transmit=", "relay=mx.example.net",
			"relay_addr=127.0.0.78:25", "tls=", `reply="250 `} {
			if !strings.Contains(line, want) {
				t.Errorf("the delivery line lacks %q: %s", want, line)
			}
		}
	})

	mx := func(from, hdrFrom, subject string) (string, error) {
		o, err := exec.Command(swaks, "--server", s.mx, "--helo", "client.good.example", "--from", from,
			"--to", "gina@example.test", "--header", "From: "+hdrFrom, "--header", "Subject: "+subject).CombinedOutput()
		return string(o), err
	}
	t.Run("SPF pass is delivered with Authentication-Results", func(t *testing.T) {
		if o, err := mx("news@good.example", "news@good.example", "spf-pass-marker"); err != nil {
			t.Fatalf("refused: %v\n%s", err, o)
		}
		m := s.waitMaildir("gina@example.test", "spf-pass-marker")
		if !regexp.MustCompile(`Authentication-Results: localhost;[^\n]*\n?[^\n]*spf=pass`).MatchString(m) {
			t.Errorf("no spf=pass in Authentication-Results:\n%s", m)
		}
		// Like every session event, the result names the listener, the
		// session and the message.
		if !regexp.MustCompile(`msg="mail authentication" listener=mx session=\w{20} id=\w{20} remote=127.0.0.1 mail_from=news@good.example spf=pass`).MatchString(s.stderr.String()) {
			t.Errorf("no mail authentication event with listener, session and id:\n%s", s.stderr.String())
		}
	})
	t.Run("DMARC p=reject refuses at end of DATA", func(t *testing.T) {
		o, err := mx("ceo@evil.example", "ceo@evil.example", "dmarc-reject-marker")
		if err == nil || !strings.Contains(o, "550 5.7.1") {
			t.Fatalf("not refused with 550 5.7.1: %v\n%s", err, o)
		}
	})
	t.Run("our own domain cannot be spoofed on port 25", func(t *testing.T) {
		o, err := mx("gina@example.test", "gina@example.test", "spoof-marker")
		if err == nil || !strings.Contains(o, "550 5.7.1") {
			t.Fatalf("spoofed local sender not refused with 550 5.7.1: %v\n%s", err, o)
		}
	})
}
