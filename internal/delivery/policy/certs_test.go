package policy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	chain []*x509.Certificate // cert and the CAs above it, up to the root
	pool  *x509.CertPool      // the root alone
}

func nextSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic(err)
	}
	return n
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub, signer any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// caTemplate is the template of a CA certificate named name, valid
// from an hour ago for a day.
func caTemplate(name string) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
}

// newCA returns a self-signed root CA.
func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, tmpl := newKey(t), caTemplate(name)
	c := mustCert(t, tmpl, tmpl, &key.PublicKey, key)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, chain: []*x509.Certificate{c}, pool: pool}
}

// intermediate returns a CA signed by ca.
func (ca *testCA) intermediate(t *testing.T, name string) *testCA {
	t.Helper()
	key, tmpl := newKey(t), caTemplate(name)
	c := mustCert(t, tmpl, ca.cert, &key.PublicKey, ca.key)
	return &testCA{cert: c, key: key, chain: append([]*x509.Certificate{c}, ca.chain...), pool: ca.pool}
}

// leafOpts tune a leaf certificate.
type leafOpts struct {
	expired bool // valid until an hour ago
}

// leaf issues a server certificate for names; the chain served is the
// leaf and every CA up to, not including, the root.
func (ca *testCA) leaf(t *testing.T, names []string, o leafOpts) tls.Certificate {
	t.Helper()
	key := newKey(t)
	notAfter := time.Now().Add(24 * time.Hour)
	if o.expired {
		notAfter = time.Now().Add(-time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: nextSerial(),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-2 * time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	c := mustCert(t, tmpl, ca.cert, &key.PublicKey, ca.key)
	out := tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
	for _, p := range ca.chain[:len(ca.chain)-1] {
		out.Certificate = append(out.Certificate, p.Raw)
	}
	return out
}

// withRoot returns cert with the root CA appended to the served chain.
func (ca *testCA) withRoot(cert tls.Certificate) tls.Certificate {
	cert.Certificate = append(cert.Certificate[:len(cert.Certificate):len(cert.Certificate)], ca.chain[len(ca.chain)-1].Raw)
	return cert
}

// handshake serves cert on a loopback listener, connects to it as the
// SMTP client does (InsecureSkipVerify) and returns the client's view.
func handshake(t *testing.T, cert tls.Certificate) tls.ConnectionState {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		s := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		err = s.Handshake()
		if err == nil {
			// Wait for the client to finish reading before closing.
			_, _ = s.Read(make([]byte, 1))
		}
		done <- nil
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example"})
	if err := cl.Handshake(); err != nil {
		t.Fatal(err)
	}
	cs := cl.ConnectionState()
	cl.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return cs
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// stsResponse is what the test HTTPS server answers for one policy host.
type stsResponse struct {
	status      int // 0 means 200
	contentType string
	body        string
	location    string
}

// stsServer is an HTTPS server for MTA-STS policies of many domains, with
// a certificate per mta-sts.DOMAIN name.
type stsServer struct {
	srv   *httptest.Server
	ca    *testCA
	mu    sync.Mutex
	resp  map[string]stsResponse     // by Host
	certs map[string]tls.Certificate // by SNI name
	hits  map[string]int             // fetches by Host
}

func newSTSServer(t *testing.T) *stsServer {
	t.Helper()
	s := &stsServer{
		ca:    newCA(t, "test WebPKI root"),
		resp:  make(map[string]stsResponse),
		certs: make(map[string]tls.Certificate),
		hits:  make(map[string]int),
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.TLS = &tls.Config{GetCertificate: s.getCert}
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func (s *stsServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	host := strings.ToLower(r.Host)
	s.hits[host]++
	resp, ok := s.resp[host]
	s.mu.Unlock()
	if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
		http.NotFound(w, r)
		return
	}
	ct := resp.contentType
	if ct == "" {
		ct = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	if resp.location != "" {
		w.Header().Set("Location", resp.location)
	}
	if resp.status != 0 {
		w.WriteHeader(resp.status)
	}
	_, _ = w.Write([]byte(resp.body))
}

func (s *stsServer) getCert(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.certs[hello.ServerName]
	if !ok {
		return nil, nil // fall back to httptest's own certificate
	}
	return &c, nil
}

// policy serves body for domain with a valid certificate.
func (s *stsServer) policy(t *testing.T, domain, body string) {
	s.set(t, domain, stsResponse{body: body})
}

// set serves resp for domain with a valid certificate.
func (s *stsServer) set(t *testing.T, domain string, resp stsResponse) {
	t.Helper()
	name := "mta-sts." + domain
	s.mu.Lock()
	_, haveCert := s.certs[name]
	s.mu.Unlock()
	var cert tls.Certificate
	if !haveCert {
		cert = s.ca.leaf(t, []string{name}, leafOpts{})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !haveCert {
		s.certs[name] = cert
	}
	s.resp[name] = resp
}

// badCert makes the server present cert for mta-sts.domain.
func (s *stsServer) badCert(domain string, cert tls.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs["mta-sts."+domain] = cert
}

func (s *stsServer) fetches(domain string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits["mta-sts."+domain]
}

// client returns an HTTP client that trusts the test root and reaches
// mta-sts.*:443 at the test server (and nothing else).
func (s *stsServer) client() *http.Client {
	addr := s.srv.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if !strings.HasPrefix(a, "mta-sts.") || !strings.HasSuffix(a, ":443") {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errRefusedInTest}
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: s.ca.pool},
	}}
}

type testErr string

func (e testErr) Error() string { return string(e) }

const errRefusedInTest = testErr("test network: only mta-sts.*:443 is reachable")
