package test

import (
	"bufio"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"postern/internal/testcert"
	"postern/internal/testkit"
)

// writeRSACert writes a fresh RSA certificate for localhost issued by ca.
func writeRSACert(t *testing.T, ca *testcert.CA, certFile, keyFile string) *big.Int {
	t.Helper()
	c := ca.Issue(testcert.Spec{DNSNames: []string{"localhost"}, RSA: true})
	testcert.WriteFiles(t, c, certFile, keyFile)
	return c.Leaf.SerialNumber
}

// tlsServer returns a configured server (not started) that serves an
// ECDSA certificate (cert_file) and an RSA one ([[tls.certificate]]),
// both issued by a test root in tls.ca_file, with tls_tickets = false on
// the submissions listener.
func tlsServer(t *testing.T) (s *server, ca *testcert.CA, ecFile, ecKey string) {
	dir := t.TempDir()
	ca = newTestCA(t, filepath.Join(dir, "ca.pem"))
	certs := filepath.Join(dir, "certs")
	os.Mkdir(certs, 0o700)
	ecFile, ecKey = filepath.Join(certs, "ec.pem"), filepath.Join(certs, "ec.key")
	writeCertBy(t, ca, ecFile, ecKey)
	writeRSACert(t, ca, filepath.Join(certs, "rsa.pem"), filepath.Join(certs, "rsa.key"))
	s = testConfig(t, dir, "")
	cfg, _ := os.ReadFile(s.config)
	cfg = []byte(strings.Replace(string(cfg), "self_signed = true", fmt.Sprintf(
		"cert_file = %q\nkey_file = %q\nca_file = %q\n\n[[tls.certificate]]\ncert_file = %q\nkey_file = %q",
		ecFile, ecKey, filepath.Join(dir, "ca.pem"), filepath.Join(certs, "rsa.pem"), filepath.Join(certs, "rsa.key")), 1))
	cfg = []byte(strings.Replace(string(cfg), "role = \"submissions\"\n", "role = \"submissions\"\ntls_tickets = false\n", 1))
	if err := os.WriteFile(s.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	return s, ca, ecFile, ecKey
}

// TestTLSCertificates checks, against the real binary, that both
// certificates are served by key type, that a file replaced by rename is
// served without a signal, and that tickets are off where configured.
func TestTLSCertificates(t *testing.T) {
	integration(t)
	s, ca, ecFile, ecKey := tlsServer(t)
	s.start()
	serial := func(cfg *tls.Config) *big.Int {
		c, err := tls.Dial("tcp", s.subs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber
	}
	ecSerial := serial(clientTLS())
	rsaOnly := clientTLS()
	rsaOnly.MaxVersion = tls.VersionTLS12
	rsaOnly.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	c, err := tls.Dial("tcp", s.subs, rsaOnly)
	if err != nil {
		t.Fatalf("RSA-only client: %v", err)
	}
	if _, ok := c.ConnectionState().PeerCertificates[0].PublicKey.(*rsa.PublicKey); !ok {
		t.Error("RSA-only client did not get the RSA certificate")
	}
	c.Close()

	// Replace the ECDSA files (by rename): no SIGHUP.
	next := writeCertBy(t, ca, ecFile, ecKey)
	deadline := time.Now().Add(10 * time.Second)
	for got := serial(clientTLS()); got.Cmp(next) != 0; got = serial(clientTLS()) {
		if time.Now().After(deadline) {
			t.Fatalf("still serving %x (first %x), want %x after the files changed", got, ecSerial, next)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The new certificate is served a moment before its event is logged.
	waitLogFor(t, s, "certificate files changed: certificate loaded", 5*time.Second)

	// Session tickets: resumed on submission (STARTTLS), never on
	// submissions (tls_tickets = false).
	cli := clientTLS()
	cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	if starttlsResumed(t, s.sub, cli) {
		t.Error("first STARTTLS session resumed")
	}
	if !starttlsResumed(t, s.sub, cli) {
		t.Error("second STARTTLS session not resumed: no session tickets on submission")
	}
	cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		c, err := tls.Dial("tcp", s.subs, cli)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		bufio.NewReader(c).ReadString('\n') // the greeting, and any ticket
		if c.ConnectionState().DidResume {
			t.Errorf("submissions session %d resumed with tls_tickets = false", i+1)
		}
		c.Close()
	}
}

// starttlsResumed runs EHLO and STARTTLS on addr and reports whether the
// TLS session was resumed; it reads the post-TLS greeting so that the
// client takes the server's session ticket.
func starttlsResumed(t *testing.T, addr string, cli *tls.Config) bool {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	reply := func(r *bufio.Reader) string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	reply(r)
	fmt.Fprintf(c, "EHLO client.test\r\n")
	reply(r)
	fmt.Fprintf(c, "STARTTLS\r\n")
	if l := reply(r); !strings.HasPrefix(l, "220") {
		t.Fatalf("STARTTLS: %q", l)
	}
	tc := tls.Client(c, cli)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tr := bufio.NewReader(tc)
	fmt.Fprintf(tc, "EHLO client.test\r\n")
	reply(tr)
	fmt.Fprintf(tc, "QUIT\r\n")
	reply(tr)
	return tc.ConnectionState().DidResume
}

// TestTLSBrokenChain checks that a chain clients would refuse stops the
// start with a precise message, and that --allow-broken-chain starts
// anyway with an ERROR.
func TestTLSBrokenChain(t *testing.T) {
	integration(t)
	s, _, ecFile, ecKey := tlsServer(t)
	// A self-signed certificate in place of the CA-issued one.
	writeCert(t, ecFile, ecKey)
	out, err := s.run("", "serve")
	if err == nil {
		t.Fatal("serve started with a self-signed certificate in production")
	}
	for _, w := range []string{ecFile, "certificate 1 of 1", "is self-signed: no client trusts it", "fix:", "--allow-broken-chain"} {
		if !strings.Contains(out, w) {
			t.Errorf("message lacks %q:\n%s", w, out)
		}
	}
	var stderr testkit.SyncBuffer
	cmd := exec.Command(binPath, "serve", "--allow-broken-chain", "--config", s.config)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stderr.String(), "postern ready") {
		if time.Now().After(deadline) {
			t.Fatalf("not ready with --allow-broken-chain:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), `level=ERROR msg="BROKEN CERTIFICATE SERVED`) {
		t.Errorf("no loud ERROR:\n%s", stderr.String())
	}
}

// testsslFinding is one entry of testssl.sh's JSON output.
type testsslFinding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Finding  string `json:"finding"`
}

// TestTestssl runs testssl.sh against the submission (STARTTLS) and
// submissions ports: no weak protocol or cipher offered, no
// vulnerability rated above LOW. About 40 seconds a port.
func TestTestssl(t *testing.T) {
	integration(t)
	testssl := needTool(t, "testssl")
	s, _, _, _ := tlsServer(t)
	s.start()
	for _, port := range []struct {
		name string
		args []string
	}{
		{"submission", []string{"--starttls", "smtp", s.sub}},
		{"submissions", []string{s.subs}},
	} {
		t.Run(port.name, func(t *testing.T) {
			jf := filepath.Join(t.TempDir(), "testssl.json")
			args := append([]string{"--quiet", "--color", "0", "--warnings", "off", "--jsonfile", jf, "-p", "-s", "-f", "-U"}, port.args...)
			// testssl 3.0's exit status adds up its checks' internal
			// return values (nonzero with -U and an RSA certificate even
			// when every finding is OK): the JSON findings decide.
			out, runErr := exec.Command(testssl, args...).CombinedOutput()
			data, err := os.ReadFile(jf)
			if err != nil {
				t.Fatalf("testssl (%v) wrote no findings: %v\n%s", runErr, err, out)
			}
			var fs []testsslFinding
			if err := json.Unmarshal(data, &fs); err != nil {
				t.Fatal(err)
			}
			byID := map[string]testsslFinding{}
			for _, f := range fs {
				byID[f.ID] = f
				switch f.Severity {
				case "LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL":
					t.Errorf("%s: %s %s", f.ID, f.Severity, f.Finding)
				}
			}
			for _, id := range []string{"SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL",
				"cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"} {
				f, ok := byID[id]
				if !ok || !strings.HasPrefix(f.Finding, "not offered") {
					t.Errorf("%s: %q, want not offered", id, f.Finding)
				}
			}
			for _, id := range []string{"TLS1_2", "TLS1_3", "cipherlist_STRONG"} {
				if f := byID[id]; !strings.HasPrefix(f.Finding, "offered") {
					t.Errorf("%s: %q, want offered", id, f.Finding)
				}
			}
			if len(fs) < 30 {
				t.Errorf("only %d findings: did testssl run its checks?", len(fs))
			}
			t.Logf("testssl %s: %d findings, none above INFO", port.name, len(fs))
		})
	}
}

// TestTLSTicketsSharedThroughRedis starts two nodes with the same [redis]
// address: a session ticket from one resumes on the other.
func TestTLSTicketsSharedThroughRedis(t *testing.T) {
	integration(t)
	addr := testkit.RedisAddr(t)
	prefix := fmt.Sprintf("postern-test:%d:tickets:", os.Getpid())
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		rdb.Del(context.Background(), prefix+"tls:ticket-keys")
		rdb.Close()
	})
	nodes := make([]*server, 2)
	for i := range nodes {
		s, _, _, _ := tlsServer(t)
		cfg, _ := os.ReadFile(s.config)
		cfg = append(cfg, fmt.Sprintf("\n[redis]\naddress = %q\nkey_prefix = %q\n", addr, prefix)...)
		os.WriteFile(s.config, cfg, 0o600)
		s.start()
		nodes[i] = s
	}
	cli := clientTLS()
	cli.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	if starttlsResumed(t, nodes[0].sub, cli) {
		t.Fatal("first session resumed")
	}
	if !starttlsResumed(t, nodes[1].sub, cli) {
		t.Fatal("a ticket from node 1 did not resume on node 2")
	}
}
