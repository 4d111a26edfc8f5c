package remote

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/delivery/policy"
	"postern/internal/dns/dnstest"
	"postern/internal/testcert"
	"postern/internal/testkit"
)

// These tests run the Deliverer with the real policy.Engine against a
// real DNS server (dnstest; the AD bit only on the names of zones meant
// to be signed), a real HTTPS server for MTA-STS policies and SMTP
// servers on loopback that present the certificate each test chooses:
// issue 12 §7, "Outbound TLS policy can be skipped".

// world is one test's network: the DNS, a WebPKI root, an MTA-STS
// HTTPS server, a clock, and a Deliverer whose Planner is a
// policy.Engine on them.
type world struct {
	*fixture
	dns   *dnstest.Server
	ca    *testcert.CA
	clock *testkit.Clock
	sts   *httptest.Server
	mu    sync.Mutex
	pols  map[string]string // MTA-STS policy body by policy host (mta-sts.DOMAIN)
	opts  policy.Options
}

// newWorld starts the servers with zone; the Engine applies minimum and
// trusts ca (the WebPKI of the test). servers are the SMTP servers
// reachable on port 25 of their addresses.
func newWorld(t *testing.T, ca *testcert.CA, zone dnstest.Zone, minimum map[string]policy.Mode, servers ...*fakeServer) *world {
	t.Helper()
	w := &world{
		fixture: newFixture(t, nil, servers...),
		dns:     dnstest.New(t, zone),
		ca:      ca,
		clock:   testkit.NewClock(time.Now()),
		pols:    map[string]string{},
	}
	w.sts = httptest.NewUnstartedServer(http.HandlerFunc(w.serveSTS))
	w.sts.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c := w.ca.Issue(testcert.Spec{DNSNames: []string{hello.ServerName}})
		return &c, nil
	}}
	w.sts.StartTLS()
	t.Cleanup(w.sts.Close)
	w.opts = policy.Options{
		Resolver:   w.dns.Resolver(),
		HTTPClient: w.stsClient(),
		Roots:      w.ca.Pool,
		Minimum:    minimum,
		Now:        w.clock.Now,
		Logger:     w.d.Logger,
		Metrics:    policy.NewMetrics(nil), // the world's own: tests count apart
	}
	w.d.Planner = policy.New(w.opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", w.logs.String())
		}
	})
	return w
}

// serveSTS answers policy fetches with the body set by policy.
func (w *world) serveSTS(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	body, ok := w.pols[strings.ToLower(r.Host)]
	w.mu.Unlock()
	if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
		http.NotFound(rw, r)
		return
	}
	rw.Header().Set("Content-Type", "text/plain")
	rw.Write([]byte(body))
}

// stsClient reaches mta-sts.*:443 at the test HTTPS server and trusts
// w.ca, as a test HTTPClient for the Engine.
func (w *world) stsClient() *http.Client {
	addr := w.sts.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if !strings.HasPrefix(a, "mta-sts.") || !strings.HasSuffix(a, ":443") {
				return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError("only mta-sts.*:443 in this test")}
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: w.ca.Pool},
	}}
}

// mtasts publishes an MTA-STS policy for domain: the TXT record and the
// policy file, in mode, allowing the mx patterns.
func (w *world) mtasts(domain, mode string, mx ...string) {
	w.dns.Set("_mta-sts."+domain, dnstest.TXT("v=STSv1; id=1;"))
	body := "version: STSv1\r\nmode: " + mode + "\r\n"
	for _, m := range mx {
		body += "mx: " + m + "\r\n"
	}
	body += "max_age: 86400\r\n"
	w.mu.Lock()
	w.pols["mta-sts."+domain] = body
	w.mu.Unlock()
}

// deliverWith delivers a message to rcpt and requires the protection
// label (Result.TLS).
func (w *world) deliverWith(t *testing.T, rcpt, label string) {
	t.Helper()
	res := w.one(t, testMsg(rcpt))
	delivered(t, res)
	if res[0].TLS != label {
		t.Fatalf("delivery to %s: TLS %q, want %q", rcpt, res[0].TLS, label)
	}
}

