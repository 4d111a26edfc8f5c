package sasl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// certSession returns the server's view of a real TLS session in which the
// client presented cert (none when cert is nil); verify selects
// VerifyClientCertIfGiven against ca, otherwise RequestClientCert (kept
// unverified).
func certSession(t *testing.T, ca *testCA, srvCert tls.Certificate, cert *tls.Certificate, verify bool, version uint16) *tls.ConnectionState {
	t.Helper()
	srvConf := &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: ca.Pool, ClientAuth: tls.RequestClientCert, MaxVersion: version}
	if verify {
		srvConf.ClientAuth = tls.VerifyClientCertIfGiven
	}
	cliConf := &tls.Config{RootCAs: ca.Pool, ServerName: "mx.example.org", MaxVersion: version}
	if cert != nil {
		cliConf.Certificates = []tls.Certificate{*cert}
	}
	sc, _ := tlsPair(t, srvConf, cliConf)
	cs := sc.ConnectionState()
	return &cs
}

func TestExternal(t *testing.T) {
	ca := newTestCA()
	srv := ca.issue("mx.example.org")
	alice := ca.issue("Alice", "alice@example.org", "a2@example.org")
	other := newTestCA().issue("Mallory", "alice@example.org")
	verified := certSession(t, ca, srv, &alice, true, tls.VersionTLS13)
	unverified := certSession(t, ca, srv, &other, false, tls.VersionTLS13)
	none := certSession(t, ca, srv, nil, true, tls.VersionTLS13)

	for _, c := range []struct {
		name   string
		cs     *tls.ConnectionState
		mapper CertMapper
		msgs   [][]byte
		want   error
		user   string
	}{
		{"verified, empty authzid", verified, nil, [][]byte{{}}, nil, "alice@example.org"},
		{"verified, no initial response", verified, nil, [][]byte{nil, {}}, nil, "alice@example.org"},
		{"verified, authzid self", verified, nil, [][]byte{[]byte("ALICE@example.org")}, nil, "alice@example.org"},
		{"verified, authzid other", verified, nil, [][]byte{[]byte("bob@example.org")}, ErrInvalidCredentials, ""},
		{"unverified", unverified, nil, [][]byte{{}}, ErrInvalidCredentials, ""},
		{"no certificate", none, nil, [][]byte{{}}, ErrInvalidCredentials, ""},
		{"no TLS", nil, nil, [][]byte{{}}, ErrInvalidCredentials, ""},
		{"mapped by email", verified, CertMap(map[string]string{"A2@example.org": "alice"}), [][]byte{{}}, nil, "alice"},
		{"mapped by fingerprint", verified, CertMap(map[string]string{CertFingerprint(alice.Leaf): "al"}), [][]byte{[]byte("al")}, nil, "al"},
		{"not mapped", verified, CertMap(map[string]string{"bob@example.org": "bob"}), [][]byte{{}}, ErrInvalidCredentials, ""},
		{"NUL", verified, nil, [][]byte{[]byte("a\x00b")}, ErrMalformed, ""},
	} {
		s := NewExternal(context.Background(), c.cs, c.mapper)
		_, done, err := run(s, c.msgs...)
		if c.want == nil && (!done || err != nil || s.Identity() != c.user) {
			t.Errorf("%s: done=%v err=%v identity %q", c.name, done, err, s.Identity())
		}
		if c.want != nil && (done || !errors.Is(err, c.want) || s.Identity() != "") {
			t.Errorf("%s: done=%v err=%v identity %q, want %v", c.name, done, err, s.Identity(), c.want)
		}
	}
}

func FuzzExternal(f *testing.F) {
	f.Add([]byte(""), true)
	f.Add([]byte("alice@example.org"), false)
	f.Add([]byte("\xff\x00"), true)
	ca := newTestCA()
	cert := ca.issue("Alice", "alice@example.org")
	chain := [][]*x509.Certificate{{cert.Leaf, ca.Cert}}
	f.Fuzz(func(t *testing.T, msg []byte, challengeFirst bool) {
		cs := &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13, VerifiedChains: chain}
		s := NewExternal(context.Background(), cs, nil)
		steps := [][]byte{msg}
		if challengeFirst {
			steps = [][]byte{nil, msg}
		}
		_, done, err := run(s, steps...)
		if done {
			if s.Identity() != "alice@example.org" || (len(msg) > 0 && !strings.EqualFold(string(msg), "alice@example.org")) {
				t.Fatalf("accepted %q as %q", msg, s.Identity())
			}
			return
		}
		if s.Identity() != "" || (!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidCredentials)) {
			t.Fatalf("identity %q err %v", s.Identity(), err)
		}
	})
}

