package policy

import (
	"fmt"
	"strings"
	"testing"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

// baseZone has example.com with two MX hosts and their addresses.
func baseZone() dnstest.Zone {
	return dnstest.Zone{
		"example.com":     {dnstest.MX(20, "mx2.example.com"), dnstest.MX(10, "mx1.example.com")},
		"mx1.example.com": {dnstest.A("127.0.0.11"), dnstest.AAAA("::1")},
		"mx2.example.com": {dnstest.A("127.0.0.12")},
	}
}

func TestMXPreferenceAndShuffle(t *testing.T) {
	t.Parallel()
	z := dnstest.Zone{
		"shuffle.test": {
			dnstest.MX(20, "c.shuffle.test"), dnstest.MX(10, "a.shuffle.test"),
			dnstest.MX(10, "b.shuffle.test"), dnstest.MX(5, "d.shuffle.test"),
		},
	}
	for _, h := range []string{"a", "b", "c", "d"} {
		z[h+".shuffle.test"] = []dnstest.RR{dnstest.A("127.0.0.1")}
	}
	e := newEnv(t, z, nil)
	seen := map[string]int{}
	for seed := range uint64(40) {
		eng := New(Options{Resolver: e.opts.Resolver, HTTPClient: e.opts.HTTPClient, Rand: lockedRand(seed)})
		e.eng = eng
		p := e.mustPlan(t, "shuffle.test", false)
		seen[hostNames(p)]++
		if p.Implicit || p.Domain != "shuffle.test" {
			t.Errorf("plan %+v", p)
		}
		for _, h := range p.Hosts {
			checkHost(t, h, Opportunistic, SourceNone)
		}
	}
	want1 := "d.shuffle.test a.shuffle.test b.shuffle.test c.shuffle.test"
	want2 := "d.shuffle.test b.shuffle.test a.shuffle.test c.shuffle.test"
	if len(seen) != 2 || seen[want1] == 0 || seen[want2] == 0 {
		t.Errorf("orders seen %v, want both %q and %q", seen, want1, want2)
	}

	// The same random source gives the same order: the shuffle uses the
	// injected Rand and nothing else.
	var orders []string
	for range 2 {
		e.eng = New(Options{Resolver: e.opts.Resolver, HTTPClient: e.opts.HTTPClient, Rand: lockedRand(7)})
		orders = append(orders, hostNames(e.mustPlan(t, "shuffle.test", false)))
	}
	if orders[0] != orders[1] {
		t.Errorf("same seed, different orders: %q", orders)
	}
}

func TestMXAddressesAndSkips(t *testing.T) {
	t.Parallel()
	z := baseZone()
	z["partial.test"] = []dnstest.RR{
		dnstest.MX(10, "gone.partial.test"), dnstest.MX(20, "broken.partial.test"), dnstest.MX(30, "ok.partial.test"),
	}
	z["ok.partial.test"] = []dnstest.RR{dnstest.A("127.0.0.1")}
	z["broken.partial.test"] = []dnstest.RR{dnstest.A("127.0.0.2")}
	z["allbad.test"] = []dnstest.RR{dnstest.MX(10, "broken.partial.test"), dnstest.MX(20, "gone.partial.test")}
	z["nohost.test"] = []dnstest.RR{dnstest.MX(10, "gone.partial.test")}
	e := newEnv(t, z, nil)
	e.dns.ServFail("broken.partial.test")

	p := e.mustPlan(t, "Example.COM.", false)
	if got := hostNames(p); got != "mx1.example.com mx2.example.com" {
		t.Errorf("hosts %q", got)
	}
	if p.Domain != "example.com" {
		t.Errorf("domain %q", p.Domain)
	}
	if got := fmt.Sprint(p.Hosts[0].Addrs); !strings.Contains(got, "127.0.0.11") || !strings.Contains(got, "::1") {
		t.Errorf("mx1 addresses %s", got)
	}

	p = e.mustPlan(t, "partial.test", false)
	if got := hostNames(p); got != "ok.partial.test" {
		t.Errorf("hosts %q, want only the one that resolves", got)
	}

	_, err := e.plan(t, "allbad.test", false)
	wantErr(t, err, false, ErrNoHosts, dns.ErrTemporary)
	if !strings.Contains(err.Error(), "broken.partial.test") || !strings.Contains(err.Error(), "gone.partial.test") {
		t.Errorf("error %q does not name the hosts", err)
	}
	// Every MX host missing: still temporary (the DNS may be fixed).
	_, err = e.plan(t, "nohost.test", false)
	wantErr(t, err, false, ErrNoHosts)
}

func TestMXCap(t *testing.T) {
	t.Parallel()
	z := dnstest.Zone{}
	var mxs []dnstest.RR
	for i := range 15 {
		h := fmt.Sprintf("mx%02d.many.test", i)
		mxs = append(mxs, dnstest.MX(uint16(i), h))
		z[h] = []dnstest.RR{dnstest.A("127.0.0.1")}
	}
	z["many.test"] = mxs
	e := newEnv(t, z, func(o *Options) { o.MaxHosts = 3 })
	if got := hostNames(e.mustPlan(t, "many.test", false)); got != "mx00.many.test mx01.many.test mx02.many.test" {
		t.Errorf("hosts %q", got)
	}
	e.eng = New(Options{Resolver: e.opts.Resolver})
	if got := len(e.mustPlan(t, "many.test", false).Hosts); got != DefaultMaxHosts {
		t.Errorf("%d hosts, want the default cap %d", got, DefaultMaxHosts)
	}
}

func TestImplicitMX(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dnstest.Zone{
		"implicit.test": {dnstest.A("127.0.0.5"), dnstest.TXT("v=spf1 -all")},
		"nothing.test":  {dnstest.TXT("v=spf1 -all")},
	}, nil)
	p := e.mustPlan(t, "implicit.test", false)
	if !p.Implicit || hostNames(p) != "implicit.test" || len(p.Hosts[0].Addrs) != 1 || p.Hosts[0].Addrs[0].String() != "127.0.0.5" {
		t.Errorf("plan %+v", p)
	}
	checkHost(t, p.Hosts[0], Opportunistic, SourceNone)

	// RFC 5321 §5.1: no MX and no address records: a bounce.
	_, err := e.plan(t, "nothing.test", false)
	wantErr(t, err, true, ErrNoHosts, dns.ErrNoData)
}

