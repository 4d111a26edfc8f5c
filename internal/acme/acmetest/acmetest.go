// Package acmetest runs Pebble, Let's Encrypt's ACME test server, for
// tests: a real CA on loopback ports of its own, so that tests of ACME
// clients can run in parallel. The Pebble binary is built into
// <repo>/.tools on first use (scripts/test builds it beforehand).
package acmetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
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

// PebbleVersion is the Pebble the tests build and run.
const PebbleVersion = "v2.10.3"

// Pebble is a running Pebble ACME server (a real CA for tests).
type Pebble struct {
	// DirectoryURL is the ACME directory, https://127.0.0.1:PORT/dir.
	DirectoryURL string
	// Client trusts Pebble's HTTPS certificate (for the directory).
	Client *http.Client
	// MinicaFile is the PEM root of Pebble's HTTPS certificate.
	MinicaFile string
	// Roots holds the root Pebble issues certificates under.
	Roots *x509.CertPool
	// RootPEM is that root in PEM, from the management port.
	RootPEM []byte
}

// Options choose how Pebble validates challenges.
type Options struct {
	// AlwaysValid sets PEBBLE_VA_ALWAYS_VALID: no challenge is checked.
	AlwaysValid bool
	// HTTPPort is where Pebble checks HTTP-01; 0 means a free port.
	HTTPPort int
	// TLSPort is where Pebble checks TLS-ALPN-01; 0 means a free port.
	TLSPort int
	// DNSServer is the resolver Pebble asks (-dnsserver), "ip:port".
	DNSServer string
}

// Binary returns the Pebble binary in <repo>/.tools, building it when
// missing, and the folder of Pebble's module (for its test
// certificates). The test is skipped when Go cannot build it, unless
// POSTERN_INTEGRATION=1 (then it fails).
func Binary(t testing.TB) (bin, moduleDir string) {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("POSTERN_INTEGRATION") == "1" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	root, err := repoRoot()
	if err != nil {
		skip("acmetest: %v", err)
	}
	tools := filepath.Join(root, ".tools")
	bin = filepath.Join(tools, "pebble")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("go", "install", "github.com/letsencrypt/pebble/v2/cmd/pebble@"+PebbleVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+tools)
		if out, err := cmd.CombinedOutput(); err != nil {
			skip("cannot build Pebble: %v\n%s", err, out)
		}
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		skip("go env GOMODCACHE: %v", err)
	}
	moduleDir = filepath.Join(strings.TrimSpace(string(out)), "github.com/letsencrypt/pebble/v2@"+PebbleVersion)
	if _, err := os.Stat(filepath.Join(moduleDir, "test/certs/pebble.minica.pem")); err != nil {
		// The binary is there but the module is not (a cleaned cache):
		// download it for its test certificates.
		cmd := exec.Command("go", "mod", "download", "github.com/letsencrypt/pebble/v2@"+PebbleVersion)
		cmd.Dir = os.TempDir()
		if out, err := cmd.CombinedOutput(); err != nil {
			skip("cannot download Pebble's module: %v\n%s", err, out)
		}
	}
	return bin, moduleDir
}

// repoRoot finds the folder of go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs Pebble on free loopback ports until the test ends, with
// nonces never rejected, no authorization reuse, no validation delays
// and certificates valid for 90 days.
func Start(t testing.TB, o Options) *Pebble {
	t.Helper()
	bin, mod := Binary(t)
	port, mport := freePort(t), freePort(t)
	if o.HTTPPort == 0 {
		o.HTTPPort = freePort(t)
	}
	if o.TLSPort == 0 {
		o.TLSPort = freePort(t)
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  fmt.Sprintf("127.0.0.1:%d", port),
		"managementListenAddress":        fmt.Sprintf("127.0.0.1:%d", mport),
		"certificate":                    filepath.Join(mod, "test/certs/localhost/cert.pem"),
		"privateKey":                     filepath.Join(mod, "test/certs/localhost/key.pem"),
		"httpPort":                       o.HTTPPort,
		"tlsPort":                        o.TLSPort,
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
	if o.DNSServer != "" {
		args = append(args, "-dnsserver", o.DNSServer)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	if o.AlwaysValid {
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
	p := &Pebble{DirectoryURL: fmt.Sprintf("https://127.0.0.1:%d/dir", port), Client: client,
		MinicaFile: filepath.Join(mod, "test/certs/pebble.minica.pem")}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.DirectoryURL)
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
	p.RootPEM, _ = io.ReadAll(resp.Body)
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(p.RootPEM) {
		t.Fatalf("Pebble roots: no certificate in %q", p.RootPEM)
	}
	return p
}

// Verify checks that chain (leaf first) chains to Pebble's root and is
// valid for host, failing the test otherwise, and returns the leaf.
func (p *Pebble) Verify(t testing.TB, chain [][]byte, host string) *x509.Certificate {
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
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: p.Roots, Intermediates: inter}); err != nil {
		t.Fatalf("certificate does not verify against Pebble's root: %v", err)
	}
	return leaf
}
