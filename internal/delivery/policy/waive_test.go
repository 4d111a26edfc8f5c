package policy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/dns/dnstest"
)

// dialFunc is a dns.ContextDialer.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

func ptr(cs tls.ConnectionState) *tls.ConnectionState { return &cs }

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestTLSOptional: "TLS-Required: No" waives DANE and MTA-STS, never the
// configured minimum (RFC 8689 §4.2.2), and REQUIRETLS wins over it.
func TestTLSOptional(t *testing.T) {
	t.Parallel()
	cert := newCA(t, "self").leaf(t, []string{"x"}, leafOpts{})
	z := stsZone()
	for k, v := range daneZone(dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo)))) {
		z[k] = v
	}
	z["strict.test"] = []dnstest.RR{dnstest.MX(10, "mx.sts.test")}
	z["_mta-sts.strict.test"] = []dnstest.RR{dnstest.TXT("v=STSv1; id=1")}
	z["enc.test"] = []dnstest.RR{dnstest.MX(10, "mx.sts.test")}
	e := newEnv(t, z, func(o *Options) {
		o.Minimum = map[string]Mode{"strict.test": Verify, "enc.test": Encrypt, "dane.test": Encrypt}
	})
	e.dns.Authentic("dane.test", "mx.dane.test", "mx2.dane.test", "_25._tcp.mx.dane.test")
	e.sts.policy(t, "sts.test", stsBody("enforce", "3600", "mx.sts.test"))
	e.sts.policy(t, "strict.test", stsBody("enforce", "3600", "mx.sts.test"))
	plan := func(domain string, requireTLS bool) *Plan {
		t.Helper()
		p, err := e.eng.Plan(context.Background(), Request{Domain: domain, RequireTLS: requireTLS, TLSOptional: true})
		if err != nil {
			t.Fatalf("Plan(%s): %v", domain, err)
		}
		return p
	}

	// MTA-STS waived: opportunistic, nothing to verify or audit.
	h := plan("sts.test", false).Hosts[0]
	checkHost(t, h, Opportunistic, SourceNone)
	if h.Verify(handshake(t, cert)) != nil || h.Audit(nil) != nil {
		t.Error("a waived MTA-STS policy still checks")
	}
	if !strings.Contains(h.Reason, "TLS-Required: No") {
		t.Errorf("reason %q", h.Reason)
	}
	// The operator's "verify" is kept, whatever MTA-STS says.
	h = plan("strict.test", false).Hosts[0]
	checkHost(t, h, Verify, SourceConfig)
	if h.Verify(handshake(t, cert)) == nil {
		t.Error("the configured verify accepted a self-signed certificate")
	}
	checkHost(t, plan("enc.test", false).Hosts[0], Encrypt, SourceConfig)
	// DANE waived; the minimum applies.
	checkHost(t, plan("dane.test", true).Hosts[0], Verify, SourceDANE) // REQUIRETLS wins
	p := plan("dane.test", false)
	for _, h := range p.Hosts {
		checkHost(t, h, Encrypt, SourceConfig)
		if len(h.TLSA) != 0 {
			t.Errorf("%s: TLSA %v kept", h.Name, h.TLSA)
		}
	}
	// Not even looked up: a failing TLSA lookup, which keeps a DANE host
	// out (RFC 7672 §2.2), does not here.
	e.dns.ServFail("_25._tcp.mx.dane.test")
	if got := hostNames(plan("dane.test", false)); got != "mx.dane.test mx2.dane.test" {
		t.Errorf("hosts %q", got)
	}
}

