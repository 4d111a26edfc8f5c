package dns_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

// shortTimeout keeps the tests of timeouts quick.
const shortTimeout = 100 * time.Millisecond

func TestLookupRecordTypes(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"example.com": {
			dnstest.MX(10, "MX1.Example.com."),
			dnstest.MX(20, "mx2.example.com"),
			dnstest.TXT("v=spf1 -all"),
			dnstest.TXT("second"),
		},
		"mx1.example.com":                  {dnstest.A("192.0.2.1"), dnstest.A("192.0.2.2"), dnstest.AAAA("2001:db8::1")},
		"v4only.example.com":               {dnstest.A("192.0.2.3")},
		"v6only.example.com":               {dnstest.AAAA("2001:db8::3")},
		"_25._tcp.mx1.example.com":         {dnstest.TLSA(3, 1, 1, "0123456789abcdef"), dnstest.TLSA(2, 0, 0, "ff")},
		dnstest.ReverseName("192.0.2.1"):   {dnstest.PTR("mx1.example.com")},
		dnstest.ReverseName("2001:db8::1"): {dnstest.PTR("MX1.example.com."), dnstest.PTR("alias.example.com")},
	})
	r := srv.Resolver()
	ctx := context.Background()

	for _, name := range []string{"example.com", "example.com.", "EXAMPLE.COM"} {
		mxs, _, err := r.LookupMX(ctx, name)
		if err != nil {
			t.Fatalf("LookupMX(%q): %v", name, err)
		}
		slices.SortFunc(mxs, func(a, b dns.MX) int { return int(a.Pref) - int(b.Pref) })
		want := []dns.MX{{Host: "mx1.example.com", Pref: 10}, {Host: "mx2.example.com", Pref: 20}}
		if !slices.Equal(mxs, want) {
			t.Errorf("LookupMX(%q) = %v, want %v", name, mxs, want)
		}
	}

	txts, _, err := r.LookupTXT(ctx, "example.com")
	slices.Sort(txts)
	if err != nil || !slices.Equal(txts, []string{"second", "v=spf1 -all"}) {
		t.Errorf("LookupTXT = %q, %v", txts, err)
	}

	for host, want := range map[string][]string{
		"mx1.example.com":    {"192.0.2.1", "192.0.2.2", "2001:db8::1"},
		"v4only.example.com": {"192.0.2.3"},
		"v6only.example.com": {"2001:db8::3"},
	} {
		ips, _, err := r.LookupIP(ctx, host)
		if err != nil {
			t.Errorf("LookupIP(%q): %v", host, err)
			continue
		}
		var got []string
		for _, ip := range ips {
			got = append(got, ip.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("LookupIP(%q) = %v, want %v", host, got, want)
		}
	}

	tlsas, _, err := r.LookupTLSA(ctx, "_25._tcp.mx1.example.com")
	if err != nil || len(tlsas) != 2 {
		t.Fatalf("LookupTLSA = %v, %v", tlsas, err)
	}
	slices.SortFunc(tlsas, func(a, b dns.TLSA) int { return int(b.Usage) - int(a.Usage) })
	if got := tlsas[0]; got.Usage != 3 || got.Selector != 1 || got.MatchingType != 1 || string(got.Data) != "\x01\x23\x45\x67\x89\xab\xcd\xef" {
		t.Errorf("TLSA[0] = %+v", got)
	}
	if got := tlsas[1]; got.Usage != 2 || got.Selector != 0 || got.MatchingType != 0 || string(got.Data) != "\xff" {
		t.Errorf("TLSA[1] = %+v", got)
	}

	for ip, want := range map[string][]string{
		"192.0.2.1":          {"mx1.example.com"},
		"::ffff:192.0.2.1":   {"mx1.example.com"},
		"2001:db8::1":        {"alias.example.com", "mx1.example.com"},
		"2001:0db8:0:0::0:1": {"alias.example.com", "mx1.example.com"},
	} {
		names, _, err := r.LookupPTR(ctx, netip.MustParseAddr(ip))
		slices.Sort(names)
		if err != nil || !slices.Equal(names, want) {
			t.Errorf("LookupPTR(%s) = %q, %v; want %q", ip, names, err, want)
		}
	}
	if _, _, err := r.LookupPTR(ctx, netip.MustParseAddr("192.0.2.99")); !errors.Is(err, dns.ErrNXDomain) {
		t.Errorf("LookupPTR(unknown) = %v, want NXDOMAIN", err)
	}
	if _, _, err := r.LookupPTR(ctx, netip.Addr{}); !dns.IsNotFound(err) {
		t.Errorf("LookupPTR(zero Addr) = %v, want not found", err)
	}
}

