//go:build cgo

package pkcs11

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"postern/internal/pkcs11/pkcs11test"
)

func newTokens(t *testing.T, h *pkcs11test.HSM) *Tokens {
	t.Helper()
	tk := New(Options{Module: pkcs11test.Module, PINFile: h.PINFile, ReadSecret: pkcs11test.ReadPIN, Timeout: 5 * time.Second})
	t.Cleanup(func() { tk.Close() })
	return tk
}

// TestTokenKeys signs with ECDSA and RSA keys made in a real SoftHSM2
// token and verifies the signatures with the public keys read out of
// the token by pkcs11-tool.
func TestTokenKeys(t *testing.T) {
	h := pkcs11test.New(t, "T")
	pubs := map[string]crypto.PublicKey{
		"ec256": h.GenerateKey("ec256", "01", "EC:prime256v1"),
		"rsa":   h.GenerateKey("rsa", "03", "rsa:2048"),
	}
	tk := newTokens(t, h)
	d := sha256.Sum256([]byte("to be signed"))
	for label, pub := range pubs {
		k, err := tk.Key(h.URI(label))
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		if !pub.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			t.Errorf("%s: Public() is not the token's public key", label)
		}
		if err := k.SelfTest(); err != nil {
			t.Errorf("%s: self test: %v", label, err)
		}
		info := k.Info()
		if info.Label != label || !strings.Contains(info.Token, `"T" (SoftHSM project SoftHSM v2`) || info.Module != pkcs11test.Module {
			t.Errorf("%s: info %+v", label, info)
		}
		switch pub := pub.(type) {
		case *ecdsa.PublicKey:
			sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil || !ecdsa.VerifyASN1(pub, d[:], sig) {
				t.Errorf("%s: ECDSA signature: %v", label, err)
			}
			if info.Algorithm != "ECDSA P-256" {
				t.Errorf("%s: algorithm %q", label, info.Algorithm)
			}
		case *rsa.PublicKey:
			sig, err := k.Sign(rand.Reader, d[:], crypto.SHA256)
			if err != nil || rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig) != nil {
				t.Errorf("RSA PKCS #1 v1.5 signature (DKIM, TLS 1.2): %v", err)
			}
			pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
			sig, err = k.Sign(rand.Reader, d[:], pss)
			if err != nil || rsa.VerifyPSS(pub, crypto.SHA256, d[:], sig, pss) != nil {
				t.Errorf("RSA-PSS signature (TLS 1.3): %v", err)
			}
			if info.Algorithm != "RSA 2048" {
				t.Errorf("algorithm %q", info.Algorithm)
			}
		}
	}
	// By id alone, and with the PIN file and module in the URI.
	if _, err := tk.Key("pkcs11:token=T;id=%03"); err != nil {
		t.Errorf("by id: %v", err)
	}
	bare := New(Options{ReadSecret: pkcs11test.ReadPIN, Timeout: 5 * time.Second})
	defer bare.Close()
	if _, err := bare.Key(h.URI("ec256") + "?pin-source=file:" + h.PINFile + "&module-path=" + pkcs11test.Module); err != nil {
		t.Errorf("module and PIN file in the URI: %v", err)
	}
}

