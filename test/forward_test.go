package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/srs"
)

// mxOn moves the server's mx listener to ip:25, where other servers
// deliver (the test runs as root, like the Postfix tests).
func (s *server) mxOn(ip string) {
	s.t.Helper()
	s.editConfig(fmt.Sprintf("address = %q", s.mx), fmt.Sprintf("address = %q", ip+":25"))
	s.mx = ip + ":25"
}

// TestForwardSRS: an alias to another domain forwards through the real
// binary to a second Postern, the destination, on its own address. dave
// at the destination's domain writes (signed there with DKIM) to an
// alias of the forwarder; the copy arrives with the sender rewritten
// (SRS0) into the forwarder's domain, so SPF passes at the destination,
// which the original domain's SPF would not, and with the DKIM signature
// still valid. A bounce to the rewritten sender, on port 25, reaches
// dave; a forged or expired SRS address is refused at RCPT.
func TestForwardSRS(t *testing.T) {
	integration(t)
	needRoot(t, "the two servers deliver to each other on port 25: needs root")
	const fwdIP, dstIP = "127.0.0.131", "127.0.0.132"

	// The destination: example.net.
	dst := testConfig(t, t.TempDir(), "")
	dst.editConfig(`hostname = "localhost"`, `hostname = "mx.example.net"`)
	dst.editConfig(`local_domains = ["localhost", "example.test"]`, `local_domains = ["example.net"]`)
	dst.mxOn(dstIP)
	os.MkdirAll(dst.data, 0o700)
	out, err := dst.run("", "dkim", "keygen", "example.net", "--selector", "s1", "--algorithm", "ed25519")
	if err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	rec := regexp.MustCompile(`"(v=DKIM1;[^"]+)"`).FindStringSubmatch(out)
	if rec == nil {
		t.Fatalf("no DKIM record:\n%s", out)
	}
	dst.dns.Set("s1._domainkey.example.net", dnstest.TXT(rec[1]))
	dst.dns.Set("example.net", dnstest.TXT("v=spf1 ip4:192.0.2.1 -all")) // not the forwarder
	dst.dns.Set("example.test", dnstest.MX(10, "mx.example.test"), dnstest.TXT("v=spf1 ip4:127.0.0.0/8 -all"))
	dst.dns.Set("mx.example.test", dnstest.A(fwdIP))

	// The forwarder: example.test, with an alias to carol@example.net.
	fwd := testConfig(t, t.TempDir(), "\n[aliases]\n\"fwd@example.test\" = \"carol@example.net\"\n")
	fwd.mxOn(fwdIP)
	fwd.mxAt("example.net", dstIP)

	dst.start()
	fwd.start()
	dst.addUser("dave@example.net", "dave-password")
	dst.addUser("carol@example.net", "carol-password")

	c := mustDial(t, dst.sub, "dave@example.net", "dave-password")
	if err := send(c, "dave@example.net", "fwd@example.test", "From: dave@example.net\r\nTo: fwd@example.test\r\nSubject: forward-marker\r\n\r\nforwarded body\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	got := dst.waitMaildir("carol@example.net", "Subject: forward-marker")
	rp := regexp.MustCompile(`^Return-Path: <(SRS0=[A-Za-z0-9_-]{4}=[A-Z2-7]{2}=example\.net=dave@example\.test)>\r\n`).FindStringSubmatch(got)
	if rp == nil {
		t.Fatalf("the forwarded copy's sender is not an SRS0 address of example.test:\n%s", got)
	}
	ar := strings.ReplaceAll(got, "\r\n\t", " ")
	for _, want := range []string{"spf=pass smtp.mailfrom=" + rp[1] + ";", "dkim=pass header.d=example.net", "DKIM-Signature: v=1; a=ed25519-sha256", "\r\n\r\nforwarded body\r\n"} {
		if !strings.Contains(ar, want) {
			t.Errorf("forwarded copy lacks %q:\n%s", want, got)
		}
	}
	if !strings.Contains(fwd.stderr.String(), `msg=forwarded `) {
		t.Errorf("no forwarded event:\n%s", fwd.stderr.String())
	}

	// RFC 3461 §6.2.7.2: an alias with one target passes NOTIFY=SUCCESS
	// on with the copy (ORCPT the alias), so the success notice is the
	// destination's "delivered" for carol, back to dave through the SRS
	// address, and the forwarder sends none of its own for the alias.
	c = mustDial(t, dst.sub, "dave@example.net", "dave-password")
	dsnSend(t, c, "MAIL FROM:<dave@example.net> ENVID=fwd-dsn-1", "RCPT TO:<fwd@example.test> NOTIFY=SUCCESS",
		"From: dave@example.net\r\nTo: fwd@example.test\r\nSubject: forward-dsn\r\n\r\nhello\r\n")
	c.Quit()
	dst.waitMaildir("carol@example.net", "Subject: forward-dsn")
	notice := dst.waitMaildir("dave@example.net", "Original-Envelope-Id: fwd-dsn-1")
	for _, want := range []string{"Reporting-MTA: dns; mx.example.net\r\n",
		"Original-Recipient: rfc822;fwd@example.test\r\nFinal-Recipient: rfc822; carol@example.net\r\nAction: delivered\r\n"} {
		if !strings.Contains(notice, want) {
			t.Errorf("success notice lacks %q:\n%s", want, notice)
		}
	}
	if strings.Contains(notice, "Final-Recipient: rfc822; fwd@example.test") {
		t.Errorf("the forwarder reported the alias itself:\n%s", notice)
	}

	// A bounce to the rewritten sender, as the destination would send
	// it, goes back to dave.
	mx := dialMX(t, fwd.mx, "mx.example.net")
	defer mx.Close()
	if err := send(mx, "", rp[1], "From: MAILER-DAEMON@mx.example.net\r\nTo: "+rp[1]+"\r\nSubject: bounce-marker\r\n\r\nUndelivered Mail Returned to Sender\r\n"); err != nil {
		t.Fatalf("bounce to %s: %v", rp[1], err)
	}
	back := dst.waitMaildir("dave@example.net", "Subject: bounce-marker")
	if !strings.HasPrefix(back, "Return-Path: <>\r\n") {
		t.Errorf("the bounce reached dave with another sender:\n%s", back)
	}

	// Forged and expired SRS addresses are refused at RCPT; one made now
	// with the forwarder's secret is taken.
	secret, err := os.ReadFile(filepath.Join(fwd.data, "srs.secret"))
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) string {
		r, err := srs.New([][]byte{[]byte(strings.TrimSpace(string(secret)))}, srs.Options{MaxAge: 21 * 24 * time.Hour, Now: func() time.Time { return time.Now().Add(d) }})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := r.Forward("eve@example.net", "example.test")
		return a
	}
	for addr, want := range map[string]string{
		"SRS0=AAAA" + rp[1][9:]:                      `550 "5.1.1`,
		strings.Replace(rp[1], "=dave@", "=eve@", 1): `550 "5.1.1`,
		at(-30 * 24 * time.Hour):                     `550 "5.1.1`,
		at(0):                                        "",
	} {
		if err := mx.Reset(); err != nil {
			t.Fatal(err)
		}
		if err := mx.Mail(""); err != nil {
			t.Fatal(err)
		}
		wantRcpt(t, mx, addr, want)
	}
}
