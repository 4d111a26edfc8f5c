package policy

import (
	"crypto/sha512"
	"crypto/tls"
	"strings"
	"testing"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

// daneZone has dane.test, DNSSEC-signed, with two MX hosts: mx (TLSA
// records set by the test) and mx2 (no TLSA records).
func daneZone(tlsa ...dnstest.RR) dnstest.Zone {
	return dnstest.Zone{
		"dane.test":             {dnstest.MX(10, "mx.dane.test"), dnstest.MX(20, "mx2.dane.test")},
		"mx.dane.test":          {dnstest.A("127.0.0.1")},
		"mx2.dane.test":         {dnstest.A("127.0.0.2")},
		"_25._tcp.mx.dane.test": tlsa,
	}
}

func newDANEEnv(t *testing.T, tlsa ...dnstest.RR) *env {
	t.Helper()
	e := newEnv(t, daneZone(tlsa...), nil)
	e.dns.Authentic("dane.test", "mx.dane.test", "mx2.dane.test", "_25._tcp.mx.dane.test", "_25._tcp.mx2.dane.test")
	return e
}

// daneHost plans dane.test and returns its first host, checked to be
// mx.dane.test with mode and source.
func daneHost(t *testing.T, e *env, mode Mode, src Source) Host {
	t.Helper()
	p := e.mustPlan(t, "dane.test", false)
	if len(p.Hosts) == 0 || p.Hosts[0].Name != "mx.dane.test" {
		t.Fatalf("hosts %q", hostNames(p))
	}
	checkHost(t, p.Hosts[0], mode, src)
	return p.Hosts[0]
}

func TestDANEEE(t *testing.T) {
	t.Parallel()
	// RFC 7672 §3.1.1: DANE-EE ignores names and dates: a self-signed,
	// expired certificate for another name passes when its key matches.
	cert := newCA(t, "self").leaf(t, []string{"unrelated.invalid"}, leafOpts{expired: true})
	other := newCA(t, "other").leaf(t, []string{"mx.dane.test"}, leafOpts{})
	leaf := cert.Leaf
	sum512 := sha512.Sum512(leaf.Raw)
	for name, rr := range map[string]dnstest.RR{
		"3 1 1": dnstest.TLSA(3, 1, 1, hexOf(sha256Of(leaf.RawSubjectPublicKeyInfo))),
		"3 0 1": dnstest.TLSA(3, 0, 1, hexOf(sha256Of(leaf.Raw))),
		"3 1 0": dnstest.TLSA(3, 1, 0, hexOf(leaf.RawSubjectPublicKeyInfo)),
		"3 0 2": dnstest.TLSA(3, 0, 2, hexOf(sum512[:])),
	} {
		t.Run(name, func(t *testing.T) {
			e := newDANEEnv(t, rr, dnstest.TLSA(1, 1, 1, hexOf(sha256Of([]byte("unusable, dropped")))))
			h := daneHost(t, e, Verify, SourceDANE)
			if len(h.TLSA) != 1 || h.TLSA[0].Usage != 3 {
				t.Errorf("TLSA %+v, want the one usable record", h.TLSA)
			}
			if !strings.Contains(h.Reason, "_25._tcp.mx.dane.test") {
				t.Errorf("reason %q", h.Reason)
			}
			if err := h.Verify(handshake(t, cert)); err != nil {
				t.Errorf("matching certificate refused: %v", err)
			}
			err := h.Verify(handshake(t, other))
			if err == nil || !strings.Contains(err.Error(), "DANE") {
				t.Errorf("other certificate: %v, want a DANE error", err)
			}
		})
	}
}

func TestDANETA(t *testing.T) {
	t.Parallel()
	root := newCA(t, "dane root")
	ta := root.intermediate(t, "dane TA")
	for name, rr := range map[string]dnstest.RR{
		"2 0 1 intermediate": dnstest.TLSA(2, 0, 1, hexOf(sha256Of(ta.cert.Raw))),
		"2 1 1 root":         dnstest.TLSA(2, 1, 1, hexOf(sha256Of(root.cert.RawSubjectPublicKeyInfo))),
	} {
		t.Run(name, func(t *testing.T) {
			e := newDANEEnv(t, rr)
			h := daneHost(t, e, Verify, SourceDANE)
			chained := func(c tls.Certificate) tls.Certificate { return root.withRoot(c) }
			good := map[string]tls.Certificate{
				"MX name":     chained(ta.leaf(t, []string{"mx.dane.test"}, leafOpts{})),
				"domain name": chained(ta.leaf(t, []string{"dane.test"}, leafOpts{})),
				"wildcard":    chained(ta.leaf(t, []string{"*.dane.test"}, leafOpts{})),
			}
			for what, c := range good {
				if err := h.Verify(handshake(t, c)); err != nil {
					t.Errorf("%s: refused: %v", what, err)
				}
			}
			noTA := ta.leaf(t, []string{"mx.dane.test"}, leafOpts{})
			noTA.Certificate = noTA.Certificate[:1]
			bad := map[string]tls.Certificate{
				"other name":   chained(ta.leaf(t, []string{"mx.other.test"}, leafOpts{})),
				"other CA":     newCA(t, "other").leaf(t, []string{"mx.dane.test"}, leafOpts{}),
				"expired":      chained(ta.leaf(t, []string{"mx.dane.test"}, leafOpts{expired: true})),
				"TA not shown": noTA,
			}
			for what, c := range bad {
				if err := h.Verify(handshake(t, c)); err == nil {
					t.Errorf("%s: accepted", what)
				} else if !strings.HasPrefix(err.Error(), "policy: mx.dane.test: DANE: ") {
					t.Errorf("%s: error %q", what, err)
				}
			}
		})
	}
}

func TestDANENotAuthentic(t *testing.T) {
	t.Parallel()
	cert := newCA(t, "self").leaf(t, []string{"mx.dane.test"}, leafOpts{})
	rr := dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo)))
	// RFC 7672 §2.2: the MX, address and TLSA answers must all be
	// authentic; drop one at a time.
	for _, insecure := range []string{"dane.test", "mx.dane.test", "_25._tcp.mx.dane.test"} {
		t.Run(insecure, func(t *testing.T) {
			e := newDANEEnv(t, rr)
			e.dns.Reset(insecure)
			h := daneHost(t, e, Opportunistic, SourceNone)
			if h.TLSA != nil || h.Verify(tls.ConnectionState{}) != nil {
				t.Errorf("host %+v: want no DANE", h)
			}
		})
	}
}

