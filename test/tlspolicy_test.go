package test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/testcert"
)

// These tests drive issue 12 §7 ("Outbound TLS policy can be skipped")
// through the real binary: its only resolver is a DNS server on loopback
// (the AD bit only on the names of zones meant to be signed), the MX is a
// real Postfix presenting the certificate the test chooses (or Postfix's
// smtp-sink, which offers no STARTTLS), and MTA-STS policies come from an
// HTTPS server on port 443 of a loopback address that only that DNS
// server knows. Each uses its own 127.0.12.x addresses.

// stsHTTPS serves MTA-STS policies (body by domain) over HTTPS on ip:443
// with a certificate from ca for each mta-sts.DOMAIN, and returns how
// many fetches each policy host got so far.
func stsHTTPS(t *testing.T, ip string, ca *testcert.CA, policies map[string]string) func(domain string) int {
	t.Helper()
	var mu sync.Mutex
	hits := map[string]int{}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host := strings.ToLower(r.Host)
			mu.Lock()
			hits[host]++
			mu.Unlock()
			body, ok := policies[strings.TrimPrefix(host, "mta-sts.")]
			if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, body)
		}),
		TLSConfig: &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := ca.Issue(testcert.Spec{DNSNames: []string{hello.ServerName}})
			return &c, nil
		}},
	}
	ln, err := net.Listen("tcp", ip+":443")
	if err != nil {
		t.Fatalf("MTA-STS server on %s:443 (needs root): %v", ip, err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return func(domain string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits["mta-sts."+domain]
	}
}

// stsPolicy is an MTA-STS policy file in mode for the mx patterns.
func stsPolicy(mode string, mx ...string) string {
	s := "version: STSv1\nmode: " + mode + "\n"
	for _, m := range mx {
		s += "mx: " + m + "\n"
	}
	return s + "max_age: 86400\n"
}

// tlsaOf is a DANE-EE(3) SPKI(1) SHA-256(1) TLSA record for cert.
func tlsaOf(cert tls.Certificate) dnstest.RR {
	sum := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	return dnstest.TLSA(3, 1, 1, hex.EncodeToString(sum[:]))
}

// trustCA makes serve trust ca, and only ca, for outbound WebPKI checks
// (SSL_CERT_FILE: the way that works without configuration).
func trustCA(t *testing.T, s *server, ca *testcert.CA) {
	file := filepath.Join(t.TempDir(), "ca.pem")
	ca.WriteFile(t, file)
	s.env = append(s.env, "SSL_CERT_FILE="+file)
}

// submit sends one message from dora@example.test to rcpt through the
// submission listener, with the extra header lines and Subject marker.
func (s *server) submit(rcpt, marker string, header ...string) {
	s.t.Helper()
	c := mustDial(s.t, s.sub, "dora@example.test", "dora-password")
	defer c.Close()
	msg := "From: dora@example.test\r\nTo: " + rcpt + "\r\nSubject: " + marker + "\r\n"
	for _, h := range header {
		msg += h + "\r\n"
	}
	if err := send(c, "dora@example.test", rcpt, msg+"\r\nbody\r\n"); err != nil {
		s.t.Fatalf("submit to %s: %v", rcpt, err)
	}
	c.Quit()
}

// waitDeferred waits until the delivery to rcpt is deferred and returns
// `postern queue show` of its message. It fails the test at once when
// arrived reports the message arrived anyway.
func (s *server) waitDeferred(rcpt string, arrived func() bool) string {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if arrived() {
			s.t.Fatalf("the message to %s was delivered; it must be deferred\npostern log:\n%s", rcpt, s.stderr.String())
		}
		out, err := s.run("", "queue", "list")
		if err != nil {
			s.t.Fatalf("queue list: %v\n%s", err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, rcpt) && strings.Contains(line, "deferred") {
				show, err := s.run("", "queue", "show", strings.Fields(line)[0])
				if err != nil {
					s.t.Fatalf("queue show: %v\n%s", err, show)
				}
				return show
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("delivery to %s neither deferred nor done after 15s\npostern log:\n%s", rcpt, s.stderr.String())
	return ""
}

// has reports whether Postfix's Maildir holds a message containing marker.
func (p *postfixMX) has(marker string) bool {
	return fileWith(filepath.Join(p.maildir, "new", "*"), marker) != ""
}

// daneShared gives dane.example the MX mx.shared.example, at ip, with a
// TLSA record that pins cert: all three names authentic (a signed zone),
// as DANE wants.
func daneShared(s *server, ip string, cert tls.Certificate) {
	s.dns.Set("dane.example", dnstest.MX(10, "mx.shared.example"))
	s.dns.Set("mx.shared.example", dnstest.A(ip))
	s.dns.Set("_25._tcp.mx.shared.example", tlsaOf(cert))
	s.dns.Authentic("dane.example", "mx.shared.example", "_25._tcp.mx.shared.example")
}

// startWith starts a server with extra configuration and the user dora.
func startWith(t *testing.T, extra string, setup func(s *server)) *server {
	t.Helper()
	s := testConfig(t, t.TempDir(), extra)
	if setup != nil {
		setup(s)
	}
	s.start()
	s.addUser("dora@example.test", "dora-password")
	return s
}

// TestPooledSessionDANEThenVerify: a session that DANE verified (the
// TLSA record pins Postfix's self-signed certificate) stays in the pool;
// mail for a domain whose tls_minimum is "verify" (a WebPKI certificate
// for the MX name) must not go over it, but be deferred as on a fresh
// connection.
func TestPooledSessionDANEThenVerify(t *testing.T) {
	integration(t)
	const ip = "127.0.12.1"
	cert, _ := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"mx.shared.example"}})
	pf := startPostfixTLS(t, ip, &cert, "dane.example", "verify.example")
	s := startWith(t, "\n[delivery]\ntls_minimum = { \"verify.example\" = \"verify\" }\n", func(s *server) {
		s.dns.Set("verify.example", dnstest.MX(10, "mx.shared.example"))
		daneShared(s, ip, cert)
	})
	s.submit("a@dane.example", "dane-first")
	pf.waitMessage("Subject: dane-first")
	s.wantPooledRefused(pf, "b@verify.example", "certificate not trusted")
}

