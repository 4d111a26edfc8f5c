//go:build cgo

package tlsconf

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"postern/internal/pkcs11"
	"postern/internal/pkcs11/pkcs11test"
	"postern/internal/testcert"
)

// TestCertsKeysInToken serves certificates whose keys are in a real
// SoftHSM2 token (ECDSA and RSA) to real TLS clients, reloads them, and
// refuses a certificate that does not match the token's key with a
// problem that names the key. Not parallel: pkcs11test.New sets
// SOFTHSM2_CONF in the environment (t.Setenv).
func TestCertsKeysInToken(t *testing.T) {
	h := pkcs11test.New(t, "T")
	h.GenerateKey("ec", "01", "EC:prime256v1")
	h.GenerateKey("rsa", "02", "rsa:2048")
	met := pkcs11.NewMetrics(nil)
	tokens := pkcs11.New(pkcs11.Options{Module: pkcs11test.Module, PINFile: h.PINFile, ReadSecret: pkcs11test.ReadPIN, Timeout: 5 * time.Second,
		Metrics: met})
	t.Cleanup(func() { tokens.Close() })
	keys := func(uri string) (crypto.Signer, error) { return tokens.Key(uri) }

	ca := testcert.NewCA()
	dir := t.TempDir()
	files := map[string]string{}
	for _, label := range []string{"ec", "rsa"} {
		k, err := tokens.Key(h.URI(label))
		if err != nil {
			t.Fatal(err)
		}
		c := ca.IssueKey(testcert.Spec{DNSNames: []string{"mail.example.com"}}, k)
		files[label] = filepath.Join(dir, label+".pem")
		os.WriteFile(files[label], testcert.ChainPEM(c), 0o644)
	}
	opts := Options{
		Pairs: []Pair{{files["ec"], h.URI("ec")}, {files["rsa"], h.URI("rsa")}},
		Check: CheckOptions{Roots: ca.Pool, Hostnames: []string{"mail.example.com"}},
		Keys:  keys,
	}
	certs, err := OpenCerts(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := certs.Files(); !slices.Equal(got, []string{files["ec"], files["rsa"]}) {
		t.Errorf("Files() = %v: keys in a token are not files to watch", got)
	}
	srv := ServerConfig(certs, Policy{})
	signed := func(label string) float64 {
		return testutil.ToFloat64(met.Operations.WithLabelValues(h.URI(label), "ok"))
	}
	for _, c := range []struct {
		name, label string
		cli         *tls.Config
	}{
		{"TLS 1.3 ECDSA", "ec", &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.com"}},
		{"TLS 1.2 RSA", "rsa", &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.com", MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}},
	} {
		before := signed(c.label)
		err, _, st := handshake(t, srv, c.cli)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !st.PeerCertificates[0].Equal(mustLeaf(t, files[c.label])) {
			t.Errorf("%s: served another certificate", c.name)
		}
		if signed(c.label) != before+1 {
			t.Errorf("%s: the token key signed %v times, want once", c.name, signed(c.label)-before)
		}
	}
	if err := certs.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if err, _, _ := handshake(t, srv, &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.com"}); err != nil {
		t.Fatalf("after reload: %v", err)
	}

	// The RSA certificate with the ECDSA key of the token.
	opts.Pairs = []Pair{{files["rsa"], h.URI("ec")}}
	_, err = OpenCerts(opts)
	var ce *ChainError
	if !errors.As(err, &ce) || ce.Problems[0].Kind != ProblemKeyMismatch ||
		!strings.Contains(ce.Problems[0].Message, "the key "+h.URI("ec")+" in the token does not belong") ||
		!strings.Contains(ce.Problems[0].Fix, "pkcs11-tool --list-objects") {
		t.Errorf("mismatch: %v", err)
	}
	// No key loader: refused, saying why.
	opts.Keys = nil
	if _, err := OpenCerts(opts); err == nil || !strings.Contains(err.Error(), "not set up") {
		t.Errorf("without Keys: %v", err)
	}
}

func mustLeaf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	c, err := readChain(file)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}
