package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pebbleVersion is the Pebble the tests build and run.
const pebbleVersion = "v2.10.3"

// pebble is a running Pebble ACME server (a real CA for tests).
type pebble struct {
	dirURL  string       // the directory, https://127.0.0.1:PORT/dir
	client  *http.Client // trusts Pebble's HTTPS certificate
	roots   *x509.CertPool
	rootPEM []byte // the issuing root, from the management port
}

// pebbleOptions choose how Pebble validates.
type pebbleOptions struct {
	alwaysValid bool   // PEBBLE_VA_ALWAYS_VALID: no challenge is checked
	httpPort    int    // where Pebble checks HTTP-01
	tlsPort     int    // where Pebble checks TLS-ALPN-01
	dnsServer   string // the resolver Pebble asks (-dnsserver)
}

// pebbleBinary returns the Pebble binary in <repo>/.tools, building it
// when missing. The test is skipped when Go cannot build it, unless
// POSTERN_INTEGRATION=1.
func pebbleBinary(t *testing.T) (bin, moduleDir string) {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("POSTERN_INTEGRATION") == "1" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tools := filepath.Join(root, ".tools")
	bin = filepath.Join(tools, "pebble")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("go", "install", "github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+tools)
		if out, err := cmd.CombinedOutput(); err != nil {
			skip("cannot build Pebble: %v\n%s", err, out)
		}
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		skip("go env GOMODCACHE: %v", err)
	}
	moduleDir = filepath.Join(strings.TrimSpace(string(out)), "github.com/letsencrypt/pebble/v2@"+pebbleVersion)
	if _, err := os.Stat(filepath.Join(moduleDir, "test/certs/pebble.minica.pem")); err != nil {
		// The binary is there but the module is not (a cleaned cache):
		// download it for its test certificates.
		cmd := exec.Command("go", "mod", "download", "github.com/letsencrypt/pebble/v2@"+pebbleVersion)
		cmd.Dir = os.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			skip("cannot download Pebble's module: %v\n%s", err, out)
		}
	}
	return bin, moduleDir
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPebble runs Pebble on free loopback ports until the test ends.
func startPebble(t *testing.T, o pebbleOptions) *pebble {
	t.Helper()
	bin, mod := pebbleBinary(t)
	port, mport := freePort(t), freePort(t)
	if o.httpPort == 0 {
		o.httpPort = freePort(t)
	}
	if o.tlsPort == 0 {
		o.tlsPort = freePort(t)
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", port),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mport),
		"certificate":                    filepath.Join(mod, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(mod, "test/certs/localhost/key.pem"),
		"httpPort":                       o.httpPort,
		"tlsPort":                        o.tlsPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"domainBlocklist":                []string{"blocked-domain.example"},
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		"profiles": map[string]any{"default": map[string]any{
			"description": "90 days", "validityPeriod": 7776000,
		}},
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-config", cfgFile}
	if o.dnsServer != "" {
		args = append(args, "-dnsserver", o.dnsServer)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	if o.alwaysValid {
		cmd.Env = append(cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
	}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start Pebble: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("Pebble's log:\n%s", logs.String())
		}
	})

	minica, err := os.ReadFile(filepath.Join(mod, "test/certs/pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(minica)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	p := &pebble{dirURL: fmt.Sprintf("https://127.0.0.1:%d/dir", port), client: client}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.dirURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pebble did not start: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mport))
	if err != nil {
		t.Fatalf("Pebble roots: %v", err)
	}
	defer resp.Body.Close()
	p.rootPEM, _ = io.ReadAll(resp.Body)
	p.roots = x509.NewCertPool()
	if !p.roots.AppendCertsFromPEM(p.rootPEM) {
		t.Fatalf("Pebble roots: no certificate in %q", p.rootPEM)
	}
	return p
}

// verify checks that chain (leaf first) chains to Pebble's root for host.
func (p *pebble) verify(t *testing.T, chain [][]byte, host string) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, d := range chain[1:] {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: p.roots, Intermediates: inter}); err != nil {
		t.Fatalf("certificate does not verify against Pebble's root: %v", err)
	}
	return leaf
}

// testContext returns a context that ends with the test or after a minute.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