// tlsaEE returns a DANE-EE(3) SPKI(1) SHA-256(1) record for cert.
func tlsaEE(cert tls.Certificate) dnstest.RR {
	sum := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	return dnstest.TLSA(3, 1, 1, hex.EncodeToString(sum[:]))
}

// starttlsMX starts an SMTP server on ip offering STARTTLS with cert.
func starttlsMX(t *testing.T, ip string, cert tls.Certificate) *fakeServer {
	return newFake(t, ip, func(s *fakeServer) {
		s.Ext = []string{"STARTTLS"}
		s.TLS = serverTLS(cert)
	})
}

// sharedMX is a zone where the domains dane.test (DNSSEC-signed: the
// test marks its names authentic) and plain.test both have the one MX
// host mx.shared.test at ip.
func sharedMX(ip string, tlsa ...dnstest.RR) dnstest.Zone {
	return dnstest.Zone{
		"dane.test":               {dnstest.MX(10, "mx.shared.test")},
		"plain.test":              {dnstest.MX(10, "mx.shared.test")},
		"sts.test":                {dnstest.MX(10, "mx.shared.test")},
		"mx.shared.test":          {dnstest.A(ip)},
		"_25._tcp.mx.shared.test": tlsa,
	}
}

// signDANE marks the DNSSEC-signed names of sharedMX authentic.
func signDANE(d *dnstest.Server) {
	d.Authentic("dane.test", "mx.shared.test", "_25._tcp.mx.shared.test")
}

// TestPoolDANESessionNotReusedForVerify: a session verified by DANE
// (the TLSA record pins the self-signed certificate of the MX) must not
// carry mail for a domain whose configured minimum is "verify": that
// needs a WebPKI certificate for the MX name, which this server does not
// have. A fresh connection defers such mail; a pooled one must too.
func TestPoolDANESessionNotReusedForVerify(t *testing.T) {
	self, _ := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"mx.shared.test"}})
	s := starttlsMX(t, "127.0.0.2", self)
	w := newWorld(t, testcert.NewCA(), sharedMX("127.0.0.2", tlsaEE(self)), map[string]policy.Mode{"plain.test": policy.Verify}, s)
	signDANE(w.dns)

	w.deliverWith(t, "a@dane.test", "dane")
	failed(t, w.one(t, testMsg("b@plain.test")), false, "certificate not trusted")
	if _, _, _, msgs := s.stats(); len(msgs) != 1 {
		t.Errorf("server got %d messages, want 1: the pooled DANE session carried mail that needs WebPKI", len(msgs))
	}
	// The DANE domain still gets its mail.
	delivered(t, w.one(t, testMsg("c@dane.test")))
}

// TestPoolWebPKISessionNotReusedForDANE: a session opened for an
// MTA-STS domain (a WebPKI certificate for the MX name) must not carry
// mail for a DANE domain whose TLSA record does not match that
// certificate: a mis-issued WebPKI certificate is exactly what DANE
// stops.
func TestPoolWebPKISessionNotReusedForDANE(t *testing.T) {
	other, _ := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"mx.shared.test"}})
	ca := testcert.NewCA()
	s := starttlsMX(t, "127.0.0.2", ca.Issue(testcert.Spec{DNSNames: []string{"mx.shared.test"}}))
	w := newWorld(t, ca, sharedMX("127.0.0.2", tlsaEE(other)), nil, s)
	signDANE(w.dns)
	w.mtasts("sts.test", "enforce", "mx.shared.test")

	w.deliverWith(t, "a@sts.test", "mta-sts")
	failed(t, w.one(t, testMsg("b@dane.test")), false, "no TLSA record")
	if _, _, _, msgs := s.stats(); len(msgs) != 1 {
		t.Errorf("server got %d messages, want 1: the pooled WebPKI session carried mail for a DANE domain whose TLSA does not match", len(msgs))
	}
}

