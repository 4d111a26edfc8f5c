package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"postern/internal/fsutil"
)

// testCert is a certificate of a test PKI and its key.
type testCert struct {
	x   *x509.Certificate
	der []byte
	key crypto.Signer
}

// certSpec describes a certificate to make.
type certSpec struct {
	cn        string
	names     []string
	ca        bool
	from, to  time.Time
	rsa       bool
	serial    int64
	parent    *testCert // nil: self-signed
	clientEKU bool
}

func makeCert(t *testing.T, s certSpec) *testCert {
	t.Helper()
	var key crypto.Signer
	var err error
	if s.rsa {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	if s.serial == 0 {
		n, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
		s.serial = n.Int64() + 1
	}
	if s.from.IsZero() {
		s.from = testNow.Add(-24 * time.Hour)
	}
	if s.to.IsZero() {
		s.to = testNow.Add(90 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(s.serial),
		Subject:               pkix.Name{CommonName: s.cn},
		DNSNames:              s.names,
		NotBefore:             s.from,
		NotAfter:              s.to,
		BasicConstraintsValid: true,
		IsCA:                  s.ca,
	}
	if s.ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if s.clientEKU {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
	}
	parent, signer := tmpl, key
	if s.parent != nil {
		parent, signer = s.parent.x, s.parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{x: x, der: der, key: key}
}

// testPKI is a root, an intermediate and a leaf for mail.example.com.
type testPKI struct {
	root, inter, leaf *testCert
	roots             *x509.CertPool
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{}
	p.root = makeCert(t, certSpec{cn: "Test Root", ca: true, to: testNow.Add(10 * 365 * 24 * time.Hour)})
	p.inter = makeCert(t, certSpec{cn: "Test Intermediate", ca: true, parent: p.root, to: testNow.Add(5 * 365 * 24 * time.Hour)})
	p.leaf = p.issue(t, certSpec{cn: "mail.example.com", names: []string{"mail.example.com", "*.example.org"}})
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root.x)
	return p
}

// issue makes a leaf signed by the intermediate.
func (p *testPKI) issue(t *testing.T, s certSpec) *testCert {
	s.parent = p.inter
	return makeCert(t, s)
}

// tlsCert assembles a tls.Certificate from chain (in the given order)
// with key.
func tlsCert(key crypto.Signer, chain ...*testCert) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.der)
	}
	if len(chain) > 0 {
		c.Leaf = chain[0].x
	}
	return c
}

// writePair writes chain and key as PEM files in dir with the given base
// names, atomically (by rename), and returns their paths.
func writePair(t *testing.T, dir, certName, keyName string, key crypto.Signer, chain ...*testCert) (string, string) {
	t.Helper()
	var certPEM []byte
	for _, x := range chain {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: x.der})...)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	cf, kf := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	for _, f := range []struct {
		name string
		data []byte
	}{{kf, keyPEM}, {cf, certPEM}} {
		if err := fsutil.WriteFile(f.name, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Remove
	return cf, kf
}
