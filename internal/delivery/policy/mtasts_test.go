package policy

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
)

// stsZone has sts.test with two MX hosts, one in another domain, and an
// MTA-STS TXT record with id "one".
func stsZone() dnstest.Zone {
	return dnstest.Zone{
		"sts.test":          {dnstest.MX(10, "mx.sts.test"), dnstest.MX(20, "backup.other.test")},
		"_mta-sts.sts.test": {dnstest.TXT("v=STSv1; id=one;")},
		"mx.sts.test":       {dnstest.A("127.0.0.1")},
		"backup.other.test": {dnstest.A("127.0.0.2")},
	}
}

func TestMTASTSEnforce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsZone(), nil)
	e.sts.policy(t, "sts.test", stsBody("enforce", "86400", "*.sts.test"))

	p := e.mustPlan(t, "sts.test", false)
	if got := hostNames(p); got != "mx.sts.test" {
		t.Fatalf("hosts %q, want only the one the policy allows", got)
	}
	h := p.Hosts[0]
	checkHost(t, h, Verify, SourceMTASTS)
	if !strings.Contains(h.Reason, "enforce") || !strings.Contains(h.Reason, "sts.test") {
		t.Errorf("reason %q", h.Reason)
	}
	if !strings.Contains(e.logs.String(), "backup.other.test") {
		t.Error("the refused host is not logged")
	}

	// Host.Verify against real handshakes: a WebPKI chain for the MX
	// name passes; another name, an untrusted root, an expired
	// certificate fail.
	ca := e.sts.ca
	inter := ca.intermediate(t, "test intermediate")
	if err := h.Verify(handshake(t, inter.leaf(t, []string{"mx.sts.test"}, leafOpts{}))); err != nil {
		t.Errorf("valid chain refused: %v", err)
	}
	if err := h.Verify(handshake(t, ca.leaf(t, []string{"*.sts.test"}, leafOpts{}))); err != nil {
		t.Errorf("wildcard certificate refused: %v", err)
	}
	bad := map[string]func() error{
		"wrong name": func() error {
			return h.Verify(handshake(t, ca.leaf(t, []string{"other.sts.test.example"}, leafOpts{})))
		},
		"untrusted": func() error {
			return h.Verify(handshake(t, newCA(t, "evil").leaf(t, []string{"mx.sts.test"}, leafOpts{})))
		},
		"expired": func() error {
			return h.Verify(handshake(t, ca.leaf(t, []string{"mx.sts.test"}, leafOpts{expired: true})))
		},
		"no intermediate": func() error {
			c := inter.leaf(t, []string{"mx.sts.test"}, leafOpts{})
			c.Certificate = c.Certificate[:1]
			return h.Verify(handshake(t, c))
		},
	}
	for name, f := range bad {
		if err := f(); err == nil {
			t.Errorf("%s: Verify accepted it", name)
		} else if !strings.HasPrefix(err.Error(), "policy: mx.sts.test: ") {
			t.Errorf("%s: error %q", name, err)
		}
	}
}

func TestMTASTSEnforceNoHostLeft(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsZone(), nil)
	e.sts.policy(t, "sts.test", stsBody("enforce", "86400", "mail.elsewhere.test"))
	_, err := e.plan(t, "sts.test", false)
	// RFC 8461 §4.2: temporary, with the reason.
	wantErr(t, err, false, ErrNoHosts)
	if !strings.Contains(err.Error(), "not allowed by the MTA-STS policy of sts.test") {
		t.Errorf("error %q gives no reason", err)
	}
}

func TestMTASTSTestingAndNone(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"testing", "none"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, stsZone(), nil)
			e.sts.policy(t, "sts.test", stsBody(mode, "86400", "mx.sts.test"))
			p := e.mustPlan(t, "sts.test", false)
			if got := hostNames(p); got != "mx.sts.test backup.other.test" {
				t.Errorf("hosts %q: a %s policy must not filter", got, mode)
			}
			for _, h := range p.Hosts {
				checkHost(t, h, Opportunistic, SourceNone)
				if !strings.Contains(h.Reason, mode+" mode") {
					t.Errorf("reason %q", h.Reason)
				}
			}
			if e.sts.fetches("sts.test") != 1 {
				t.Errorf("%d fetches", e.sts.fetches("sts.test"))
			}
		})
	}
}

func TestMTASTSNoPolicy(t *testing.T) {
	t.Parallel()
	enforce := stsBody("enforce", "86400", "mx.sts.test")
	cases := map[string]func(e *env){
		"bad policy file": func(e *env) { e.sts.policy(t, "sts.test", "version: STSv1\nmode: enforce\n") },
		"html":            func(e *env) { e.sts.set(t, "sts.test", stsResponse{contentType: "text/html", body: enforce}) },
		"not found":       func(e *env) { e.sts.set(t, "sts.test", stsResponse{status: http.StatusNotFound, body: enforce}) },
		"redirect": func(e *env) {
			e.sts.set(t, "sts.test", stsResponse{status: http.StatusFound, location: "https://mta-sts.sts.test/x", body: enforce})
		},
		"too large": func(e *env) {
			e.sts.policy(t, "sts.test", enforce+strings.Repeat("x-pad: "+strings.Repeat("a", 100)+"\n", 700))
		},
		"cert for another name": func(e *env) {
			e.sts.policy(t, "sts.test", enforce)
			e.sts.badCert("sts.test", e.sts.ca.leaf(t, []string{"mta-sts.other.test"}, leafOpts{}))
		},
		"untrusted cert": func(e *env) {
			e.sts.policy(t, "sts.test", enforce)
			e.sts.badCert("sts.test", newCA(t, "evil").leaf(t, []string{"mta-sts.sts.test"}, leafOpts{}))
		},
		"two TXT records": func(e *env) {
			e.sts.policy(t, "sts.test", enforce)
			e.dns.Set("_mta-sts.sts.test", dnstest.TXT("v=STSv1; id=one;"), dnstest.TXT("v=STSv1; id=two;"))
		},
		"no TXT record": func(e *env) {
			e.sts.policy(t, "sts.test", enforce)
			e.dns.Remove("_mta-sts.sts.test")
		},
		"TXT SERVFAIL": func(e *env) {
			e.sts.policy(t, "sts.test", enforce)
			e.dns.ServFail("_mta-sts.sts.test")
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, stsZone(), nil)
			setup(e)
			p := e.mustPlan(t, "sts.test", false)
			if got := hostNames(p); got != "mx.sts.test backup.other.test" {
				t.Errorf("hosts %q: no policy must apply", got)
			}
			for _, h := range p.Hosts {
				checkHost(t, h, Opportunistic, SourceNone)
			}
		})
	}
}

func TestMTASTSCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsZone(), nil)
	e.sts.policy(t, "sts.test", stsBody("enforce", "3600", "mx.sts.test"))
	for range 3 {
		if got := hostNames(e.mustPlan(t, "sts.test", false)); got != "mx.sts.test" {
			t.Fatalf("hosts %q", got)
		}
	}
	if n := e.sts.fetches("sts.test"); n != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", n)
	}

	// A new id: fetch again, and the new policy applies.
	e.sts.policy(t, "sts.test", stsBody("enforce", "3600", "backup.other.test"))
	e.dns.Set("_mta-sts.sts.test", dnstest.TXT("v=STSv1; id=two;"))
	if got := hostNames(e.mustPlan(t, "sts.test", false)); got != "backup.other.test" {
		t.Errorf("after the id changed: hosts %q", got)
	}
	if n := e.sts.fetches("sts.test"); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}

	// Same id after max_age: fetch again.
	e.sts.policy(t, "sts.test", stsBody("testing", "3600", "backup.other.test"))
	e.clock.Advance(30 * time.Minute)
	if got := hostNames(e.mustPlan(t, "sts.test", false)); got != "backup.other.test" {
		t.Errorf("before expiry: hosts %q", got)
	}
	e.clock.Advance(31 * time.Minute)
	if got := hostNames(e.mustPlan(t, "sts.test", false)); got != "mx.sts.test backup.other.test" {
		t.Errorf("after expiry: hosts %q, want the new testing policy", got)
	}
	if n := e.sts.fetches("sts.test"); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
}

func TestMTASTSRefreshFailureKeepsPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsZone(), nil)
	e.sts.policy(t, "sts.test", stsBody("enforce", "3600", "mx.sts.test"))
	e.mustPlan(t, "sts.test", false)

	// RFC 8461 §5.1: the refresh fails; the cached, unexpired policy
	// stays in force. The failed id is not fetched again at once.
	e.dns.Set("_mta-sts.sts.test", dnstest.TXT("v=STSv1; id=two;"))
	e.sts.set(t, "sts.test", stsResponse{status: http.StatusInternalServerError})
	for range 2 {
		if got := hostNames(e.mustPlan(t, "sts.test", false)); got != "mx.sts.test" {
			t.Errorf("hosts %q: the cached policy must still apply", got)
		}
	}
	if n := e.sts.fetches("sts.test"); n != 2 {
		t.Errorf("%d fetches, want 2 (no retry of a failed id before %v)", n, fetchRetry)
	}
	// The TXT record disappears: still the cached policy (RFC 8461 §3.1).
	e.dns.Remove("_mta-sts.sts.test")
	if got := hostNames(e.mustPlan(t, "sts.test", false)); got != "mx.sts.test" {
		t.Errorf("hosts %q: the cached policy must still apply", got)
	}
	// Once it expires, no policy.
	e.dns.Set("_mta-sts.sts.test", dnstest.TXT("v=STSv1; id=two;"))
	e.clock.Advance(2 * time.Hour)
	if got := hostNames(e.mustPlan(t, "sts.test", false)); got != "mx.sts.test backup.other.test" {
		t.Errorf("hosts %q: an expired policy must not apply", got)
	}
	if n := e.sts.fetches("sts.test"); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
}

func TestMTASTSCacheBound(t *testing.T) {
	t.Parallel()
	z := stsZone()
	z["two.test"] = []dnstest.RR{dnstest.MX(10, "mx.sts.test")}
	z["_mta-sts.two.test"] = []dnstest.RR{dnstest.TXT("v=STSv1; id=one;")}
	e := newEnv(t, z, func(o *Options) { o.MTASTSCacheSize = 1 })
	e.sts.policy(t, "sts.test", stsBody("enforce", "3600", "mx.sts.test"))
	e.sts.policy(t, "two.test", stsBody("enforce", "3600", "mx.sts.test"))
	for _, d := range []string{"sts.test", "two.test", "sts.test"} {
		e.mustPlan(t, d, false)
	}
	if a, b := e.sts.fetches("sts.test"), e.sts.fetches("two.test"); a != 2 || b != 1 {
		t.Errorf("fetches %d, %d; want 2, 1 with a cache of one domain", a, b)
	}
}

func TestMTASTSConcurrentFetchOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, stsZone(), nil)
	e.sts.policy(t, "sts.test", stsBody("enforce", "3600", "mx.sts.test"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			p, err := e.plan(t, "sts.test", false)
			if err != nil || hostNames(p) != "mx.sts.test" {
				t.Errorf("plan %v, %v", p, err)
			}
		})
	}
	wg.Wait()
	if n := e.sts.fetches("sts.test"); n != 1 {
		t.Errorf("%d fetches, want 1", n)
	}
}
