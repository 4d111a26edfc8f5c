package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPKCS11Keys checks that key_file values that are pkcs11: URIs are
// kept as written (never resolved against the configuration's
// directory) and that [pkcs11] paths are.
func TestPKCS11Keys(t *testing.T) {
	dir := t.TempDir()
	src := `hostname = "mail.example.com"
[tls]
cert_file = "ec.pem"
key_file = "pkcs11:token=T;object=tlskey;type=private"
[[tls.certificate]]
cert_file = "rsa.pem"
key_file = "PKCS11:token=T;object=rsa?pin-source=file:/etc/postern/other-pin"
[mail_auth]
sign = true
[[mail_auth.dkim_key]]
domain = "mail.example.com"
selector = "hsm"
key_file = "pkcs11:token=T;object=dkim"
[pkcs11]
module = "/usr/lib/softhsm/libsofthsm2.so"
pin_file = "token.pin"
timeout = "2s"
`
	c := loadText(t, dir, src)
	if c.TLS.KeyFile != "pkcs11:token=T;object=tlskey;type=private" ||
		c.TLS.Certificates[0].KeyFile != "PKCS11:token=T;object=rsa?pin-source=file:/etc/postern/other-pin" ||
		c.MailAuth.DKIMKeys[0].KeyFile != "pkcs11:token=T;object=dkim" {
		t.Errorf("URIs changed: %q, %q, %q", c.TLS.KeyFile, c.TLS.Certificates[0].KeyFile, c.MailAuth.DKIMKeys[0].KeyFile)
	}
	want := PKCS11{Module: "/usr/lib/softhsm/libsofthsm2.so", PINFile: filepath.Join(dir, "token.pin"), Timeout: 2 * time.Second}
	if c.PKCS11 != want {
		t.Errorf("pkcs11 %+v, want %+v", c.PKCS11, want)
	}
}

// TestPKCS11Refused checks the problems Load reports about key URIs
// and [pkcs11], each naming the key.
func TestPKCS11Refused(t *testing.T) {
	src := `hostname = "mail.example.com"
[tls]
cert_file = "ec.pem"
key_file = "pkcs11:token=T;object=tlskey"
[[tls.certificate]]
cert_file = "rsa.pem"
key_file = "pkcs11:token=T;object=rsa;model=X"
[[tls.certificate]]
cert_file = "x.pem"
key_file = "pkcs11:token=T;object=x?pin-value=1234"
[pkcs11]
timeout = "-1s"
colour = "red"
`
	_, err := parse("postern.toml", []byte(src), fixedHost)
	checkSays(t, err,
		`tls.key_file: pkcs11:token=T;object=tlskey;type=private needs a PKCS#11 module: set [pkcs11] module`,
		`tls.key_file: pkcs11:token=T;object=tlskey;type=private needs the token's PIN: set [pkcs11] pin_file`,
		`tls.certificate[0].key_file: pkcs11: URI attribute model is not used by Postern`,
		`tls.certificate[1].key_file: pkcs11: URI attribute pin-value would keep the PIN in the configuration file`,
		`pkcs11.timeout: duration "-1s" must not be negative`,
		`unknown key "pkcs11.colour"`,
	)
}

// pkcs11.timeout is resolved here (5s by default) and cannot be off: 0
// is refused, not read as a default.
func TestPKCS11Timeout(t *testing.T) {
	c, err := parse("postern.toml", []byte("hostname = \"mail.example.com\"\n[tls]\nself_signed = true\n"), fixedHost)
	if err != nil || c.PKCS11.Timeout != DefaultPKCS11Timeout {
		t.Fatalf("default timeout %v, %v", c.PKCS11.Timeout, err)
	}
	_, err = parse("postern.toml", []byte("hostname = \"mail.example.com\"\n[tls]\nself_signed = true\n[pkcs11]\ntimeout = \"0s\"\n"), fixedHost)
	if err == nil || !strings.Contains(err.Error(), "pkcs11.timeout: must be greater than 0") {
		t.Errorf("timeout = \"0s\": %v", err)
	}
}