// TestTokenErrors checks that each way a key can be wrong is an *Error
// of the right kind whose message and fix say what to do.
func TestTokenErrors(t *testing.T) {
	h := pkcs11test.New(t, "T")
	h.GenerateKey("tlskey", "01", "EC:prime256v1")
	h.GenerateKey("orphan", "02", "EC:prime256v1")
	wrongPIN := filepath.Join(t.TempDir(), "wrong-pin")
	os.WriteFile(wrongPIN, []byte("9999\n"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o600)
	for _, c := range []struct {
		name     string
		opts     Options
		uri      string
		kind     ErrorKind
		msg, fix string
	}{
		// A wrong PIN first: once a token is open, PKCS#11 takes any PIN
		// (the process stays logged in), so each case uses fresh Tokens
		// closed before the next.
		{"wrong PIN", Options{Module: pkcs11test.Module, PINFile: wrongPIN}, h.URI("tlskey"), KindPIN, "refused the PIN", "PIN file"},
		{"empty PIN", Options{Module: pkcs11test.Module, PINFile: empty}, h.URI("tlskey"), KindPIN, "is empty", "PIN"},
		{"no PIN file", Options{Module: pkcs11test.Module, PINFile: "/nonexistent/pin"}, h.URI("tlskey"), KindPIN, "cannot read the PIN file", "readable"},
		{"no pin_file", Options{Module: pkcs11test.Module}, h.URI("tlskey"), KindConfig, "no PIN file", "pin_file"},
		{"no module", Options{PINFile: h.PINFile}, h.URI("tlskey"), KindConfig, "no PKCS#11 module", "[pkcs11] module"},
		{"missing module", Options{Module: "/usr/lib/nonexistent/libpkcs11.so", PINFile: h.PINFile}, h.URI("tlskey"), KindModule, "no PKCS#11 module at", "install"},
		{"not a module", Options{Module: "/etc/hostname", PINFile: h.PINFile}, h.URI("tlskey"), KindModule, "does not load", "ldd"},
		{"missing token", Options{Module: pkcs11test.Module, PINFile: h.PINFile}, "pkcs11:token=Other;object=tlskey", KindToken,
			`no token labelled "Other"`, "softhsm2-util --init-token"},
		{"missing key", Options{Module: pkcs11test.Module, PINFile: h.PINFile}, h.URI("nokey"), KindKey,
			"no such key", "correct object= or id="},
		{"bad URI", Options{Module: pkcs11test.Module, PINFile: h.PINFile}, "pkcs11:token=T", KindConfig, "bad URI", "RFC 7512"},
	} {
		opts := c.opts
		opts.ReadSecret, opts.Timeout = pkcs11test.ReadPIN, 5*time.Second
		tk := New(opts)
		_, err := tk.Key(c.uri)
		tk.Close()
		var pe *Error
		if !errors.As(err, &pe) {
			t.Errorf("%s: error %v, want a *pkcs11.Error", c.name, err)
			continue
		}
		if pe.Kind != c.kind || !strings.Contains(pe.Error(), c.msg) || !strings.Contains(pe.Fix, c.fix) {
			t.Errorf("%s: kind %s, %q, fix %q; want kind %s, %q, fix with %q", c.name, pe.Kind, pe.Error(), pe.Fix, c.kind, c.msg, c.fix)
		}
	}
	// The missing token's error lists the token there is; the missing
	// key's lists the keys there are.
	tk := newTokens(t, h)
	_, err := tk.Key("pkcs11:token=Other;object=tlskey")
	if err == nil || !strings.Contains(err.Error(), `"T" (SoftHSM project SoftHSM v2, serial `) {
		t.Errorf("missing token: %v, want the tokens the module has", err)
	}
	_, err = tk.Key(h.URI("nokey"))
	if err == nil || !strings.Contains(err.Error(), "object=tlskey;id=%01 (ECDSA P-256)") {
		t.Errorf("missing key: %v, want the keys the token has", err)
	}

	// A private key whose public key object is gone.
	tk.Close()
	h.DeleteKeyPart("orphan", "pubkey")
	tk = newTokens(t, h)
	_, err = tk.Key(h.URI("orphan"))
	var pe *Error
	if !errors.As(err, &pe) || pe.Kind != KindKey || !strings.Contains(pe.Msg, "no public key object") {
		t.Errorf("private key alone: %v", err)
	}
}

// TestTokenUnplugged checks that a token that stops answering fails
// signatures with errors counted in the metric, and that the next Key
// (postern reload) opens it again once it is back.
func TestTokenUnplugged(t *testing.T) {
	h := pkcs11test.New(t, "T")
	pub := h.GenerateKey("tlskey", "01", "EC:prime256v1").(*ecdsa.PublicKey)
	tk := newTokens(t, h)
	k, err := tk.Key(h.URI("tlskey"))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	errs := func() float64 {
		return testutil.ToFloat64(k.m.Operations.WithLabelValues(k.String(), "error"))
	}
	before := errs()
	h.Unplug()
	if _, err := k.Sign(rand.Reader, d[:], crypto.SHA256); err == nil {
		t.Fatal("signed with the token's files gone")
	}
	if errs() != before+1 {
		t.Errorf("error count %v, want %v", errs(), before+1)
	}
	if _, err := tk.Key(h.URI("tlskey")); err == nil {
		t.Error("Key found the key with the token gone")
	}
	h.Plug()
	k2, err := tk.Key(h.URI("tlskey"))
	if err != nil {
		t.Fatalf("token back: %v", err)
	}
	sig, err := k2.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(pub, d[:], sig) {
		t.Fatalf("token back: sign: %v", err)
	}
	// The Key from before (as the DKIM signer holds it) finds itself in
	// the reopened token.
	sig, err = k.Sign(rand.Reader, d[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(pub, d[:], sig) {
		t.Fatalf("the earlier Key after the token came back: %v", err)
	}
}
