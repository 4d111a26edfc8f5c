package test

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/pkcs11/pkcs11test"
	"postern/internal/testcert"
)

// publicOnly stands for a key in a token when a certificate is issued
// for it: only its public key is needed.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }
func (p publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("publicOnly cannot sign")
}

// hsm is a server whose keys are in a SoftHSM2 token.
type hsm struct {
	*server
	h      *pkcs11test.HSM
	caFile string
	dkim   crypto.PublicKey
}

// hsmServer returns a configured server (not started) whose certificate
// keys are in a SoftHSM2 token made for the test: ECDSA P-256
// (cert_file, key_file) and RSA 2048 ([[tls.certificate]]), both
// certificates issued by a test root in tls.ca_file; and which DKIM-signs
// mail from example.test with an RSA key in the token, whose record the
// test DNS server publishes. The binary finds the token through
// SOFTHSM2_CONF, which it inherits.
func hsmServer(t *testing.T) *hsm {
	t.Helper()
	h := pkcs11test.New(t, "T")
	ec := h.GenerateKey("ec", "01", "EC:prime256v1")
	rsaKey := h.GenerateKey("rsa", "02", "rsa:2048")
	dkim := h.GenerateKey("dkim", "03", "rsa:2048")
	dir := t.TempDir()
	ca := newTestCA(t, filepath.Join(dir, "ca.pem"))
	for name, pub := range map[string]crypto.PublicKey{"ec": ec, "rsa": rsaKey} {
		c := ca.IssueKey(testcert.Spec{DNSNames: []string{"localhost"}}, publicOnly{pub})
		if err := os.WriteFile(filepath.Join(dir, name+".pem"), testcert.ChainPEM(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := testConfig(t, dir, fmt.Sprintf(`
[pkcs11]
module = %q
pin_file = %q

[mail_auth]
sign = true
[[mail_auth.dkim_key]]
domain = "example.test"
selector = "hsm"
key_file = %q
`, pkcs11test.Module, h.PINFile, h.URI("dkim")))
	cfg, _ := os.ReadFile(s.config)
	cfg = []byte(strings.Replace(string(cfg), "self_signed = true", fmt.Sprintf(
		"cert_file = \"ec.pem\"\nkey_file = %q\nca_file = \"ca.pem\"\n\n[[tls.certificate]]\ncert_file = \"rsa.pem\"\nkey_file = %q",
		h.URI("ec"), h.URI("rsa")), 1))
	if err := os.WriteFile(s.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(dkim)
	if err != nil {
		t.Fatal(err)
	}
	s.dns.Set("hsm._domainkey.example.test", dnstest.TXT("v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der)))
	return &hsm{server: s, h: h, caFile: filepath.Join(dir, "ca.pem"), dkim: dkim}
}

// sClient runs openssl s_client against addr (with STARTTLS when
// starttls), verifying the chain against caFile and the name localhost,
// and returns its output; extra are more options (protocol, ciphers,
// signature algorithms).
func sClient(t *testing.T, addr string, starttls bool, caFile string, extra ...string) (string, error) {
	t.Helper()
	openssl := needTool(t, "openssl")
	args := []string{"s_client", "-connect", addr, "-CAfile", caFile, "-verify_hostname", "localhost", "-verify_return_error", "-brief"}
	if starttls {
		args = append(args, "-starttls", "smtp")
	}
	cmd := exec.Command(openssl, append(args, extra...)...)
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// handshakes checks, with openssl s_client, a verified TLS handshake on
// 587 (STARTTLS) and 465 with each key of the token: ECDSA with TLS 1.3,
// RSA-PSS with TLS 1.3, RSA PKCS #1 v1.5 with TLS 1.2.
func (s *hsm) handshakes(t *testing.T) {
	t.Helper()
	for _, port := range []struct {
		name     string
		addr     string
		starttls bool
	}{{"587", s.sub, true}, {"465", s.subs, false}} {
		for _, c := range []struct {
			name, sigType string
			extra         []string
		}{
			{"ECDSA, TLS 1.3", "ECDSA", []string{"-tls1_3"}},
			{"RSA-PSS, TLS 1.3", "RSA-PSS", []string{"-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"}},
			{"RSA PKCS #1 v1.5, TLS 1.2", "RSA", []string{"-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-sigalgs", "RSA+SHA256"}},
		} {
			out, err := sClient(t, port.addr, port.starttls, s.caFile, c.extra...)
			if err != nil || !strings.Contains(out, "Verification: OK") || !strings.Contains(out, "\nSignature type: "+c.sigType+"\n") {
				t.Errorf("%s, %s: %v\n%s", port.name, c.name, err, out)
			}
		}
	}
}

// metric returns the line of the server's /metrics page that starts
// with prefix, "" when there is none.
func (s *hsm) metric(t *testing.T, prefix string) string { return metricLine(t, s.http, prefix) }

// submitSigned submits a message from gina@example.test over 465 with
// swaks and returns swaks's output and error.
func (s *hsm) submitSigned(t *testing.T, marker string) (string, error) {
	t.Helper()
	swaks := needTool(t, "swaks")
	out, err := exec.Command(swaks, "--server", s.subs, "--tls-on-connect", "--auth", "PLAIN",
		"--auth-user", "gina@example.test", "--auth-password", "gina-password",
		"--from", "gina@example.test", "--to", "gina@example.test",
		"--header", "From: gina@example.test", "--header", "Subject: "+marker, "--body", "signed in the token\n").CombinedOutput()
	return string(out), err
}

// dkimVerifies has dkimpy verify the message in the mailbox that holds
// marker, against the test DNS server, and returns its verdict.
func (s *hsm) dkimVerifies(t *testing.T, marker string) string {
	t.Helper()
	msg := s.waitMaildir("gina@example.test", marker)
	if !strings.Contains(msg, "s=hsm") {
		t.Errorf("no signature with selector hsm:\n%s", msg)
	}
	f := filepath.Join(t.TempDir(), "msg.eml")
	os.WriteFile(f, []byte(msg), 0o600)
	out, err := exec.Command("/usr/bin/python3", "../internal/mailauth/testdata/dkimpy_verify.py", s.dns.Addr(), f).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPKCS11 serves TLS on 587 and 465 and signs DKIM with keys in a
// real SoftHSM2 token, through the real binary; `postern check` reports
// the token and the keys; reload and graceful restart keep them; and a
// token that stops answering fails handshakes (logged, counted) without
// taking the server down, and serves again after `postern reload` once
// it is back.
func TestPKCS11(t *testing.T) {
	integration(t)
	if _, err := os.Stat("/usr/bin/python3"); err != nil || exec.Command("/usr/bin/python3", "-c", "import dkim").Run() != nil {
		needTool(t, "dkimverify") // python3-dkim
	}
	s := hsmServer(t)
	s.start()
	s.addUser("gina@example.test", "gina-password")

	t.Run("check reports the token and its keys", func(t *testing.T) {
		out, _ := s.run("", "check")
		for _, want := range []string{
			`OK   pkcs11: certificate ` + filepath.Join(filepath.Dir(s.config), "ec.pem") + `: pkcs11:token=T;object=ec;type=private: ECDSA P-256 key (label "ec", id 01) in token "T" (SoftHSM project SoftHSM v2, serial `,
			`pkcs11:token=T;object=rsa;type=private: RSA 2048 key (label "rsa", id 02)`,
			`OK   pkcs11: mail_auth.dkim_key[0] (example.test, selector hsm): pkcs11:token=T;object=dkim;type=private: RSA 2048 key`,
			"; a test signature verifies",
			"certificate localhost: " + filepath.Join(filepath.Dir(s.config), "ec.pem") + ": localhost, valid until",
			"OK   dkim example.test: selector hsm (rsa-sha256) published",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("check output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "FAIL pkcs11") || strings.Contains(out, "FAIL certificate") {
			t.Errorf("check fails a key or certificate:\n%s", out)
		}
	})
	t.Run("TLS on 587 and 465", func(t *testing.T) { s.handshakes(t) })
	t.Run("DKIM signature verified by dkimpy", func(t *testing.T) {
		if out, err := s.submitSigned(t, "hsm-dkim-1"); err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		if v := s.dkimVerifies(t, "hsm-dkim-1"); v != "ok" {
			t.Errorf("dkimpy: %q, want ok", v)
		}
	})
	t.Run("reload", func(t *testing.T) {
		if out, err := s.run("", "reload"); err != nil {
			t.Fatalf("postern reload: %v\n%s", err, out)
		}
		s.handshakes(t)
	})

	t.Run("a token that stops answering", func(t *testing.T) {
		okBefore := s.metric(t, `postern_pkcs11_operations_total{key="pkcs11:token=T;object=ec;type=private",result="ok"}`)
		if okBefore == "" {
			t.Errorf("no successful signature counted for the ECDSA key")
		}
		s.h.Unplug()
		out, err := sClient(t, s.subs, false, s.caFile, "-tls1_3")
		if err == nil || strings.Contains(out, "Verification: OK") {
			t.Errorf("handshake with the token gone: %v\n%s", err, out)
		}
		if out, err := s.submitSigned(t, "hsm-dkim-down"); err == nil {
			t.Errorf("message accepted unsigned with the token gone:\n%s", out)
		}
		if !s.running() {
			t.Fatal("postern exited")
		}
		if resp, err := http.Get("http://" + s.http + "/healthz"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v", err)
		}
		waitLogFor(t, s.server, "PKCS#11 key operation failed", 5*time.Second)
		if m := s.metric(t, `postern_pkcs11_operations_total{key="pkcs11:token=T;object=ec;type=private",result="error"}`); m == "" {
			t.Errorf("no failed signature counted in /metrics")
		}
		if m := s.metric(t, `postern_tls_handshakes_total{listener="submissions",result="error",version="unknown"}`); m == "" {
			t.Errorf("no failed handshake counted in /metrics")
		}

		s.h.Plug()
		if out, err := s.run("", "reload"); err != nil {
			t.Fatalf("postern reload with the token back: %v\n%s", err, out)
		}
		s.handshakes(t)
		// The DKIM key, loaded at start, finds itself in the reopened
		// token.
		if out, err := s.submitSigned(t, "hsm-dkim-2"); err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		if v := s.dkimVerifies(t, "hsm-dkim-2"); v != "ok" {
			t.Errorf("dkimpy after the token came back: %q, want ok", v)
		}
	})

	t.Run("graceful restart", func(t *testing.T) {
		restarted(t, s.server)
		waitUntil(t, 15*time.Second, "the old process did not exit", func() bool { return !pidAlive(s.cmd.Process.Pid) })
		s.handshakes(t)
		if out, err := s.submitSigned(t, "hsm-dkim-3"); err != nil {
			t.Fatalf("swaks after the restart: %v\n%s", err, out)
		}
		if v := s.dkimVerifies(t, "hsm-dkim-3"); v != "ok" {
			t.Errorf("dkimpy after the restart: %q, want ok", v)
		}
	})
}

// TestPKCS11Mistakes checks that `postern check` and `postern serve`
// name the fix for a wrong PIN, a wrong token, a missing key and a
// certificate that is not the token key's.
func TestPKCS11Mistakes(t *testing.T) {
	integration(t)
	s := hsmServer(t)
	wrongPIN := filepath.Join(t.TempDir(), "wrong-pin")
	os.WriteFile(wrongPIN, []byte("0000\n"), 0o600)
	cfg, _ := os.ReadFile(s.config)
	for _, c := range []struct {
		name, old, new string
		want           []string
	}{
		{"wrong PIN", s.h.PINFile, wrongPIN, []string{
			`FAIL pkcs11: certificate `, `pkcs11:token=T;object=ec;type=private: the token "T" (SoftHSM project SoftHSM v2`,
			"refused the PIN", "fix: put the token's user PIN on the first line of the PIN file"}},
		{"wrong token", `token=T;object=ec;`, `token=Other;object=ec;`, []string{
			`FAIL pkcs11: certificate `, `pkcs11:token=Other;object=ec;type=private: no token labelled "Other" on module /usr/lib/softhsm/libsofthsm2.so, which has these tokens: "T" (SoftHSM project SoftHSM v2`,
			"fix: correct token= (or serial=, slot-id=) in the URI"}},
		{"missing key", `object=ec;`, `object=nokey;`, []string{
			`FAIL pkcs11: certificate `, `pkcs11:token=T;object=nokey;type=private: no such key in token "T"`,
			"which holds the key pairs object=dkim;id=%03 (RSA 2048), object=ec;id=%01 (ECDSA P-256), object=rsa;id=%02 (RSA 2048)",
			"fix: correct object= or id= in the URI"}},
		{"certificate of another key", `object=ec;`, `object=dkim;`, []string{
			`FAIL certificate localhost: `, "the key pkcs11:token=T;object=dkim;type=private in the token does not belong to this certificate",
			"fix: name the token's key this certificate was issued for"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := os.WriteFile(s.config, []byte(strings.Replace(string(cfg), c.old, c.new, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := s.run("", "check")
			if err == nil {
				t.Errorf("check passes")
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("check output lacks %q:\n%s", w, out)
				}
			}
			serve := exec.Command(binPath, "serve", "--config", s.config)
			b, err := serve.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).ExitStatus() == 0 {
				t.Fatalf("serve: %v\n%s", err, b)
			}
			// serve stops with the same diagnosis (the fix line of check
			// is "fix: ...", serve's "(fix: ...)").
			for _, w := range c.want[1:] {
				w = strings.TrimPrefix(w, "fix: ")
				if !strings.Contains(string(b), w) {
					t.Errorf("serve output lacks %q:\n%s", w, b)
				}
			}
		})
	}
}

// TestPKCS11WithoutCgo builds Postern as the static image is built
// (CGO_ENABLED=0): the whole module compiles, and a configuration with
// a key in a token is refused clearly by check and by serve.
func TestPKCS11WithoutCgo(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "postern-static")
	for _, args := range [][]string{{"build", "./..."}, {"build", "-o", bin, "./cmd/postern"}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=0 go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if err := checkStatic(bin); err != nil {
		t.Fatalf("not a static binary: %v", err)
	}
	ca := newTestCA(t, filepath.Join(dir, "ca.pem"))
	c := ca.Issue(testcert.Spec{DNSNames: []string{"localhost"}})
	os.WriteFile(filepath.Join(dir, "cert.pem"), testcert.ChainPEM(c), 0o644)
	s := testConfig(t, dir, "\n[pkcs11]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\npin_file = \"pin\"\n")
	cfg, _ := os.ReadFile(s.config)
	os.WriteFile(s.config, []byte(strings.Replace(string(cfg), "self_signed = true",
		"cert_file = \"cert.pem\"\nkey_file = \"pkcs11:token=T;object=tlskey;type=private\"\nca_file = \"ca.pem\"", 1)), 0o600)
	const msg = "pkcs11:token=T;object=tlskey;type=private: PKCS#11 keys are not supported in this build of Postern (built without cgo, as the static image is)"
	const fix = "run a build with cgo"
	out, err := exec.Command(bin, "check", "--config", s.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAIL pkcs11: certificate ") || !strings.Contains(string(out), msg) ||
		!strings.Contains(string(out), "fix: "+fix) {
		t.Errorf("check: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "serve", "--config", s.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), msg) || !strings.Contains(string(out), "(fix: "+fix) {
		t.Errorf("serve: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "--allow-broken-chain") {
		t.Errorf("serve suggests --allow-broken-chain, which does not help here:\n%s", out)
	}
}