func TestNullMX(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dnstest.Zone{
		"null.test":     {dnstest.MX(0, ".")},
		"mixed.test":    {dnstest.MX(0, "."), dnstest.MX(10, "mx.mixed.test")},
		"mx.mixed.test": {dnstest.A("127.0.0.1")},
	}, nil)
	_, err := e.plan(t, "null.test", false)
	wantErr(t, err, true, ErrNullMX)
	// A null MX among others is a misconfiguration: the others are used.
	if got := hostNames(e.mustPlan(t, "mixed.test", false)); got != "mx.mixed.test" {
		t.Errorf("hosts %q", got)
	}
}

func TestNXDomainAndServFail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, dnstest.Zone{"fail.test": {dnstest.MX(10, "mx.fail.test")}}, nil)
	e.dns.ServFail("fail.test")

	_, err := e.plan(t, "nonexistent.test", false)
	wantErr(t, err, true, ErrNoHosts, dns.ErrNXDomain)
	if !dns.IsNotFound(err) {
		t.Errorf("dns.IsNotFound(%v) = false", err)
	}

	_, err = e.plan(t, "fail.test", false)
	wantErr(t, err, false, dns.ErrTemporary)
	if errors := err.Error(); !strings.Contains(errors, "MX lookup") {
		t.Errorf("error %q", err)
	}

	for _, d := range []string{"bad..domain", "[127.0.0.1]", "", "ex ample.com"} {
		_, err = e.plan(t, d, false)
		wantErr(t, err, true, ErrNoHosts)
	}
	if !strings.Contains(e.logs.String(), "no delivery plan") {
		t.Error("refusals are not logged")
	}
}