func TestDANEUnusable(t *testing.T) {
	t.Parallel()
	e := newDANEEnv(t,
		dnstest.TLSA(1, 1, 1, hexOf(sha256Of([]byte("PKIX-EE")))), // usage unusable in SMTP
		dnstest.TLSA(3, 1, 1, "abcd"),                             // digest of the wrong length
		dnstest.TLSA(3, 2, 1, hexOf(sha256Of([]byte("sel")))),     // unknown selector
		dnstest.TLSA(3, 1, 9, "abcd"),                             // unknown matching type
	)
	h := daneHost(t, e, Encrypt, SourceDANE)
	if !strings.Contains(h.Reason, "unusable") {
		t.Errorf("reason %q", h.Reason)
	}
	if err := h.Verify(handshake(t, newCA(t, "any").leaf(t, []string{"x.invalid"}, leafOpts{}))); err != nil {
		t.Errorf("Encrypt checks no certificate, got %v", err)
	}
}

func TestDANELookupFailure(t *testing.T) {
	t.Parallel()
	cert := newCA(t, "self").leaf(t, []string{"mx.dane.test"}, leafOpts{})
	e := newDANEEnv(t, dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo))))
	e.dns.ServFail("_25._tcp.mx.dane.test")
	// RFC 7672 §2.2: the host whose TLSA lookup fails is skipped.
	p := e.mustPlan(t, "dane.test", false)
	if got := hostNames(p); got != "mx2.dane.test" {
		t.Errorf("hosts %q", got)
	}
	checkHost(t, p.Hosts[0], Opportunistic, SourceNone)

	e.dns.ServFail("_25._tcp.mx2.dane.test")
	_, err := e.plan(t, "dane.test", false)
	wantErr(t, err, false, ErrNoHosts, dns.ErrTemporary)
	if !strings.Contains(err.Error(), "TLSA") {
		t.Errorf("error %q", err)
	}
}

