package dns_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
	"postern/internal/testkit"
)

func TestCache(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"example.com":       {dnstest.MX(10, "mx.example.com").WithTTL(100)},
		"short.example.com": {dnstest.TXT("a").WithTTL(300)},
		"alias.example.com": {dnstest.CNAME("short.example.com").WithTTL(10)},
		"nottl.example.com": {dnstest.TXT("a").WithTTL(0)},
		"broken.example":    {dnstest.TXT("a")},
	})
	srv.ServFail("broken.example")
	clk := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := srv.Client(dns.Config{CacheSize: 100, Now: clk.Now, TrustAD: true})
	ctx := context.Background()

	// expect looks name up (MX or TXT) and checks how many queries
	// reached the server.
	expect := func(what string, lookup func() error, wantErr error, wantQueries int) {
		t.Helper()
		before := srv.Queries()
		err := lookup()
		if (wantErr == nil) != (err == nil) || wantErr != nil && !errors.Is(err, wantErr) {
			t.Errorf("%s: %v, want %v", what, err, wantErr)
		}
		if q := srv.Queries() - before; q != wantQueries {
			t.Errorf("%s: %d queries, want %d", what, q, wantQueries)
		}
	}
	mx := func(name string) func() error {
		return func() error {
			mxs, _, err := r.LookupMX(ctx, name)
			if err == nil && (len(mxs) != 1 || mxs[0].Host != "mx.example.com") {
				t.Errorf("LookupMX(%s) = %v", name, mxs)
			}
			return err
		}
	}
	txt := func(name string) func() error {
		return func() error { _, _, err := r.LookupTXT(ctx, name); return err }
	}

	expect("first MX", mx("example.com"), nil, 1)
	expect("cached MX", mx("EXAMPLE.com."), nil, 0)
	clk.Advance(99 * time.Second)
	expect("MX at 99s", mx("example.com"), nil, 0)
	clk.Advance(time.Second)
	expect("MX at 100s (expired)", mx("example.com"), nil, 1)
	expect("MX cached again", mx("example.com"), nil, 0)

	// Negative answers live for the SOA's TTL (RFC 2308).
	expect("NXDOMAIN", mx("missing.example.com"), dns.ErrNXDomain, 1)
	expect("NXDOMAIN cached", mx("missing.example.com"), dns.ErrNXDomain, 0)
	expect("NODATA", txt("example.com"), dns.ErrNoData, 1)
	expect("NODATA cached", txt("example.com"), dns.ErrNoData, 0)
	srv.Set("missing.example.com", dnstest.MX(10, "mx.example.com"))
	expect("NXDOMAIN still cached", mx("missing.example.com"), dns.ErrNXDomain, 0)
	clk.Advance(dnstest.NegativeTTL * time.Second)
	expect("NXDOMAIN expired", mx("missing.example.com"), nil, 1)

	// A chain lives as long as its shortest TTL.
	expect("CNAME", txt("alias.example.com"), nil, 1)
	expect("CNAME cached", txt("alias.example.com"), nil, 0)
	clk.Advance(10 * time.Second)
	expect("CNAME expired", txt("alias.example.com"), nil, 1)

	// TTL 0 and temporary failures are not cached.
	expect("TTL 0", txt("nottl.example.com"), nil, 1)
	expect("TTL 0 again", txt("nottl.example.com"), nil, 1)
	expect("SERVFAIL", txt("broken.example"), dns.ErrTemporary, 1)
	expect("SERVFAIL again", txt("broken.example"), dns.ErrTemporary, 1)

	// The Result is cached with the records.
	srv.Authentic("signed.example")
	srv.Set("signed.example", dnstest.TXT("s"))
	for range 2 {
		if _, res, err := r.LookupTXT(ctx, "signed.example"); err != nil || !res.Authentic {
			t.Errorf("LookupTXT(signed) = %v, Authentic %v", err, res.Authentic)
		}
	}
}

