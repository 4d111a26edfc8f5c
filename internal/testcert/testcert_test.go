package testcert

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestIssue(t *testing.T) {
	ca := NewCA()
	srv := ca.Issue(Spec{DNSNames: []string{"mx.example.org"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	for _, name := range []string{"mx.example.org", "127.0.0.1"} {
		if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("server certificate verifies as a client one")
	}
	if srv.Leaf.Subject.CommonName != "mx.example.org" || !srv.Leaf.NotAfter.After(time.Now().Add(23*time.Hour)) {
		t.Errorf("server certificate: CN %q, until %v", srv.Leaf.Subject.CommonName, srv.Leaf.NotAfter)
	}
	cli := ca.Issue(Spec{EmailAddresses: []string{"alice@example.org"}, Client: true, Valid: time.Hour})
	if _, err := cli.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if cli.Leaf.Subject.CommonName != "alice@example.org" || !slices.Equal(cli.Leaf.EmailAddresses, []string{"alice@example.org"}) ||
		cli.Leaf.NotAfter.After(time.Now().Add(2*time.Hour)) {
		t.Errorf("client certificate: CN %q, emails %v, until %v", cli.Leaf.Subject.CommonName, cli.Leaf.EmailAddresses, cli.Leaf.NotAfter)
	}
	if srv.Leaf.SerialNumber.Cmp(cli.Leaf.SerialNumber) == 0 {
		t.Error("two certificates of one CA share a serial number")
	}
	// Another CA's certificate does not verify against this one.
	if _, err := NewCA().Issue(Spec{DNSNames: []string{"mx.example.org"}}).Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: "mx.example.org"}); err == nil {
		t.Error("another CA's certificate verifies")
	}
}

func TestSelfSignedRSAFiles(t *testing.T) {
	c, pool := SelfSigned(Spec{DNSNames: []string{"localhost"}, RSA: true})
	if _, ok := c.PrivateKey.(*rsa.PrivateKey); !ok {
		t.Fatalf("key %T, want RSA", c.PrivateKey)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
		t.Errorf("self-signed: %v", err)
	}
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	WriteFiles(t, c, cf, kf)
	loaded, err := tls.LoadX509KeyPair(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Leaf.Equal(c.Leaf) {
		t.Error("the files hold another certificate")
	}
	ca := NewCA()
	ca.WriteFile(t, filepath.Join(dir, "ca.pem"))
	b, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" || !bytes.Equal(blk.Bytes, ca.Cert.Raw) {
		t.Errorf("CA file: %q", b)
	}
}
