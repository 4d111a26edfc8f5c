package smtpd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/sasl"
)

// clientCert returns a CA pool and a client certificate it issued for
// the SAN email.
func clientCert(t *testing.T, email string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: email},
		EmailAddresses: []string{email}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// certAuth offers PLAIN and EXTERNAL; EXTERNAL logs in as the verified
// certificate's first SAN email, when it is alice's.
type certAuth struct{}

func (certAuth) Mechanisms(*tls.ConnectionState) []string { return []string{"PLAIN", "EXTERNAL"} }
func (certAuth) Start(_ context.Context, mech string, cs *tls.ConnectionState) (sasl.Server, bool) {
	switch mech {
	case "PLAIN":
		return &plainServer{}, true
	case "EXTERNAL":
		return &externalServer{cs: cs}, true
	}
	return nil, false
}

type externalServer struct {
	cs       *tls.ConnectionState
	identity string
}

func (e *externalServer) Next([]byte) ([]byte, bool, error) {
	if len(e.cs.VerifiedChains) == 0 || e.cs.VerifiedChains[0][0].EmailAddresses[0] != "alice@example.org" {
		return nil, false, sasl.ErrInvalidCredentials
	}
	e.identity = "alice"
	return nil, true, nil
}
func (e *externalServer) Identity() string { return e.identity }
func (e *externalServer) Username() string { return e.identity }

// TestAuthClientCertExempt: with alice under attack, a new address with
// her client certificate still logs in, and failures on a session with a
// verified certificate are not counted.
func TestAuthClientCertExempt(t *testing.T) {
	pool, cert := clientCert(t, "alice@example.org")
	g := newGuarded(admission.GateOptions{RateDisabled: true}, admission.AbuseOptions{}, admission.LimiterOptions{})
	f := newFixture(t, RoleSubmissions, g.install, func(s *Server) {
		s.Auth = certAuth{}
		s.TLSConfig.ClientAuth = tls.VerifyClientCertIfGiven
		s.TLSConfig.ClientCAs = pool
		s.Limits.MaxErrors = 100
	})
	for i := 1; i <= 5; i++ { // distributed guessing: alice is under attack
		a := f.greetAs(fmt.Sprintf("127.0.0.%d", 110+i))
		a.do("AUTH PLAIN "+plainAuth("alice", "guess"), "535 5.7.8")
	}
	a := f.greetAs("127.0.0.120")
	a.do("AUTH PLAIN "+plainAuth("alice", testPassword), "535 5.7.8") // throttled
	dialCert := func(src string) *client {
		t.Helper()
		c, ok := f.dialAsWith(src, func(tc *tls.Config) { tc.Certificates = []tls.Certificate{cert} })
		if !ok {
			t.Fatal("no handshake")
		}
		c.expect("220 ")
		c.do("EHLO x", "250 ")
		return c
	}
	// With the certificate, 20 wrong passwords neither ban nor close.
	c := dialCert("127.0.0.121")
	for i := 0; i < 20; i++ {
		c.do("AUTH PLAIN "+plainAuth("alice", "wrong"), "535 5.7.8")
	}
	if _, ok, _ := g.store.Banned(context.Background(), addrOf("127.0.0.121"), fixedNow); ok {
		t.Fatal("an address with a client certificate got banned")
	}
	// EXTERNAL from a new address logs alice in despite the attack.
	c.do("AUTH EXTERNAL =", "235 2.7.0")
}
