// Package testcert makes certificates for tests: a root CA and the
// server and client certificates it issues, and self-signed server
// certificates, with ECDSA P-256 keys (RSA 2048 on request), valid from
// an hour ago. Only tests import it.
//
// Making a key or signing a well-formed template does not fail but for a
// broken random source, so those functions panic rather than take a
// testing.TB: they also serve package-level sync.OnceValues.
package testcert

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
	"net"
	"os"
	"testing"
	"time"
)

// Spec describes a certificate to make.
type Spec struct {
	// CommonName is the subject's common name; "" means the first DNS
	// name, else the first email address.
	CommonName string
	// DNSNames, IPAddresses and EmailAddresses are the subject
	// alternative names.
	DNSNames       []string
	IPAddresses    []net.IP
	EmailAddresses []string
	// Client makes a TLS client certificate (extended key usage
	// clientAuth); otherwise a server one (serverAuth).
	Client bool
	// RSA gives the certificate an RSA 2048 key instead of ECDSA P-256.
	RSA bool
	// Valid is how long it stays valid from now; 0 means 24 hours.
	Valid time.Duration
}

// CA is a root certificate authority.
type CA struct {
	// Cert is the root certificate, self-signed.
	Cert *x509.Certificate
	// Key is its private key (ECDSA P-256).
	Key crypto.Signer
	// Pool holds Cert: a client's RootCAs, or a server's ClientCAs.
	Pool *x509.CertPool
}

// NewCA returns a new root, "Postern test CA", valid for 48 hours.
func NewCA() *CA {
	key := newKey(false)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Postern test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	c := create(tmpl, tmpl, key, key)
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	return &CA{Cert: c.Leaf, Key: key, Pool: pool}
}

// Issue returns a certificate for s signed by ca, with its Leaf set.
func (ca *CA) Issue(s Spec) tls.Certificate {
	key := newKey(s.RSA)
	return create(template(s), ca.Cert, key, ca.Key)
}

// IssueKey returns a certificate for s and key (for example a key in a
// PKCS#11 token) signed by ca, with its Leaf set and PrivateKey key;
// s.RSA is taken from the key's type.
func (ca *CA) IssueKey(s Spec, key crypto.Signer) tls.Certificate {
	_, s.RSA = key.Public().(*rsa.PublicKey)
	return create(template(s), ca.Cert, key, ca.Key)
}

// WriteFile writes ca's root certificate to file as PEM (for
// tls.ca_file or a client's CA file).
func (ca *CA) WriteFile(t testing.TB, file string) {
	t.Helper()
	write(t, file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o644)
}

// SelfSigned returns a certificate for s that signs itself, with its
// Leaf set, and a pool that holds it. It is also a CA, as the server
// certificates tests make by hand often are, so that it can stand as a
// client's root.
func SelfSigned(s Spec) (tls.Certificate, *x509.CertPool) {
	key := newKey(s.RSA)
	tmpl := template(s)
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	tmpl.BasicConstraintsValid, tmpl.IsCA = true, true
	c := create(tmpl, tmpl, key, key)
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf)
	return c, pool
}

// ChainPEM returns c's chain as "CERTIFICATE" blocks, leaf first.
func ChainPEM(c tls.Certificate) []byte {
	var out []byte
	for _, der := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return out
}

// PEM returns c's chain ("CERTIFICATE" blocks) and its private key (a
// PKCS #8 "PRIVATE KEY" block).
func PEM(c tls.Certificate) (certPEM, keyPEM []byte) {
	certPEM = ChainPEM(c)
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		panic("testcert: " + err.Error())
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFiles writes c's chain to certFile (mode 0644) and its key to
// keyFile (0600), each to a temporary file renamed over the name, so
// that a server reloading them never reads half a file.
func WriteFiles(t testing.TB, c tls.Certificate, certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := PEM(c)
	write(t, certFile, certPEM, 0o644)
	write(t, keyFile, keyPEM, 0o600)
}

func write(t testing.TB, name string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name+".tmp", data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(name+".tmp", name); err != nil {
		t.Fatal(err)
	}
}

// template returns the leaf template for s.
func template(s Spec) *x509.Certificate {
	cn := s.CommonName
	if cn == "" && len(s.DNSNames) > 0 {
		cn = s.DNSNames[0]
	} else if cn == "" && len(s.EmailAddresses) > 0 {
		cn = s.EmailAddresses[0]
	}
	valid := s.Valid
	if valid == 0 {
		valid = 24 * time.Hour
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial(),
		Subject:        pkix.Name{CommonName: cn},
		DNSNames:       s.DNSNames,
		IPAddresses:    s.IPAddresses,
		EmailAddresses: s.EmailAddresses,
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       time.Now().Add(valid),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if s.Client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if s.RSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment // static-RSA key exchange
	}
	return tmpl
}

// create signs tmpl with signer as parent and returns the certificate
// with key, its Leaf set.
func create(tmpl, parent *x509.Certificate, key, signer crypto.Signer) tls.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		panic("testcert: " + err.Error())
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		panic("testcert: " + err.Error())
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func newKey(useRSA bool) crypto.Signer {
	var k crypto.Signer
	var err error
	if useRSA {
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		panic("testcert: " + err.Error())
	}
	return k
}

// serial returns a random 63-bit serial number (certificates of one
// issuer must not share one, RFC 5280 §4.1.2.2).
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		panic("testcert: " + err.Error())
	}
	return n.Add(n, big.NewInt(1))
}