func TestCacheIsBounded(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"a.example": {dnstest.TXT("a")}, "b.example": {dnstest.TXT("b")}, "c.example": {dnstest.TXT("c")},
	})
	r := srv.Client(dns.Config{CacheSize: 2})
	ctx := context.Background()
	for _, name := range []string{"a.example", "b.example", "a.example", "c.example"} {
		if _, _, err := r.LookupTXT(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// a was used more recently than b, so c pushed b out.
	before := srv.Queries()
	for _, name := range []string{"a.example", "c.example"} {
		if _, _, err := r.LookupTXT(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if q := srv.Queries() - before; q != 0 {
		t.Errorf("a and c: %d queries, want 0 (cached)", q)
	}
	if _, _, err := r.LookupTXT(ctx, "b.example"); err != nil || srv.Queries()-before != 1 {
		t.Errorf("b: %v, %d queries, want 1 (evicted)", err, srv.Queries()-before)
	}
}

func TestLookupIPPartialFailure(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"half.example":   {dnstest.A("192.0.2.1"), dnstest.AAAA("2001:db8::1")},
		"v6.example":     {dnstest.AAAA("2001:db8::2")},
		"broken.example": {dnstest.A("192.0.2.3")},
	})
	srv.ServFailType("AAAA", "half.example")
	srv.TimeoutType("A", "v6.example")
	srv.ServFail("broken.example")
	srv.Authentic("half.example")
	r := srv.Client(dns.Config{TrustAD: true, Timeout: shortTimeout})
	ctx := context.Background()

	ips, res, err := r.LookupIP(ctx, "half.example")
	if !errors.Is(err, dns.ErrTemporary) || !slices.Equal(ips, []netip.Addr{netip.MustParseAddr("192.0.2.1")}) || !res.Authentic {
		t.Errorf("A fine, AAAA SERVFAIL: %v, %v, Authentic %v; want the A address, authentic, and a temporary error", ips, err, res.Authentic)
	}
	ips, res, err = r.LookupIP(ctx, "v6.example")
	if !errors.Is(err, dns.ErrTemporary) || !slices.Equal(ips, []netip.Addr{netip.MustParseAddr("2001:db8::2")}) || res.Authentic {
		t.Errorf("A timeout, AAAA fine: %v, %v, Authentic %v; want the AAAA address and a temporary error", ips, err, res.Authentic)
	}
	ips, _, err = r.LookupIP(ctx, "broken.example")
	if !errors.Is(err, dns.ErrTemporary) || ips != nil {
		t.Errorf("both SERVFAIL: %v, %v; want nil and a temporary error", ips, err)
	}
	srv.Set("nodata.example")
	if _, _, err := r.LookupIP(ctx, "nodata.example"); !errors.Is(err, dns.ErrNoData) {
		t.Errorf("no A, no AAAA: %v, want NODATA", err)
	}
	if _, _, err := r.LookupIP(ctx, "missing.example"); !errors.Is(err, dns.ErrNXDomain) {
		t.Errorf("no such name: %v, want NXDOMAIN", err)
	}
}

func TestRetryOnOtherServer(t *testing.T) {
	zone := dnstest.Zone{"example.com": {dnstest.TXT("hello")}}
	bad, good := dnstest.New(t, zone), dnstest.New(t, zone)
	ctx := context.Background()
	for _, tc := range []struct {
		what string
		fail func(names ...string)
	}{{"timeout", bad.Timeout}, {"SERVFAIL", bad.ServFail}} {
		bad.Reset("example.com")
		tc.fail("example.com")
		r, err := dns.New(dns.Config{Servers: []string{bad.Addr(), good.Addr()}, Timeout: shortTimeout})
		if err != nil {
			t.Fatal(err)
		}
		b0, g0 := bad.Queries(), good.Queries()
		txt, _, err := r.LookupTXT(ctx, "example.com")
		if err != nil || len(txt) != 1 || txt[0] != "hello" {
			t.Errorf("%s on the first server: %q, %v", tc.what, txt, err)
		}
		if b, g := bad.Queries()-b0, good.Queries()-g0; b != 1 || g != 1 {
			t.Errorf("%s on the first server: %d and %d queries, want 1 and 1", tc.what, b, g)
		}
	}
}

func TestDialAndResolvConf(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{"example.com": {dnstest.TXT("via resolv.conf")}})
	path := filepath.Join(t.TempDir(), "resolv.conf")
	conf := "# test\nsearch example.net\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:1\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var dialled []string
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, network+" "+address)
		mu.Unlock()
		if address == "192.0.2.53:53" {
			return nil, errors.New("unreachable")
		}
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr())
	}
	r, err := dns.New(dns.Config{ResolvConf: path, Dial: dial, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	txt, _, err := r.LookupTXT(context.Background(), "example.com")
	if err != nil || len(txt) != 1 || txt[0] != "via resolv.conf" {
		t.Errorf("LookupTXT = %q, %v", txt, err)
	}
	want := []string{"udp 192.0.2.53:53", "udp [2001:db8::53]:53"}
	if !slices.Equal(dialled, want) {
		t.Errorf("dialled %q, want %q", dialled, want)
	}

	if _, err := dns.New(dns.Config{ResolvConf: filepath.Join(t.TempDir(), "missing"), Timeout: time.Second}); err == nil {
		t.Error("New with a missing resolv.conf: no error")
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("search example.net\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dns.New(dns.Config{ResolvConf: empty, Timeout: time.Second}); err == nil {
		t.Error("New with a resolv.conf without nameservers: no error")
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []dns.Config{
		{Servers: []string{"dns.example:53"}},
		{Servers: []string{"127.0.0.1:0"}},
		{Servers: []string{"127.0.0.1:99999"}},
		{Servers: []string{"127.0.0.1"}, Timeout: -time.Second},
		{Servers: []string{"127.0.0.1"}}, // no Timeout: no default here (config resolves dns.timeout)
		{Servers: []string{"127.0.0.1"}, Timeout: time.Second, CacheSize: -1},
	} {
		if _, err := dns.New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	for _, s := range []string{"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:53", "[2001:db8::1]"} {
		if _, err := dns.New(dns.Config{Servers: []string{s}, Timeout: time.Second}); err != nil {
			t.Errorf("New(server %q): %v", s, err)
		}
	}
}