func TestDANEImplicitMX(t *testing.T) {
	t.Parallel()
	cert := newCA(t, "self").leaf(t, []string{"x"}, leafOpts{})
	e := newEnv(t, dnstest.Zone{
		"solo.test":          {dnstest.A("127.0.0.1")},
		"_25._tcp.solo.test": {dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo)))},
	}, nil)
	e.dns.Authentic("solo.test", "_25._tcp.solo.test")
	p := e.mustPlan(t, "solo.test", false)
	if !p.Implicit {
		t.Error("not implicit")
	}
	checkHost(t, p.Hosts[0], Verify, SourceDANE)
	if err := p.Hosts[0].Verify(handshake(t, cert)); err != nil {
		t.Error(err)
	}
}

func TestDANEBeatsMTASTS(t *testing.T) {
	t.Parallel()
	cert := newCA(t, "self").leaf(t, []string{"x"}, leafOpts{})
	z := daneZone(dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo))))
	z["_mta-sts.dane.test"] = []dnstest.RR{dnstest.TXT("v=STSv1; id=1")}
	e := newEnv(t, z, nil)
	e.dns.Authentic("dane.test", "mx.dane.test", "mx2.dane.test", "_25._tcp.mx.dane.test")
	// The policy names neither host: mx.dane.test stays, under DANE;
	// mx2.dane.test, without TLSA records, is refused by MTA-STS.
	e.sts.policy(t, "dane.test", stsBody("enforce", "3600", "mail.dane.test"))
	p := e.mustPlan(t, "dane.test", false)
	if got := hostNames(p); got != "mx.dane.test" {
		t.Fatalf("hosts %q", got)
	}
	checkHost(t, p.Hosts[0], Verify, SourceDANE)

	// With the policy naming mx2, it is kept under MTA-STS.
	e.sts.policy(t, "dane.test", stsBody("enforce", "3600", "mx2.dane.test"))
	e.dns.Set("_mta-sts.dane.test", dnstest.TXT("v=STSv1; id=2"))
	p = e.mustPlan(t, "dane.test", false)
	if got := hostNames(p); got != "mx.dane.test mx2.dane.test" {
		t.Fatalf("hosts %q", got)
	}
	checkHost(t, p.Hosts[0], Verify, SourceDANE)
	checkHost(t, p.Hosts[1], Verify, SourceMTASTS)
}

func TestDANEUnusableWithMTASTS(t *testing.T) {
	t.Parallel()
	z := daneZone(dnstest.TLSA(0, 0, 1, hexOf(sha256Of([]byte("PKIX-TA")))))
	z["_mta-sts.dane.test"] = []dnstest.RR{dnstest.TXT("v=STSv1; id=1")}
	e := newEnv(t, z, nil)
	e.dns.Authentic("dane.test", "mx.dane.test", "mx2.dane.test", "_25._tcp.mx.dane.test")
	e.sts.policy(t, "dane.test", stsBody("enforce", "3600", "*.dane.test"))
	// Unusable TLSA records authenticate nothing: MTA-STS applies.
	checkHost(t, daneHost(t, e, Verify, SourceMTASTS), Verify, SourceMTASTS)
}

func TestVerifyNeedsHandshake(t *testing.T) {
	t.Parallel()
	cert := newCA(t, "self").leaf(t, []string{"x"}, leafOpts{})
	e := newDANEEnv(t, dnstest.TLSA(3, 1, 1, hexOf(sha256Of(cert.Leaf.RawSubjectPublicKeyInfo))))
	h := daneHost(t, e, Verify, SourceDANE)
	if err := h.Verify(tls.ConnectionState{}); err == nil {
		t.Error("a connection without a handshake passed")
	}
	cs := handshake(t, cert)
	cs.PeerCertificates = nil
	if err := h.Verify(cs); err == nil {
		t.Error("a connection without certificates passed")
	}
}