// TestPoolReusedWhenCertificateMeetsBoth: a server whose certificate is
// both WebPKI-valid for its name and pinned by TLSA serves a DANE domain
// and a "verify" domain over one session: checking a pooled session
// against each message keeps pooling where it is safe.
func TestPoolReusedWhenCertificateMeetsBoth(t *testing.T) {
	ca := testcert.NewCA()
	cert := ca.Issue(testcert.Spec{DNSNames: []string{"mx.shared.test"}})
	s := starttlsMX(t, "127.0.0.2", cert)
	w := newWorld(t, ca, sharedMX("127.0.0.2", tlsaEE(cert)), map[string]policy.Mode{"plain.test": policy.Verify}, s)
	signDANE(w.dns)
	for i, rcpt := range []string{"a@dane.test", "b@plain.test", "c@dane.test"} {
		res := w.one(t, testMsg(rcpt))
		delivered(t, res)
		// The label is the protection this message got, not the one
		// the session was dialed for.
		if want := []string{"dane", "starttls", "dane"}[i]; res[0].TLS != want {
			t.Errorf("%s: TLS %q, want %q", rcpt, res[0].TLS, want)
		}
	}
	if conns, _, _, msgs := s.stats(); conns != 1 || len(msgs) != 3 {
		t.Errorf("conns %d msgs %d, want 1 and 3", conns, len(msgs))
	}
}

// TestPoolRecheckedAtReuse: the certificate of a pooled session is
// checked with the time of each reuse: once it has expired (by the
// injected clock), the session no longer carries mail that needs it.
func TestPoolRecheckedAtReuse(t *testing.T) {
	ca := testcert.NewCA()
	s := starttlsMX(t, "127.0.0.2", ca.Issue(testcert.Spec{DNSNames: []string{"mx.shared.test"}, Valid: time.Hour}))
	w := newWorld(t, ca, sharedMX("127.0.0.2"), map[string]policy.Mode{"plain.test": policy.Verify}, s)
	delivered(t, w.one(t, testMsg("a@plain.test")))
	w.clock.Advance(2 * time.Hour)
	failed(t, w.one(t, testMsg("b@plain.test")), false, "expired")
	if _, _, _, msgs := s.stats(); len(msgs) != 1 {
		t.Errorf("server got %d messages, want 1: a session with an expired certificate was reused", len(msgs))
	}
}

// TestTLSRequiredNoKeepsConfiguredMinimum: "TLS-Required: No" waives
// the recipient's policy (DANE, MTA-STS), never the operator's own
// tls_minimum (RFC 8689 §4.2.2).
func TestTLSRequiredNoKeepsConfiguredMinimum(t *testing.T) {
	self, _ := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"mx.shared.test"}})
	for _, c := range []struct {
		name    string
		tls     bool           // the MX offers STARTTLS with a self-signed certificate
		minimum policy.Mode    // for plain.test
		domain  string         // recipient domain
		setup   func(w *world) // DNS and MTA-STS
		ok      bool           // delivered
		errText string         // else the failure says this
		label   string         // Result.TLS when delivered
	}{
		{name: "verify minimum, no STARTTLS", minimum: policy.Verify, domain: "plain.test", errText: "requires STARTTLS"},
		{name: "verify minimum, self-signed", tls: true, minimum: policy.Verify, domain: "plain.test", errText: "certificate not trusted"},
		{name: "encrypt minimum, no STARTTLS", minimum: policy.Encrypt, domain: "plain.test", errText: "requires STARTTLS"},
		{name: "encrypt minimum, self-signed", tls: true, minimum: policy.Encrypt, domain: "plain.test", ok: true, label: "starttls"},
		{name: "MTA-STS waived", domain: "sts.test", ok: true, label: "plain",
			setup: func(w *world) { w.mtasts("sts.test", "enforce", "mx.shared.test") }},
		{name: "DANE waived", tls: true, domain: "dane.test", ok: true, label: "starttls",
			setup: func(w *world) {
				w.dns.Set("_25._tcp.mx.shared.test", dnstest.TLSA(3, 1, 1, strings.Repeat("ab", 32)))
				signDANE(w.dns)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newFake(t, "127.0.0.2", func(s *fakeServer) {
				if c.tls {
					s.Ext = []string{"STARTTLS"}
					s.TLS = serverTLS(self)
				}
			})
			min := map[string]policy.Mode{}
			if c.minimum != policy.Opportunistic {
				min["plain.test"] = c.minimum
			}
			w := newWorld(t, testcert.NewCA(), sharedMX("127.0.0.2"), min, s)
			if c.setup != nil {
				c.setup(w)
			}
			msg := testMsg("x@" + c.domain)
			msg.TLSOptional = true
			res := w.one(t, msg)
			_, _, _, msgs := s.stats()
			if !c.ok {
				failed(t, res, false, c.errText)
				if len(msgs) != 0 {
					t.Errorf("the message went out despite tls_minimum %v", c.minimum)
				}
				return
			}
			delivered(t, res)
			if res[0].TLS != c.label {
				t.Errorf("TLS %q, want %q", res[0].TLS, c.label)
			}
		})
	}
}