func TestNullMX(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{"nomail.example": {dnstest.MX(0, ".")}})
	mxs, _, err := srv.Resolver().LookupMX(context.Background(), "nomail.example")
	if err != nil || len(mxs) != 1 || mxs[0] != (dns.MX{Host: "", Pref: 0}) {
		t.Errorf("LookupMX(null MX) = %+v, %v; want one MX with Host \"\"", mxs, err)
	}
}

func TestFailures(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"exists.example": {dnstest.A("192.0.2.1")},
		"broken.example": {dnstest.MX(10, "mx.example")},
		"slow.example":   {dnstest.MX(10, "mx.example")},
	})
	srv.ServFail("broken.example")
	srv.Timeout("slow.example")
	r := srv.Client(dns.Config{Timeout: shortTimeout})
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		want     error
		notFound bool
		msg      string
		queries  int
	}{
		{"missing.example", dns.ErrNXDomain, true, "dns: lookup MX missing.example: no such domain", 1},
		{"exists.example.", dns.ErrNoData, true, "dns: lookup MX exists.example: no records of that type", 1},
		{"broken.example", dns.ErrTemporary, false, "dns: lookup MX broken.example: temporary failure: server answered SERVFAIL", 1},
		{"slow.example", dns.ErrTemporary, false, "dns: lookup MX slow.example: temporary failure: udp 127.0.0.1:", 2},
		{"bad..name", dns.ErrNXDomain, true, `dns: lookup MX "bad..name": no such domain: not a domain name`, 0},
		{"", dns.ErrNXDomain, true, `dns: lookup MX "": no such domain: not a domain name`, 0},
	} {
		before := srv.Queries()
		start := time.Now()
		mxs, _, err := r.LookupMX(ctx, tc.name)
		elapsed := time.Since(start)
		if !errors.Is(err, tc.want) || mxs != nil {
			t.Errorf("LookupMX(%q) = %v, %v; want %v", tc.name, mxs, err, tc.want)
			continue
		}
		if dns.IsNotFound(err) != tc.notFound {
			t.Errorf("LookupMX(%q): IsNotFound(%v) = %v", tc.name, err, !tc.notFound)
		}
		if !strings.HasPrefix(err.Error(), tc.msg) {
			t.Errorf("LookupMX(%q): error %q, want it to start with %q", tc.name, err, tc.msg)
		}
		if q := srv.Queries() - before; q != tc.queries {
			t.Errorf("LookupMX(%q): %d queries, want %d", tc.name, q, tc.queries)
		}
		if tc.queries == 2 && (elapsed < 2*shortTimeout || elapsed > 2*shortTimeout+3*time.Second) {
			t.Errorf("LookupMX(%q) took %v, want about %v (a try and a retry)", tc.name, elapsed, 2*shortTimeout)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{"slow.example": {dnstest.A("192.0.2.1")}})
	srv.Timeout("slow.example")
	r := srv.Client(dns.Config{Timeout: 10 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, _, err := r.LookupTXT(ctx, "slow.example")
	if !errors.Is(err, dns.ErrTemporary) || !errors.Is(err, context.Canceled) {
		t.Errorf("LookupTXT with a cancelled context: %v, want temporary and context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("LookupTXT returned after %v, not at the cancellation", d)
	}
}

func TestAuthentic(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"signed.example":          {dnstest.MX(10, "mx.signed.example")},
		"mx.signed.example":       {dnstest.A("192.0.2.1"), dnstest.AAAA("2001:db8::1")},
		"_25._tcp.signed.example": {dnstest.CNAME("tlsa.signed.example")},
		"tlsa.signed.example":     {dnstest.TLSA(3, 1, 1, "00")},
		"_25._tcp.partly.example": {dnstest.CNAME("tlsa.unsigned.example")},
		"tlsa.unsigned.example":   {dnstest.TLSA(3, 1, 1, "00")},
		"mixed.example":           {dnstest.A("192.0.2.2"), dnstest.AAAA("2001:db8::2")},
		"v4.signed.example":       {dnstest.A("192.0.2.3")},
		"unsigned.example":        {dnstest.MX(10, "mx.unsigned.example")},
		"half.example":            {dnstest.A("192.0.2.4"), dnstest.AAAA("2001:db8::4")},
	})
	srv.AuthenticType("A", "half.example")
	srv.Authentic("signed.example", "mx.signed.example", "_25._tcp.signed.example", "tlsa.signed.example",
		"_25._tcp.partly.example", "v4.signed.example", "missing.signed.example")
	ctx := context.Background()
	trusting := srv.Client(dns.Config{TrustAD: true})
	distrusting := srv.Client(dns.Config{TrustAD: false})

	type lookup func(r dns.Resolver) (dns.Result, error)
	for _, tc := range []struct {
		what string
		f    lookup
		want bool // with TrustAD
	}{
		{"MX signed", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupMX(ctx, "signed.example")
			return res, err
		}, true},
		{"MX unsigned", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupMX(ctx, "unsigned.example")
			return res, err
		}, false},
		{"IP both signed", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupIP(ctx, "mx.signed.example")
			return res, err
		}, true},
		{"IP A signed, AAAA NODATA signed", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupIP(ctx, "v4.signed.example")
			return res, err
		}, true},
		{"IP A signed, AAAA not", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupIP(ctx, "half.example")
			return res, err
		}, false},
		{"A only signed", func(r dns.Resolver) (dns.Result, error) {
			ips, res, err := r.LookupIP(ctx, "half.example")
			if len(ips) != 2 {
				t.Errorf("LookupIP(half) = %v", ips)
			}
			return res, err
		}, false},
		{"IP unsigned", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupIP(ctx, "mixed.example")
			return res, err
		}, false},
		{"TLSA through signed CNAME", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupTLSA(ctx, "_25._tcp.signed.example")
			return res, err
		}, true},
		{"TLSA through CNAME to unsigned", func(r dns.Resolver) (dns.Result, error) {
			_, res, err := r.LookupTLSA(ctx, "_25._tcp.partly.example")
			return res, err
		}, false},
	} {
		for _, trust := range []bool{true, false} {
			r := distrusting
			if trust {
				r = trusting
			}
			res, err := tc.f(r)
			if err != nil {
				t.Errorf("%s: %v", tc.what, err)
				continue
			}
			if want := tc.want && trust; res.Authentic != want {
				t.Errorf("%s, TrustAD %v: Authentic %v, want %v", tc.what, trust, res.Authentic, want)
			}
		}
	}

	// An authenticated denial says so; an unauthenticated one does not.
	_, res, err := trusting.LookupTLSA(ctx, "missing.signed.example")
	if !errors.Is(err, dns.ErrNXDomain) || !res.Authentic {
		t.Errorf("signed NXDOMAIN: %v, Authentic %v; want NXDOMAIN, true", err, res.Authentic)
	}
	_, res, err = trusting.LookupTLSA(ctx, "_25._tcp.unsigned.example")
	if !errors.Is(err, dns.ErrNXDomain) || res.Authentic {
		t.Errorf("unsigned NXDOMAIN: %v, Authentic %v; want NXDOMAIN, false", err, res.Authentic)
	}
	_, res, err = distrusting.LookupTLSA(ctx, "missing.signed.example")
	if !errors.Is(err, dns.ErrNXDomain) || res.Authentic {
		t.Errorf("signed NXDOMAIN without TrustAD: %v, Authentic %v; want NXDOMAIN, false", err, res.Authentic)
	}
}

