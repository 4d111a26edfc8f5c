package tlsconf

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/testcert"
)

// rsaCerts writes and loads an RSA certificate for localhost, so that the
// RSA suites can be told apart: with an ECDSA certificate a static-RSA
// suite would fail whatever the policy.
func rsaCerts(t *testing.T) *Certs {
	t.Helper()
	c, _ := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"localhost"}, RSA: true})
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testcert.WriteFiles(t, c, cf, kf)
	certs, err := LoadCerts(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	return certs
}

func TestRSASuites(t *testing.T) {
	t.Parallel()
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
