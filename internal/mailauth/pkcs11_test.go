//go:build cgo

package mailauth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/pkcs11"
	"postern/internal/pkcs11/pkcs11test"
)

// TestInteropTokenKeyVerifiesWithDkimpy signs with an RSA key in a real
// SoftHSM2 token and has dkimpy verify the signature (and refuse it on
// a changed body), the key record published by a real DNS server.
func TestInteropTokenKeyVerifiesWithDkimpy(t *testing.T) {
	needTool(t, "python3-dkim", havePython("dkim"))
	h := pkcs11test.New(t, "T")
	h.GenerateKey("dkim", "01", "rsa:2048")
	tokens := pkcs11.New(pkcs11.Options{Module: pkcs11test.Module, PINFile: h.PINFile, ReadSecret: pkcs11test.ReadPIN, Timeout: 5 * time.Second})
	defer tokens.Close()
	k, err := tokens.Key(h.URI("dkim"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []SigningKey{{Domain: "example.org", Selector: "hsm", Key: k}}
	if keys[0].Algorithm() != RSASHA256 {
		t.Fatalf("algorithm %q", keys[0].Algorithm())
	}
	srv := dnstest.New(t, keyZone(t, keys))
	signed := signedBy(t, keys)
	bad := bytes.Replace(signed, []byte("how are you"), []byte("how are we"), 1)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "signed.eml"), signed, 0o600)
	os.WriteFile(filepath.Join(dir, "bad.eml"), bad, 0o600)
	out, err := run(nil, systemPython, filepath.Join("testdata", "dkimpy_verify.py"), srv.Addr(),
		filepath.Join(dir, "signed.eml"), filepath.Join(dir, "bad.eml"))
	if err != nil || string(out) != "ok\nfail\n" {
		t.Errorf("dkimpy says %q, want \"ok\\nfail\\n\": %v", out, err)
	}
}