func TestTCPFallback(t *testing.T) {
	var rrs []dnstest.RR
	var want []string
	for i := range 30 {
		s := strings.Repeat(string(rune('a'+i%26)), 200)
		rrs = append(rrs, dnstest.TXT(s))
		want = append(want, s)
	}
	srv := dnstest.New(t, dnstest.Zone{
		"big.example":    rrs,
		"small.example":  {dnstest.TXT("x")},
		"medium.example": {dnstest.TXT(strings.Repeat("m", 900))}, // fits in EDNS0's 1232 octets
	})
	r := srv.Resolver()
	got, _, err := r.LookupTXT(context.Background(), "big.example")
	slices.Sort(got)
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("LookupTXT(big) = %d records, %v; want all %d", len(got), err, len(want))
	}
	if q := srv.Queries(); q != 2 {
		t.Errorf("%d queries for a truncated answer, want 2 (UDP then TCP)", q)
	}
	if _, _, err := r.LookupTXT(context.Background(), "small.example"); err != nil || srv.Queries() != 3 {
		t.Errorf("LookupTXT(small) = %v after %d queries in all, want 3", err, srv.Queries())
	}
	if _, _, err := r.LookupTXT(context.Background(), "medium.example"); err != nil || srv.Queries() != 4 {
		t.Errorf("LookupTXT(medium) = %v after %d queries in all, want 4 (fits in UDP with EDNS0)", err, srv.Queries())
	}
}

