package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

// newCerts creates a self-signed certificate for localhost in a new
// directory and loads it.
func newCerts(t *testing.T) (*Certs, string) {
	t.Helper()
	dir := t.TempDir()
	cf, kf, err := EnsureSelfSigned(dir, []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCerts(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// handshake runs one TLS handshake over loopback between a server with
// srv and a client with cli, and returns both sides' errors and the
// client's connection state.
func handshake(t *testing.T, srv, cli *tls.Config) (clientErr, serverErr error, cs tls.ConnectionState) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, srv)
		err = tc.Handshake()
		if err == nil {
			// Let the client finish reading the server's last flight.
			_, _ = tc.Write([]byte("x"))
		}
		done <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, cli)
	clientErr = tc.Handshake()
	if clientErr == nil {
		cs = tc.ConnectionState()
		b := make([]byte, 1)
		_, _ = tc.Read(b)
	} else {
		c.Close()
	}
	return clientErr, <-done, cs
}

// client returns a client config that trusts certs' leaf.
func client(c *Certs) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.Leaf())
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	certs, _ := newCerts(t)
	srv := ServerConfig(certs, Policy{})
	tests := []struct {
		name    string
		cli     func(*tls.Config)
		srv     *tls.Config
		ok      bool
		version uint16
		srvErr  string // part of the server's error, when !ok
	}{
		{"tls1.3", func(c *tls.Config) {}, srv, true, tls.VersionTLS13, ""},
		{"tls1.1 only", func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }, srv, false, 0, "version"},
		{"tls1.2 CBC only", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}
		}, srv, false, 0, "cipher suite"},
		{"tls1.2 RSA key exchange only", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
		}, srv, false, 0, "cipher suite"},
		{"tls1.2 ECDHE AES-128-GCM", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		}, srv, true, tls.VersionTLS12, ""},
		{"tls1.2 ECDHE AES-256-GCM", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
		}, srv, true, tls.VersionTLS12, ""},
		{"tls1.2 ECDHE ChaCha20", func(c *tls.Config) {
			c.MaxVersion = tls.VersionTLS12
			c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}
		}, srv, true, tls.VersionTLS12, ""},
		{"min 1.3 refuses 1.2", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 },
			ServerConfig(certs, Policy{MinVersion: tls.VersionTLS13}), false, 0, "version"},
		{"min 1.3 accepts 1.3", func(c *tls.Config) {},
			ServerConfig(certs, Policy{MinVersion: tls.VersionTLS13}), true, tls.VersionTLS13, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := client(certs)
			tt.cli(cli)
			cerr, serr, cs := handshake(t, tt.srv, cli)
			if tt.ok {
				if cerr != nil || serr != nil {
					t.Fatalf("handshake failed: client %v, server %v", cerr, serr)
				}
				if cs.Version != tt.version {
					t.Errorf("version %#x, want %#x", cs.Version, tt.version)
				}
				return
			}
			if cerr == nil || serr == nil {
				t.Fatalf("handshake succeeded (client err %v, server err %v)", cerr, serr)
			}
			t.Logf("client: %v; server: %v", cerr, serr)
			if !strings.Contains(serr.Error(), tt.srvErr) {
				t.Errorf("server error %q does not mention %q", serr, tt.srvErr)
			}
		})
	}
}

func TestCurves(t *testing.T) {
	t.Parallel()
	certs, _ := newCerts(t)
	srv := ServerConfig(certs, Policy{})
	cerr, serr, cs := handshake(t, srv, client(certs))
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	if cs.CurveID != tls.X25519MLKEM768 {
		t.Errorf("default client negotiated %v, want X25519MLKEM768", cs.CurveID)
	}
	for _, curve := range []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384} {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			if curve == tls.X25519MLKEM768 && v == tls.VersionTLS12 {
				continue // hybrid key exchange is TLS 1.3 only
			}
			cli := client(certs)
			cli.CurvePreferences = []tls.CurveID{curve}
			cli.MaxVersion = v
			cerr, serr, cs := handshake(t, srv, cli)
			if cerr != nil || serr != nil {
				t.Errorf("%v on %#x: client %v, server %v", curve, v, cerr, serr)
				continue
			}
			if cs.CurveID != curve {
				t.Errorf("%v on %#x: negotiated %v", curve, v, cs.CurveID)
			}
		}
	}
	if srv.SessionTicketsDisabled {
		t.Error("session tickets are disabled")
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	certs, dir := newCerts(t)
	srv := ServerConfig(certs, Policy{})
	first := certs.Leaf().SerialNumber

	serverSerial := func() *big.Int {
		t.Helper()
		cli := &tls.Config{InsecureSkipVerify: true}
		cerr, serr, cs := handshake(t, srv, cli)
		if cerr != nil || serr != nil {
			t.Fatal(cerr, serr)
		}
		return cs.PeerCertificates[0].SerialNumber
	}
	if got := serverSerial(); got.Cmp(first) != 0 {
		t.Fatalf("serial %v, want %v", got, first)
	}

	// Replace the files with a new certificate and reload.
	other := t.TempDir()
	cf, kf, err := EnsureSelfSigned(other, []string{"localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range [][2]string{{cf, "cert.pem"}, {kf, "key.pem"}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f[1]), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := certs.Reload(); err != nil {
		t.Fatal(err)
	}
	second := certs.Leaf().SerialNumber
	if second.Cmp(first) == 0 {
		t.Fatal("reload kept the old serial")
	}
	if got := serverSerial(); got.Cmp(second) != 0 {
		t.Fatalf("after reload serial %v, want %v", got, second)
	}

	// A bad reload keeps the current certificate.
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = certs.Reload()
	if err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE block") || !strings.Contains(err.Error(), "cert.pem") {
		t.Fatalf("bad reload: %v", err)
	}
	if got := serverSerial(); got.Cmp(second) != 0 {
		t.Fatalf("after bad reload serial %v, want %v", got, second)
	}
}

func TestLoadCertsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cf, kf, err := EnsureSelfSigned(filepath.Join(dir, "a"), []string{"localhost"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	_, kf2, err := EnsureSelfSigned(filepath.Join(dir, "b"), []string{"localhost"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badCert := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(badCert, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, cert, key string
		want            []string
	}{
		{"cert unreadable", missing, kf, []string{"read certificate", missing}},
		{"key unreadable", cf, missing, []string{"read key", missing}},
		{"cert no PEM", junk, kf, []string{junk, "no PEM CERTIFICATE block"}},
		{"key no PEM", cf, junk, []string{junk, "no PEM private key block"}},
		{"cert unparsable", badCert, kf, []string{badCert, "certificate 1"}},
		{"key mismatch", cf, kf2, []string{kf2, cf, "does not go with", "private key does not match public key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCerts(tt.cert, tt.key)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEnsureSelfSigned(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "tls")
	cf, kf, err := EnsureSelfSigned(dir, []string{"mail.example.com", "localhost"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if cf != filepath.Join(dir, "cert.pem") || kf != filepath.Join(dir, "key.pem") {
		t.Errorf("files %s, %s", cf, kf)
	}
	st, err := os.Stat(kf)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	c, err := LoadCerts(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf()
	if !slices.Equal(leaf.DNSNames, []string{"mail.example.com", "localhost"}) {
		t.Errorf("DNS names %v", leaf.DNSNames)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("IP addresses %v", ips)
	}
	if leaf.Subject.CommonName != "mail.example.com" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if !leaf.NotAfter.Equal(testNow.AddDate(1, 0, 0)) || !leaf.NotBefore.Equal(testNow.Add(-time.Hour)) {
		t.Errorf("validity %v to %v", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 129 {
		t.Errorf("serial %v", leaf.SerialNumber)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v", leaf.PublicKeyAlgorithm)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"mail.example.com", "localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: testNow}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}

	// Idempotent: a second call keeps the files.
	before, _ := os.ReadFile(cf)
	keyBefore, _ := os.ReadFile(kf)
	if _, _, err := EnsureSelfSigned(dir, []string{"other.example"}, testNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(cf)
	keyAfter, _ := os.ReadFile(kf)
	if string(before) != string(after) || string(keyBefore) != string(keyAfter) {
		t.Error("second call replaced the files")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want 2 (no temporary files)", len(entries))
	}

	// Without "localhost", no loopback addresses.
	cf2, kf2, err := EnsureSelfSigned(t.TempDir(), []string{"mail.example.com"}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := LoadCerts(cf2, kf2)
	if err != nil {
		t.Fatal(err)
	}
	if l := c2.Leaf(); len(l.IPAddresses) != 0 || !slices.Equal(l.DNSNames, []string{"mail.example.com"}) {
		t.Errorf("SANs %v %v", l.DNSNames, l.IPAddresses)
	}
	if _, _, err := EnsureSelfSigned(t.TempDir(), nil, testNow); err == nil {
		t.Error("no hosts: no error")
	}
}

func TestParseMinVersion(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13} {
		if v, err := ParseMinVersion(s); err != nil || v != want {
			t.Errorf("ParseMinVersion(%q) = %#x, %v", s, v, err)
		}
	}
	for _, s := range []string{"", "1.1", "1.0", "1.4", "TLS1.2"} {
		if _, err := ParseMinVersion(s); err == nil {
			t.Errorf("ParseMinVersion(%q): no error", s)
		}
	}
	certs, _ := newCerts(t)
	if v := ServerConfig(certs, Policy{MinVersion: tls.VersionTLS10}).MinVersion; v != tls.VersionTLS12 {
		t.Errorf("MinVersion 1.0 gives %#x, want TLS 1.2", v)
	}
}