// wantPooledRefused submits a message to rcpt while a session to pf
// waits in the pool, and checks that the session was refused for it and
// the message deferred with a reason containing why.
func (s *server) wantPooledRefused(pf *postfixMX, rcpt, why string) {
	s.t.Helper()
	marker := "second-to-" + rcpt
	s.submit(rcpt, marker)
	show := s.waitDeferred(rcpt, func() bool { return pf.has("Subject: " + marker) })
	if !strings.Contains(show, why) {
		s.t.Errorf("the deferral does not say %q:\n%s", why, show)
	}
	if !strings.Contains(s.stderr.String(), "pooled session does not meet") {
		s.t.Errorf("the pooled session was not considered and refused\npostern log:\n%s", s.stderr.String())
	}
}

// TestPooledSessionMTASTSThenDANE: a session opened for an MTA-STS
// domain (a WebPKI certificate for the MX name, from a CA the server
// trusts) stays in the pool; mail for a DANE domain whose TLSA record
// does not match that certificate must not go over it.
func TestPooledSessionMTASTSThenDANE(t *testing.T) {
	integration(t)
	const ip, stsIP = "127.0.12.2", "127.0.12.3"
	ca := testcert.NewCA()
	cert := ca.Issue(testcert.Spec{DNSNames: []string{"mx.shared.example"}})
	other, _ := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"mx.shared.example"}})
	pf := startPostfixTLS(t, ip, &cert, "sts.example", "dane.example")
	fetches := stsHTTPS(t, stsIP, ca, map[string]string{"sts.example": stsPolicy("enforce", "mx.shared.example")})
	s := startWith(t, "", func(s *server) {
		trustCA(t, s, ca)
		s.dns.Set("sts.example", dnstest.MX(10, "mx.shared.example"))
		s.dns.Set("_mta-sts.sts.example", dnstest.TXT("v=STSv1; id=1;"))
		s.dns.Set("mta-sts.sts.example", dnstest.A(stsIP))
		daneShared(s, ip, other)
	})
	s.submit("a@sts.example", "sts-first")
	pf.waitMessage("Subject: sts-first")
	if fetches("sts.example") == 0 {
		t.Fatalf("the MTA-STS policy was never fetched\npostern log:\n%s", s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "tls_mode=mta-sts") {
		t.Errorf("the first delivery was not verified by MTA-STS\npostern log:\n%s", s.stderr.String())
	}
	s.wantPooledRefused(pf, "b@dane.example", "no TLSA record")
}

// TestTLSRequiredNoKeepsMinimum: "TLS-Required: No" waives the
// recipient's policy, never the operator's tls_minimum: with "verify" for
// the domain and an MX without STARTTLS (smtp-sink), a message with the
// header is deferred, not sent in plaintext.
func TestTLSRequiredNoKeepsMinimum(t *testing.T) {
	integration(t)
	const ip = "127.0.12.4"
	dir := sink(t, ip)
	s := startWith(t, "\n[delivery]\ntls_minimum = { \"plain.example\" = \"verify\" }\n", func(s *server) {
		s.mxAt("plain.example", ip)
	})
	s.submit("a@plain.example", "tls-required-no", "TLS-Required: No")
	show := s.waitDeferred("a@plain.example", func() bool { return sinkHas(dir, "tls-required-no") })
	if !strings.Contains(show, "requires STARTTLS") {
		t.Errorf("the deferral does not say STARTTLS is required:\n%s", show)
	}
}

