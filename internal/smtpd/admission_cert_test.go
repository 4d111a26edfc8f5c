package smtpd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"testing"

	"postern/internal/admission"
	"postern/internal/sasl"
	"postern/internal/testcert"
)

// clientCert returns a CA pool and a client certificate it issued for
// the SAN email.
func clientCert(t *testing.T, email string) (*x509.CertPool, tls.Certificate) {
	ca := testcert.NewCA()
	return ca.Pool, ca.Issue(testcert.Spec{EmailAddresses: []string{email}, Client: true})
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
	g := newGuarded(admission.GateOptions{}, abuseOptions(func(o *admission.AbuseOptions) { o.UserThrottleAfter = 1 }), admission.LimiterOptions{})
	f := newFixture(t, RoleSubmissions, g.install, func(s *Server) {
		s.Auth = certAuth{}
		s.TLSConfig.ClientAuth = tls.VerifyClientCertIfGiven
		s.TLSConfig.ClientCAs = pool
		s.Limits.MaxErrors = 100
	})
	for i := 1; i <= 5; i++ { // distributed guessing: alice is under attack
		a := f.greetAs(fmt.Sprintf("127.0.%d.1", 110+i))
		a.do("AUTH PLAIN "+plainAuth("alice", "guess"), "535 5.7.8")
	}
	a := f.greetAs("127.0.120.1")
	a.do("AUTH PLAIN "+plainAuth("alice", "guess"), "535 5.7.8")      // the network's one check
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
	c := dialCert("127.0.120.2")
	for i := 0; i < 20; i++ {
		c.do("AUTH PLAIN "+plainAuth("alice", "wrong"), "535 5.7.8")
	}
	if _, ok, _ := g.store.Banned(context.Background(), addrOf("127.0.120.2"), fixedNow); ok {
		t.Fatal("an address with a client certificate got banned")
	}
	// EXTERNAL from a new address logs alice in despite the attack.
	c.do("AUTH EXTERNAL =", "235 2.7.0")
}
