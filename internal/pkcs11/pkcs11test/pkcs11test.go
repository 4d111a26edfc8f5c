// Package pkcs11test runs a real PKCS#11 token for tests: a SoftHSM2
// token (Debian's softhsm2) in a temporary directory, with keys made by
// pkcs11-tool (Debian's opensc). It uses the command-line tools only, so
// that tests of a build without cgo, and of the real binary, use it as
// well. Only tests import it.
package pkcs11test

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Module is SoftHSM2's PKCS#11 module as Debian installs it: the module
// the tests use. Postern has no default module; docs/tls.md says so.
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// PIN and SOPIN are the test token's user and security officer PINs.
const (
	PIN   = "1234"
	SOPIN = "5678"
)

// HSM is a SoftHSM2 installation of its own: a configuration file
// (SOFTHSM2_CONF) whose token directory is under a test's temporary
// directory, holding one initialized token.
type HSM struct {
	// Conf is the SoftHSM2 configuration file; a process finds the
	// token through SOFTHSM2_CONF=Conf (Env).
	Conf string
	// TokenDir is the directory SoftHSM2 keeps its tokens in.
	TokenDir string
	// Label is the token's label.
	Label string
	// PINFile holds PIN on its first line (mode 0600).
	PINFile string

	tb testing.TB
}

// need fails (under POSTERN_INTEGRATION=1) or skips tb when a tool is
// missing.
func need(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			tb.Fatalf("%s is required (scripts/test installs softhsm2 and opensc): %v", name, err)
		}
		tb.Skipf("%s not installed (apt-get install softhsm2 opensc)", name)
	}
}

// New creates a SoftHSM2 token labelled label, with PIN and SOPIN, in a
// temporary directory of tb. It sets SOFTHSM2_CONF for the test's
// process (tb.Setenv), which the module reads when it is initialized.
func New(tb testing.TB, label string) *HSM {
	tb.Helper()
	need(tb, "softhsm2-util")
	need(tb, "pkcs11-tool")
	if _, err := os.Stat(Module); err != nil {
		tb.Fatalf("SoftHSM2 module: %v", err)
	}
	dir := tb.TempDir()
	h := &HSM{Conf: filepath.Join(dir, "softhsm2.conf"), TokenDir: filepath.Join(dir, "tokens"), Label: label,
		PINFile: filepath.Join(dir, "pin"), tb: tb}
	if err := os.Mkdir(h.TokenDir, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", h.TokenDir)
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(h.PINFile, []byte(PIN+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", h.Conf)
	h.run("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SOPIN)
	return h
}

// Env returns the environment a process needs to find the token:
// SOFTHSM2_CONF.
func (h *HSM) Env() []string { return []string{"SOFTHSM2_CONF=" + h.Conf} }

// run runs a tool with SOFTHSM2_CONF set, failing the test on error.
func (h *HSM) run(name string, args ...string) string {
	h.tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), h.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tool runs pkcs11-tool on the token, logged in.
func (h *HSM) tool(args ...string) string {
	h.tb.Helper()
	return h.run("pkcs11-tool", append([]string{"--module", Module, "--token-label", h.Label, "--login", "--pin", PIN}, args...)...)
}

// GenerateKey makes a key pair in the token with label and id (one
// byte, as hex: "01") of keyType, as pkcs11-tool spells it
// ("EC:prime256v1", "EC:secp384r1", "rsa:2048"), and returns its
// public key.
func (h *HSM) GenerateKey(label, id, keyType string) crypto.PublicKey {
	h.tb.Helper()
	h.tool("--keypairgen", "--key-type", keyType, "--label", label, "--id", id)
	return h.PublicKey(label)
}

// PublicKey reads the public key labelled label out of the token.
func (h *HSM) PublicKey(label string) crypto.PublicKey {
	h.tb.Helper()
	out := filepath.Join(h.tb.TempDir(), "pub.der")
	h.tool("--read-object", "--type", "pubkey", "--label", label, "-o", out)
	der, err := os.ReadFile(out)
	if err != nil {
		h.tb.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		h.tb.Fatalf("public key %s: %v", label, err)
	}
	return pub
}

// DeleteKey removes the key pair labelled label from the token.
func (h *HSM) DeleteKey(label string) {
	h.tb.Helper()
	h.DeleteKeyPart(label, "privkey")
	h.DeleteKeyPart(label, "pubkey")
}

// DeleteKeyPart removes one half of the key pair labelled label: part
// is "privkey" or "pubkey".
func (h *HSM) DeleteKeyPart(label, part string) {
	h.tb.Helper()
	h.tool("--delete-object", "--type", part, "--label", label)
}

// URI returns the PKCS#11 URI of the key labelled label, with no
// module or PIN file (those come from [pkcs11]).
func (h *HSM) URI(label string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s;type=private", h.Label, label)
}

// Unplug takes the token's files away, as a token that stops answering:
// SoftHSM2 then fails every operation on the token's objects. Plug
// brings them back; the token is usable again once the module is
// initialized anew.
func (h *HSM) Unplug() {
	h.tb.Helper()
	if err := os.Rename(h.TokenDir, h.TokenDir+".away"); err != nil {
		h.tb.Fatal(err)
	}
}

// Plug undoes Unplug.
func (h *HSM) Plug() {
	h.tb.Helper()
	if err := os.Rename(h.TokenDir+".away", h.TokenDir); err != nil {
		h.tb.Fatal(err)
	}
}

// ReadPIN reads a PIN file as Postern reads every secret file
// (config.ReadSecret: the first line, without its end and the blanks
// around it), for Options.ReadSecret in the tests of packages that
// config's import of pkcs11 keeps from importing config.
func ReadPIN(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.Trim(line, " \t\r"), nil
}