// TestMTASTSTestingAudit: a host of a domain whose policy is in testing
// mode is delivered to whatever the TLS (Mode stays opportunistic), and
// Host.Audit says what enforce mode would have refused.
func TestMTASTSTestingAudit(t *testing.T) {
	t.Parallel()
	z := stsZone()
	z["both.test"] = []dnstest.RR{dnstest.MX(10, "mx.sts.test")}
	z["_mta-sts.both.test"] = []dnstest.RR{dnstest.TXT("v=STSv1; id=1")}
	e := newEnv(t, z, func(o *Options) { o.Minimum = map[string]Mode{"both.test": Verify} })
	e.sts.policy(t, "sts.test", stsBody("testing", "86400", "mx.sts.test"))
	e.sts.policy(t, "both.test", stsBody("testing", "86400", "mx.sts.test"))
	mx0 := e.opts.Metrics.STSTestingFailures.WithLabelValues(auditMX)
	before := counterValue(t, mx0)
	p := e.mustPlan(t, "sts.test", false)
	if got := counterValue(t, mx0) - before; got != 1 {
		t.Errorf("hosts outside the testing policy counted %v, want 1 (backup.other.test)", got)
	}
	h, other := p.Hosts[0], p.Hosts[1]
	checkHost(t, h, Opportunistic, SourceNone)
	if err := h.Audit(ptr(handshake(t, e.sts.ca.leaf(t, []string{"mx.sts.test"}, leafOpts{})))); err != nil {
		t.Errorf("valid certificate: %v", err)
	}
	for name, c := range map[string]struct {
		cs     func() *tls.ConnectionState
		reason string
	}{
		"self-signed": {func() *tls.ConnectionState {
			return ptr(handshake(t, newCA(t, "evil").leaf(t, []string{"mx.sts.test"}, leafOpts{})))
		}, AuditCertificate},
		"expired": {func() *tls.ConnectionState {
			return ptr(handshake(t, e.sts.ca.leaf(t, []string{"mx.sts.test"}, leafOpts{expired: true})))
		}, AuditCertificate},
		"plaintext": {func() *tls.ConnectionState { return nil }, AuditNoTLS},
	} {
		ctr := e.opts.Metrics.STSTestingFailures.WithLabelValues(c.reason)
		n := counterValue(t, ctr)
		err := h.Audit(c.cs())
		var ae *AuditError
		if !errors.As(err, &ae) || ae.Reason != c.reason || ae.Host != "mx.sts.test" {
			t.Errorf("%s: Audit = %v, want an AuditError %s", name, err, c.reason)
		}
		if got := counterValue(t, ctr) - n; got != 1 {
			t.Errorf("%s: counted %v, want 1", name, got)
		}
	}
	// The host the policy does not list was counted by Plan; the
	// connection itself is not audited again.
	if other.Audit(nil) != nil {
		t.Error("a host outside the policy audited")
	}
	// A configured "verify" checks the same thing and refuses: no audit.
	h = e.mustPlan(t, "both.test", false).Hosts[0]
	checkHost(t, h, Verify, SourceConfig)
	if h.Audit(nil) != nil {
		t.Error("a verified host audited")
	}
}

// TestMTASTSPolicyHostThroughResolver: without an HTTPClient, the Engine
// finds the policy host mta-sts.DOMAIN through its Resolver (the DNS
// server of the test is the only one that knows the name) and connects
// to the address found; the Dialer is never given a name.
func TestMTASTSPolicyHostThroughResolver(t *testing.T) {
	t.Parallel()
	z := stsZone()
	z["mta-sts.sts.test"] = []dnstest.RR{dnstest.A("127.0.0.53")}
	var (
		mu     sync.Mutex
		dialed []string
		srv    string // the HTTPS server's real address, set below
	)
	e := newEnv(t, z, func(o *Options) {
		o.HTTPClient = nil
		o.Dialer = dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, addr)
			to := srv
			mu.Unlock()
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || ap != netip.MustParseAddrPort("127.0.0.53:443") {
				return nil, &net.OpError{Op: "dial", Net: network, Err: errRefusedInTest}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, to)
		})
	})
	mu.Lock()
	srv = e.sts.srv.Listener.Addr().String()
	mu.Unlock()
	e.sts.policy(t, "sts.test", stsBody("enforce", "86400", "mx.sts.test"))
	p := e.mustPlan(t, "sts.test", false)
	if got := hostNames(p); got != "mx.sts.test" {
		t.Fatalf("hosts %q: the enforce policy was not applied (dialed %q)", got, dialed)
	}
	checkHost(t, p.Hosts[0], Verify, SourceMTASTS)
	mu.Lock()
	defer mu.Unlock()
	if e.sts.fetches("sts.test") != 1 || len(dialed) != 1 {
		t.Errorf("fetches %d, dialed %q", e.sts.fetches("sts.test"), dialed)
	}

	// The name gone from the DNS: no policy, and no other resolver asked.
	e2 := newEnv(t, stsZone(), func(o *Options) {
		o.HTTPClient = nil
		o.Dialer = dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			t.Errorf("dialed %s for a policy host the DNS does not know", addr)
			return nil, errRefusedInTest
		})
	})
	e2.sts.policy(t, "sts.test", stsBody("enforce", "86400", "mx.sts.test"))
	if got := hostNames(e2.mustPlan(t, "sts.test", false)); got != "mx.sts.test backup.other.test" {
		t.Errorf("hosts %q without a reachable policy", got)
	}
}