// testingFailures reads postern_policy_mtasts_testing_failures_total for
// reason from m, gathered as /metrics would (0 when absent).
func testingFailures(t *testing.T, m *policy.Metrics, reason string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.STSTestingFailures)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "postern_policy_mtasts_testing_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "reason", reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestMTASTSTestingModeChecks: under an MTA-STS policy in testing mode
// mail is delivered whatever the certificate, but what enforce mode
// would have refused is logged at WARN and counted (RFC 8461 §5).
func TestMTASTSTestingModeChecks(t *testing.T) {
	self, _ := testcert.SelfSigned(testcert.Spec{DNSNames: []string{"mx.shared.test"}})
	for _, c := range []struct {
		name   string
		cert   string // "self", "valid" or "" (no STARTTLS)
		reason string // "" when enforce mode would have delivered too
		label  string
	}{
		{"self-signed certificate", "self", "certificate", "starttls"},
		{"no STARTTLS", "", "starttls", "plain"},
		{"valid certificate", "valid", "", "starttls"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ca := testcert.NewCA()
			var cert *tls.Certificate
			switch c.cert {
			case "self":
				cert = &self
			case "valid":
				v := ca.Issue(testcert.Spec{DNSNames: []string{"mx.shared.test"}})
				cert = &v
			}
			s := newFake(t, "127.0.0.2", func(s *fakeServer) {
				if cert != nil {
					s.Ext = []string{"STARTTLS"}
					s.TLS = serverTLS(*cert)
				}
			})
			w := newWorld(t, ca, sharedMX("127.0.0.2"), nil, s)
			w.mtasts("sts.test", "testing", "mx.shared.test")
			before := map[string]float64{}
			for _, r := range []string{"certificate", "starttls"} {
				before[r] = testingFailures(t, w.opts.Metrics, r)
			}
			for range 2 { // a fresh session, then a pooled one
				res := w.one(t, testMsg("a@sts.test"))
				delivered(t, res)
				if res[0].TLS != c.label {
					t.Errorf("TLS %q, want %q", res[0].TLS, c.label)
				}
			}
			logs := w.logs.String()
			warned := strings.Contains(logs, "level=WARN") && strings.Contains(logs, "MTA-STS testing")
			for _, r := range []string{"certificate", "starttls"} {
				want := 0.0
				if r == c.reason {
					want = 2
				}
				if got := testingFailures(t, w.opts.Metrics, r) - before[r]; got != want {
					t.Errorf("failures counted for reason %s: %v, want %v", r, got, want)
				}
			}
			if c.reason != "" && !warned {
				t.Errorf("no WARN about the MTA-STS testing failure:\n%s", logs)
			}
			if c.reason == "" && warned {
				t.Errorf("a WARN although enforce mode would have delivered:\n%s", logs)
			}
		})
	}
}