// stsDomain sets up sts.example: its MX mx.sts.example is a Postfix on
// ip with a self-signed certificate, its MTA-STS policy (in mode, listing
// that MX) is served from stsIP:443, a name only the server's DNS knows,
// with a certificate from a CA the server trusts. It returns Postfix, the
// started server and the policy fetch counter.
func stsDomain(t *testing.T, ip, stsIP, mode string) (*postfixMX, *server, func(string) int) {
	t.Helper()
	ca := testcert.NewCA()
	pf := startPostfixTLS(t, ip, nil, "sts.example")
	fetches := stsHTTPS(t, stsIP, ca, map[string]string{"sts.example": stsPolicy(mode, "mx.sts.example")})
	s := startWith(t, "", func(s *server) {
		trustCA(t, s, ca)
		s.mxAt("sts.example", ip)
		s.dns.Set("_mta-sts.sts.example", dnstest.TXT("v=STSv1; id=1;"))
		s.dns.Set("mta-sts.sts.example", dnstest.A(stsIP))
	})
	return pf, s, fetches
}

// TestMTASTSPolicyHostResolvedByConfiguredDNS: the policy host
// mta-sts.DOMAIN is known only to the configured [dns] resolver. The
// enforce policy must be fetched through it and applied: Postfix's
// self-signed certificate is refused and the mail deferred.
func TestMTASTSPolicyHostResolvedByConfiguredDNS(t *testing.T) {
	integration(t)
	pf, s, fetches := stsDomain(t, "127.0.12.5", "127.0.12.6", "enforce")
	s.submit("a@sts.example", "sts-enforce")
	show := s.waitDeferred("a@sts.example", func() bool { return pf.has("Subject: sts-enforce") })
	if fetches("sts.example") == 0 {
		t.Errorf("the MTA-STS policy was never fetched")
	}
	if !strings.Contains(show, "certificate not trusted") {
		t.Errorf("the deferral does not say the certificate is not trusted:\n%s", show)
	}
}

// TestMTASTSTestingModeReports: under a policy in testing mode the mail
// goes to an MX with a self-signed certificate, and what enforce mode
// would have refused is logged at WARN and counted in a metric.
func TestMTASTSTestingModeReports(t *testing.T) {
	integration(t)
	pf, s, fetches := stsDomain(t, "127.0.12.7", "127.0.12.8", "testing")
	s.submit("a@sts.example", "sts-testing")
	pf.waitMessage("Subject: sts-testing")
	if fetches("sts.example") == 0 {
		t.Errorf("the MTA-STS policy was never fetched")
	}
	var warn string
	for _, l := range strings.Split(s.stderr.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "MTA-STS testing") {
			warn = l
		}
	}
	if !strings.Contains(warn, "reason=certificate") || !strings.Contains(warn, "sts.example") {
		t.Errorf("no WARN naming the certificate failure and the domain:\n%s", s.stderr.String())
	}
	if want := `postern_policy_mtasts_testing_failures_total{reason="certificate"} 1`; !strings.Contains(metricsPage(t, s.http), want) {
		t.Errorf("metrics lack %s", want)
	}
}

// TestOutboundCAFile: delivery.ca_file and smarthost.ca_file make
// outbound delivery trust a private CA, as an operator sets it instead
// of SSL_CERT_FILE; without either, a "verify" domain on that CA is
// deferred.
func TestOutboundCAFile(t *testing.T) {
	integration(t)
	const ip = "127.0.12.9"
	ca := testcert.NewCA()
	cert := ca.Issue(testcert.Spec{DNSNames: []string{"mx.private.example"}, IPAddresses: []net.IP{net.ParseIP(ip)}})
	pf := startPostfixTLS(t, ip, &cert, "private.example")
	caFile := filepath.Join(t.TempDir(), "private-ca.pem")
	ca.WriteFile(t, caFile)
	for i, c := range []struct{ name, extra string }{
		{"none", "\n[delivery]\ntls_minimum = { \"private.example\" = \"verify\" }\n"},
		{"delivery", fmt.Sprintf("\n[delivery]\nca_file = %q\ntls_minimum = { \"private.example\" = \"verify\" }\n", caFile)},
		{"smarthost", fmt.Sprintf("\n[smarthost]\naddress = \"%s:25\"\nca_file = %q\n", ip, caFile)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startWith(t, c.extra, func(s *server) {
				s.mxAt("private.example", ip)
			})
			marker := fmt.Sprintf("private-ca-%d", i)
			s.submit("a@private.example", marker)
			if c.name == "none" {
				show := s.waitDeferred("a@private.example", func() bool { return pf.has("Subject: " + marker) })
				if !strings.Contains(show, "certificate not trusted") {
					t.Errorf("the deferral does not say the certificate is not trusted:\n%s", show)
				}
				return
			}
			pf.waitMessage("Subject: " + marker)
		})
	}
}
