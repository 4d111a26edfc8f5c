package test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"postern/internal/acme/acmetest"
	"postern/internal/dns/dnstest"
)

// TestACMEServe runs the real binary with [acme] and no certificate
// file against a real Pebble that validates HTTP-01 (and TLS-ALPN-01)
// for real: the server obtains a certificate, serves it on its TLS
// listener, stores it, and after a restart serves the stored one at
// once; `postern check` finds its chain good.
func TestACMEServe(t *testing.T) {
	integration(t)
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) { testACMEServe(t, challenge) })
	}
}

func testACMEServe(t *testing.T, challenge string) {
	dir := t.TempDir()
	s := &server{t: t, data: filepath.Join(dir, "data"), mx: freeAddr(t), sub: freeAddr(t), subs: freeAddr(t), http: freeAddr(t)}
	s.dns = dnstest.New(t, dnstest.Zone{"mail.example.com": {dnstest.A("127.0.0.1")}})
	acmeAddr := freeAddr(t)
	var port int
	fmt.Sscanf(acmeAddr[strings.LastIndexByte(acmeAddr, ':')+1:], "%d", &port)
	po := acmetest.Options{HTTPPort: port, DNSServer: s.dns.Addr()}
	addrKey := "http_address"
	if challenge == "tls-alpn-01" {
		po = acmetest.Options{TLSPort: port, DNSServer: s.dns.Addr()}
		addrKey = "tls_alpn_address"
	}
	p := acmetest.Start(t, po)
	writeACMEConfig(t, s, p, fmt.Sprintf("challenge = %q\n%s = %q\n", challenge, addrKey, acmeAddr))
	s.start()
	chain := waitACMEChain(t, s, p, 60*time.Second)
	leaf := p.Verify(t, chain, "mail.example.com").Raw
	if !strings.Contains(s.stderr.String(), "acme certificate obtained") {
		t.Errorf("no 'acme certificate obtained' event:\n%s", s.stderr.String())
	}
	for _, f := range []string{"acme/account.key", "acme/mail.example.com/cert.pem", "acme/mail.example.com/key.pem"} {
		st, err := os.Stat(filepath.Join(s.data, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, st, err)
		}
	}

	// A restart serves the stored certificate at once.
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
	s.start()
	if again := waitACMEChain(t, s, p, 2*time.Second); string(again[0]) != string(leaf) {
		t.Error("after a restart the server does not serve the stored certificate")
	}
	if !strings.Contains(s.stderr.String(), "acme certificate loaded") {
		t.Errorf("no 'acme certificate loaded' event:\n%s", s.stderr.String())
	}

	out, _ := s.run("", "check", "--json")
	var rs []struct{ Check, Status, Message string }
	// The output is the JSON array, then (other checks fail: no DNS
	// records here) the error line on stderr.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&rs); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	found := false
	for _, r := range rs {
		if r.Check == "certificate" && r.Status == "OK" && strings.Contains(r.Message, "acme/mail.example.com/cert.pem") {
			found = true
		}
	}
	if !found {
		t.Errorf("postern check does not find the ACME certificate good:\n%s", out)
	}
}

// writeACMEConfig writes s's configuration (in the directory of its data)
// for mail.example.com with [acme] against p, acme adding more keys of
// [acme] and then more tables, and the three listeners.
func writeACMEConfig(t *testing.T, s *server, p *acmetest.Pebble, acme string) (roots string) {
	t.Helper()
	dir := filepath.Dir(s.data)
	roots = filepath.Join(dir, "pebble-root.pem")
	os.WriteFile(roots, p.RootPEM, 0o600)
	s.config = filepath.Join(dir, "postern.toml")
	err := os.WriteFile(s.config, []byte(fmt.Sprintf(`hostname = "mail.example.com"
local_domains = ["example.com"]
data_dir = %q
[http]
address = %q
[dns]
servers = [%q]
timeout = "1s"
[tls]
ca_file = %q
[limits]
shutdown_timeout = "5s"
%s
[acme]
directory_url = %q
email = "postmaster@example.com"
ca_roots_file = %q
%s`, s.data, s.http, s.dns.Addr(), roots, s.listenersTOML(), p.DirectoryURL, p.MinicaFile, acme)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return roots
}

// waitACMEChain connects to the submissions listener until it presents
// a certificate that chains to Pebble's root, and returns the chain.
func waitACMEChain(t *testing.T, s *server, p *acmetest.Pebble, within time.Duration) [][]byte {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		c, err := tls.Dial("tcp", s.subs, &tls.Config{ServerName: "mail.example.com", RootCAs: p.Roots})
		if err == nil {
			var chain [][]byte
			for _, pc := range c.ConnectionState().PeerCertificates {
				chain = append(chain, pc.Raw)
			}
			c.Close()
			return chain
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no ACME certificate served within %v: %v", within, last)
	return nil
}
