package tlsconf

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rsaCerts writes and loads an RSA certificate for localhost, so that the
// RSA suites can be told apart: with an ECDSA certificate a static-RSA
// suite would fail whatever the policy.
func rsaCerts(t *testing.T) *Certs {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCerts(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRSASuites(t *testing.T) {
	certs := rsaCerts(t)
	srv := ServerConfig(certs, Policy{})
	for _, s := range []uint16{
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	} {
		cli := client(certs)
		cli.MaxVersion = tls.VersionTLS12
		cli.CipherSuites = []uint16{s}
		cerr, serr, cs := handshake(t, srv, cli)
		if cerr != nil || serr != nil {
			t.Errorf("%s: client %v, server %v", tls.CipherSuiteName(s), cerr, serr)
		} else if cs.CipherSuite != s {
			t.Errorf("%s: negotiated %s", tls.CipherSuiteName(s), tls.CipherSuiteName(cs.CipherSuite))
		}
	}
	for _, suites := range [][]uint16{
		{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256},
	} {
		cli := client(certs)
		cli.MaxVersion = tls.VersionTLS12
		cli.CipherSuites = suites
		cerr, serr, _ := handshake(t, srv, cli)
		if cerr == nil || serr == nil || !strings.Contains(serr.Error(), "no cipher suite supported") {
			t.Errorf("suites %x: client %v, server %v; want refusal", suites, cerr, serr)
		}
	}
	cerr, serr, cs := handshake(t, srv, client(certs))
	if cerr != nil || serr != nil || cs.Version != tls.VersionTLS13 {
		t.Errorf("TLS 1.3 with RSA: client %v, server %v, version %#x", cerr, serr, cs.Version)
	}
}