func TestMechanismsOffer(t *testing.T) {
	ca := newTestCA()
	srv := ca.issue("mx.example.org")
	alice := ca.issue("Alice", "alice@example.org")
	tls13 := certSession(t, ca, srv, nil, true, tls.VersionTLS13)
	tls12 := certSession(t, ca, srv, nil, true, tls.VersionTLS12)
	withCert := certSession(t, ca, srv, &alice, true, tls.VersionTLS12)
	leaf := func(*tls.ConnectionState) *x509.Certificate { return srv.Leaf }
	all := []string{"plain", "LOGIN", "cram-md5", "SCRAM-SHA-1", "SCRAM-SHA-256", "OAUTHBEARER", "XOAUTH2", "EXTERNAL"}
	full := &Mechanisms{Enabled: all, Check: newFake().check, Secrets: newMemSecrets(), Tokens: testTokens(), ServerCertificate: leaf}
	for _, c := range []struct {
		name string
		m    *Mechanisms
		cs   *tls.ConnectionState
		want []string
	}{
		{"no TLS", full, nil, nil},
		{"TLS 1.3", full, tls13, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "OAUTHBEARER", "XOAUTH2", "CRAM-MD5", "PLAIN", "LOGIN"}},
		{"TLS 1.2 with end-point", full, tls12, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "OAUTHBEARER", "XOAUTH2", "CRAM-MD5", "PLAIN", "LOGIN"}},
		{"TLS 1.2 without server certificate", &Mechanisms{Enabled: all, Secrets: newMemSecrets()}, tls12, []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"}},
		{"TLS 1.3 without server certificate", &Mechanisms{Enabled: all, Secrets: newMemSecrets()}, tls13, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "CRAM-MD5"}},
		{"client certificate", full, withCert, []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", "EXTERNAL", "OAUTHBEARER", "XOAUTH2", "CRAM-MD5", "PLAIN", "LOGIN"}},
		// No default list here (Postern's configuration resolves
		// auth_mechanisms): nil enables nothing.
		{"nil Enabled", &Mechanisms{Check: newFake().check, Secrets: newMemSecrets(), Tokens: testTokens()}, withCert, nil},
		{"only PLUS", &Mechanisms{Enabled: []string{"SCRAM-SHA-256-PLUS"}, Secrets: newMemSecrets()}, tls13, []string{"SCRAM-SHA-256-PLUS"}},
		{"nothing to check with", &Mechanisms{Enabled: all}, withCert, []string{"EXTERNAL"}},
	} {
		if got := c.m.Mechanisms(c.cs); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
		for _, mech := range preference() {
			s, ok := c.m.Start(context.Background(), strings.ToLower(mech), c.cs)
			if ok != slices.Contains(c.want, mech) || (ok && s == nil) {
				t.Errorf("%s: Start(%s) = %v", c.name, mech, ok)
			}
		}
	}
	if err := CheckMechanisms(all); err != nil {
		t.Error(err)
	}
	if err := CheckMechanisms([]string{"PLAIN", "DIGEST-MD5"}); err == nil || !strings.Contains(err.Error(), "DIGEST-MD5") {
		t.Errorf("CheckMechanisms: %v", err)
	}
}