func TestCNAMEChains(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"a.example":        {dnstest.CNAME("B.example.")},
		"b.example":        {dnstest.CNAME("c.example")},
		"c.example":        {dnstest.MX(5, "mx.example"), dnstest.A("192.0.2.7"), dnstest.TXT("at c")},
		"dangling.example": {dnstest.CNAME("nowhere.example")},
		"loop1.example":    {dnstest.CNAME("loop2.example")},
		"loop2.example":    {dnstest.CNAME("loop1.example")},
		"empty.example":    {dnstest.CNAME("c.example")},
	})
	r := srv.Resolver()
	ctx := context.Background()
	mxs, _, err := r.LookupMX(ctx, "a.example")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.example" {
		t.Errorf("LookupMX through two CNAMEs = %v, %v", mxs, err)
	}
	ips, _, err := r.LookupIP(ctx, "a.example")
	if err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("LookupIP through two CNAMEs = %v, %v", ips, err)
	}
	if _, _, err := r.LookupTLSA(ctx, "a.example"); !errors.Is(err, dns.ErrNoData) {
		t.Errorf("LookupTLSA through CNAMEs to a name without TLSA = %v, want NODATA", err)
	}
	if _, _, err := r.LookupMX(ctx, "dangling.example"); !errors.Is(err, dns.ErrNXDomain) {
		t.Errorf("LookupMX through a dangling CNAME = %v, want NXDOMAIN", err)
	}
	if _, _, err := r.LookupMX(ctx, "loop1.example"); !errors.Is(err, dns.ErrTemporary) {
		t.Errorf("LookupMX through a CNAME loop = %v, want temporary", err)
	}
}

func TestLongTXT(t *testing.T) {
	// Octets a zone-file escape would mangle, and strings past 255.
	tricky := "v=DKIM1; k=rsa; p=" + strings.Repeat("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", 12) + ` \ \065 "q" ` + "\x00\x7f\xff;"
	srv := dnstest.New(t, dnstest.Zone{
		"long.example":  {dnstest.TXT(tricky)},
		"parts.example": {dnstest.TXT("v=spf1 ", "include:a.example ", strings.Repeat("x", 300), " -all")},
	})
	r := srv.Resolver()
	got, _, err := r.LookupTXT(context.Background(), "long.example")
	if err != nil || len(got) != 1 || got[0] != tricky {
		t.Errorf("LookupTXT(long) = %q, %v;\nwant %q", got, err, tricky)
	}
	want := "v=spf1 include:a.example " + strings.Repeat("x", 300) + " -all"
	got, _, err = r.LookupTXT(context.Background(), "parts.example")
	if err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("LookupTXT(parts) = %q, %v; want %q", got, err, want)
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"example.com": true, "MX1.Example.COM": true, "_mta-sts.example.com": true, "s1": true,
		"xn--bcher-kva.example": true, "a-.example": true,
		"": false, "example.com.": false, ".example.com": false, "a..b": false, "b\u00fccher.example": false,
		"mx example.com": false, "mx!.example.com": false, "*.example.com": false,
		strings.Repeat("a", 64) + ".example": false, strings.Repeat("a.", 125) + "abc": true, strings.Repeat("a.", 125) + "abcd": false,
	} {
		if dns.ValidName(name) != ok {
			t.Errorf("ValidName(%q) = %v, want %v", name, !ok, ok)
		}
	}
}
