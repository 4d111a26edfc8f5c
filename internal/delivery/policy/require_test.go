package policy

import (
	"strings"
	"testing"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

func TestConfiguredMinimum(t *testing.T) {
	t.Parallel()
	z := baseZone()
	for _, d := range []string{"strict.test", "lax.test"} {
		z[d] = []dnstest.RR{dnstest.MX(10, "mx."+d)}
		z["mx."+d] = []dnstest.RR{dnstest.A("127.0.0.1")}
	}
	cert := newCA(t, "self").leaf(t, []string{"x"}, leafOpts{})
	for k, v := range daneZone(dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo)))) {
		z[k] = v
	}
	e := newEnv(t, z, func(o *Options) {
		o.Minimum = map[string]Mode{"*": Encrypt, "Strict.Test.": Verify, "lax.test": Opportunistic, "dane.test": Verify}
	})
	e.dns.Authentic("dane.test", "mx.dane.test", "mx2.dane.test", "_25._tcp.mx.dane.test")

	// The default "*".
	for _, h := range e.mustPlan(t, "example.com", false).Hosts {
		checkHost(t, h, Encrypt, SourceConfig)
		if h.Verify(handshake(t, cert)) != nil {
			t.Error("encrypt must not check the certificate")
		}
	}
	// A listed domain, lower than the default.
	checkHost(t, e.mustPlan(t, "lax.test", false).Hosts[0], Opportunistic, SourceNone)

	// "verify": WebPKI and the MX name.
	h := e.mustPlan(t, "strict.test", false).Hosts[0]
	checkHost(t, h, Verify, SourceConfig)
	if err := h.Verify(handshake(t, e.sts.ca.leaf(t, []string{"mx.strict.test"}, leafOpts{}))); err != nil {
		t.Errorf("valid certificate refused: %v", err)
	}
	if err := h.Verify(handshake(t, e.sts.ca.leaf(t, []string{"strict.test"}, leafOpts{}))); err == nil {
		t.Error("certificate for another name accepted")
	}
	if err := h.Verify(handshake(t, cert)); err == nil {
		t.Error("self-signed certificate accepted")
	}

	// The minimum never weakens what DANE asks; it raises the rest.
	p := e.mustPlan(t, "dane.test", false)
	checkHost(t, p.Hosts[0], Verify, SourceDANE)
	checkHost(t, p.Hosts[1], Verify, SourceConfig)
	if err := p.Hosts[0].Verify(handshake(t, cert)); err != nil {
		t.Errorf("DANE host: %v", err)
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]Mode{"none": Opportunistic, "Encrypt": Encrypt, " verify ": Verify} {
		m, err := ParseMode(s)
		if err != nil || m != want {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
		if strings.TrimSpace(strings.ToLower(s)) != m.String() {
			t.Errorf("%v.String() = %q", m, m.String())
		}
	}
	if _, err := ParseMode("dane"); err == nil {
		t.Error("ParseMode(dane) succeeded")
	}
}

func TestRequireTLS(t *testing.T) {
	t.Parallel()
	cert := newCA(t, "self").leaf(t, []string{"x"}, leafOpts{})
	tlsa := dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo)))
	z := stsZone()
	for k, v := range baseZone() {
		z[k] = v
	}
	for k, v := range daneZone(tlsa) {
		z[k] = v
	}
	z["testing.test"] = []dnstest.RR{dnstest.MX(10, "mx.sts.test")}
	z["_mta-sts.testing.test"] = []dnstest.RR{dnstest.TXT("v=STSv1; id=1")}
	z["strict.test"] = []dnstest.RR{dnstest.MX(10, "mx.sts.test")}
	z["unusable.test"] = []dnstest.RR{dnstest.MX(10, "mx.unusable.test")}
	z["mx.unusable.test"] = []dnstest.RR{dnstest.A("127.0.0.1")}
	z["_25._tcp.mx.unusable.test"] = []dnstest.RR{dnstest.TLSA(1, 1, 1, hexOf(sha256Of([]byte("x"))))}
	z["flaky.test"] = []dnstest.RR{dnstest.MX(10, "mx.dane.test"), dnstest.MX(20, "mx2.dane.test")}
	e := newEnv(t, z, func(o *Options) { o.Minimum = map[string]Mode{"strict.test": Verify} })
	e.dns.Authentic("dane.test", "mx.dane.test", "mx2.dane.test", "_25._tcp.mx.dane.test",
		"unusable.test", "mx.unusable.test", "_25._tcp.mx.unusable.test", "flaky.test")
	e.sts.policy(t, "sts.test", stsBody("enforce", "3600", "mx.sts.test", "backup.other.test"))
	e.sts.policy(t, "testing.test", stsBody("testing", "3600", "mx.sts.test"))

	// RFC 8689 §4.2.1: no authenticated MX and verified certificate
	// possible: a bounce that says why.
	for _, d := range []string{"example.com", "testing.test", "strict.test", "unusable.test"} {
		_, err := e.plan(t, d, true)
		wantErr(t, err, true, ErrRequireTLS)
		if err != nil && !strings.Contains(err.Error(), "REQUIRETLS") {
			t.Errorf("%s: error %q", d, err)
		}
		// Without REQUIRETLS the same domain is deliverable.
		e.mustPlan(t, d, false)
	}

	// MTA-STS enforce: every host qualifies.
	p := e.mustPlan(t, "sts.test", true)
	if got := hostNames(p); got != "mx.sts.test backup.other.test" {
		t.Errorf("hosts %q", got)
	}
	for _, h := range p.Hosts {
		checkHost(t, h, Verify, SourceMTASTS)
		if !strings.Contains(h.Reason, "REQUIRETLS") {
			t.Errorf("reason %q", h.Reason)
		}
	}
	// DANE: only the host with TLSA records qualifies.
	p = e.mustPlan(t, "dane.test", true)
	if got := hostNames(p); got != "mx.dane.test" {
		t.Errorf("hosts %q", got)
	}
	checkHost(t, p.Hosts[0], Verify, SourceDANE)

	// A host that might qualify was skipped for a temporary reason: not
	// a bounce yet.
	e.dns.ServFail("_25._tcp.mx.dane.test")
	_, err := e.plan(t, "flaky.test", true)
	wantErr(t, err, false, ErrRequireTLS, dns.ErrTemporary)
}