// TestMechanismsExchanges runs each mechanism through Mechanisms.Start,
// including SCRAM's downgrade protection and RequireCert.
func TestMechanismsExchanges(t *testing.T) {
	ca := newTestCA()
	srv := ca.issue("mx.example.org")
	aliceCert := ca.issue("Alice", "alice@example.org")
	bobCert := ca.issue("Bob", "bob@example.org")
	plain := certSession(t, ca, srv, nil, true, tls.VersionTLS13)
	asAlice := certSession(t, ca, srv, &aliceCert, true, tls.VersionTLS13)
	asBob := certSession(t, ca, srv, &bobCert, true, tls.VersionTLS13)

	secrets := newMemSecrets()
	secrets.add(t, "alice@example.org", "alice", "pw")
	users := func(ctx context.Context, name string) (string, error) {
		switch strings.ToLower(name) {
		case "alice@example.org", "user@example.com":
			return "alice", nil
		case "bob@example.org":
			return "bob", nil
		}
		return "", fmt.Errorf("no user %q: %w", name, ErrInvalidCredentials)
	}
	check := func(ctx context.Context, u, p string) (string, error) {
		if strings.EqualFold(u, "alice@example.org") && p == "pw" {
			return "alice", nil
		}
		return "", ErrInvalidCredentials
	}
	m := &Mechanisms{
		Enabled: []string{"PLAIN", "SCRAM-SHA-256", "OAUTHBEARER", "EXTERNAL", "CRAM-MD5"},
		Check:   check, Secrets: secrets, Tokens: testTokens(), Users: users, Hostname: "mx.example.org",
		RequireCert: func(user string) bool { return user == "alice" },
	}
	start := func(mech string, cs *tls.ConnectionState) Server {
		s, ok := m.Start(context.Background(), mech, cs)
		if !ok {
			t.Fatalf("Start(%s) refused", mech)
		}
		return s
	}
	// PLAIN: alice needs her certificate.
	for _, c := range []struct {
		cs   *tls.ConnectionState
		want bool
	}{{asAlice, true}, {plain, false}, {asBob, false}} {
		s := start("PLAIN", c.cs)
		_, done, err := s.Next([]byte("\x00alice@example.org\x00pw"))
		if done != c.want || (done && s.Identity() != "alice") || (!done && (!errors.Is(err, ErrInvalidCredentials) || s.Identity() != "")) {
			t.Errorf("PLAIN with cert %v: done=%v err=%v identity %q", c.cs == asAlice, done, err, s.Identity())
		}
	}
	// SCRAM-SHA-256 with "y" while -PLUS is offered: downgrade.
	s := start("SCRAM-SHA-256", asAlice)
	if _, _, err := s.Next([]byte("y,,n=alice@example.org,r=abc")); !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("downgrade: %v", err)
	}
	// SCRAM-SHA-256-PLUS through Start, with the tls-exporter binding.
	s = start("SCRAM-SHA-256-PLUS", asAlice)
	cl := newSCRAMClient(HashSHA256, "alice@example.org", "pw", "p=tls-exporter,,", ChannelBindings(asAlice, nil)[CBTLSExporter])
	ch, _, err := s.Next(cl.clientFirst())
	if err != nil {
		t.Fatal(err)
	}
	final, _ := cl.clientFinal(ch)
	if ch, _, err = s.Next(final); err != nil || cl.checkServerFinal(ch) != nil {
		t.Fatalf("SCRAM-PLUS: %q %v", ch, err)
	}
	if _, done, err := s.Next([]byte{}); !done || err != nil || s.Identity() != "alice" {
		t.Fatalf("SCRAM-PLUS end: %v %v %q", done, err, s.Identity())
	}
	// The same without a certificate: RequireCert refuses at the end.
	s = start("SCRAM-SHA-256-PLUS", plain)
	cl = newSCRAMClient(HashSHA256, "alice@example.org", "pw", "p=tls-exporter,,", ChannelBindings(plain, nil)[CBTLSExporter])
	ch, _, _ = s.Next(cl.clientFirst())
	final, _ = cl.clientFinal(ch)
	s.Next(final)
	if _, done, err := s.Next([]byte{}); done || !errors.Is(err, ErrInvalidCredentials) || s.Identity() != "" {
		t.Fatalf("SCRAM-PLUS without cert: %v %v %q", done, err, s.Identity())
	}
	// OAUTHBEARER: the token's user goes through Users.
	s = start("OAUTHBEARER", plain)
	if _, done, err := s.Next([]byte("n,,\x01auth=Bearer " + rfcToken + "\x01\x01")); !done || err != nil || s.Identity() != "alice" {
		t.Errorf("OAUTHBEARER: %v %v %q", done, err, s.Identity())
	}
	// The authzid may be the token's user or the canonical name.
	for _, a := range []string{"user@example.com", "Alice"} {
		s = start("OAUTHBEARER", plain)
		if _, done, err := s.Next([]byte("n,a=" + a + ",\x01auth=Bearer " + rfcToken + "\x01\x01")); !done || err != nil || s.Identity() != "alice" {
			t.Errorf("OAUTHBEARER as %s: %v %v %q", a, done, err, s.Identity())
		}
	}
	// A token for a user the directory does not know.
	m.Tokens = fakeTokens{"stranger": "carol@example.net"}
	s = start("OAUTHBEARER", plain)
	if ch, done, err := s.Next([]byte("n,,\x01auth=Bearer stranger\x01\x01")); done || !errors.Is(err, ErrInvalidCredentials) || string(ch) != oauthBearerError {
		t.Errorf("OAUTHBEARER stranger: %q %v %v", ch, done, err)
	}
	// EXTERNAL: the certificate's email goes through Users.
	for _, a := range []string{"", "bob@example.org", "BOB"} {
		s = start("EXTERNAL", asBob)
		if _, done, err := s.Next([]byte(a)); !done || err != nil || s.Identity() != "bob" {
			t.Errorf("EXTERNAL as %q: %v %v %q", a, done, err, s.Identity())
		}
	}
	// EXTERNAL: the certificate's email goes through Users.
	s = start("EXTERNAL", asBob)
	if _, done, err := s.Next([]byte{}); !done || err != nil || s.Identity() != "bob" {
		t.Errorf("EXTERNAL: %v %v %q", done, err, s.Identity())
	}
}
