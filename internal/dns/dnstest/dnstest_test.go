package dnstest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"

	mdns "github.com/miekg/dns"
)

// exchange sends one raw query to srv over network, with EDNS0 when
// edns is not 0.
func exchange(t *testing.T, srv *dnstest.Server, network, name string, qtype uint16, edns uint16, do bool) *mdns.Msg {
	t.Helper()
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), qtype)
	if edns != 0 {
		q.SetEdns0(edns, do)
	}
	c := &mdns.Client{Net: network, Timeout: dnstest.ResolverTimeout}
	r, _, err := c.Exchange(q, srv.Addr())
	if err != nil {
		t.Fatalf("%s %s: %v", network, name, err)
	}
	return r
}

func TestRcodes(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"Example.COM.":     {dnstest.MX(10, "mx.example.com")},
		"empty.example":    nil,
		"alias.example":    {dnstest.CNAME("example.com")},
		"dangling.example": {dnstest.CNAME("nowhere.example")},
	})
	for _, tc := range []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
		soa     bool
	}{
		{"example.com", mdns.TypeMX, mdns.RcodeSuccess, 1, false},
		{"EXAMPLE.com", mdns.TypeMX, mdns.RcodeSuccess, 1, false},
		{"example.com", mdns.TypeA, mdns.RcodeSuccess, 0, true},
		{"empty.example", mdns.TypeTXT, mdns.RcodeSuccess, 0, true},
		{"missing.example", mdns.TypeA, mdns.RcodeNameError, 0, true},
		{"alias.example", mdns.TypeMX, mdns.RcodeSuccess, 2, false},
		{"alias.example", mdns.TypeCNAME, mdns.RcodeSuccess, 1, false},
		{"dangling.example", mdns.TypeA, mdns.RcodeNameError, 1, true},
	} {
		r := exchange(t, srv, "udp", tc.name, tc.qtype, 0, false)
		if r.Rcode != tc.rcode || len(r.Answer) != tc.answers || (len(r.Ns) == 1) != tc.soa {
			t.Errorf("%s %s: rcode %s, %d answers, %d authority; want %s, %d, soa %v",
				tc.name, mdns.TypeToString[tc.qtype], mdns.RcodeToString[r.Rcode], len(r.Answer), len(r.Ns),
				mdns.RcodeToString[tc.rcode], tc.answers, tc.soa)
		}
	}
	if got := srv.Queries(); got != 8 {
		t.Errorf("Queries() = %d, want 8", got)
	}
}

func TestADOnlyWhenAsked(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{"signed.example": {dnstest.A("192.0.2.1")}})
	srv.Authentic("SIGNED.example.")
	if r := exchange(t, srv, "udp", "signed.example", mdns.TypeA, 0, false); r.AuthenticatedData {
		t.Error("AD set for a query without DO or AD")
	}
	if r := exchange(t, srv, "udp", "signed.example", mdns.TypeA, 1232, true); !r.AuthenticatedData {
		t.Error("AD not set for a query with DO")
	}
	srv.Reset("signed.example")
	if r := exchange(t, srv, "udp", "signed.example", mdns.TypeA, 1232, true); r.AuthenticatedData {
		t.Error("AD set after Reset")
	}
}

func TestTruncation(t *testing.T) {
	var rrs []dnstest.RR
	for i := range 40 {
		rrs = append(rrs, dnstest.TXT(strings.Repeat(string(rune('a'+i%26)), 100)))
	}
	srv := dnstest.New(t, dnstest.Zone{"big.example": rrs})
	for _, tc := range []struct {
		edns uint16
		max  int
	}{{0, 512}, {1232, 1232}, {4096, 1232}} {
		r := exchange(t, srv, "udp", "big.example", mdns.TypeTXT, tc.edns, false)
		r.Compress = true // as sent
		if !r.Truncated || len(r.Answer) >= 40 || r.Len() > tc.max {
			t.Errorf("UDP, EDNS %d: TC %v, %d answers, %d octets; want TC, fewer than 40, at most %d",
				tc.edns, r.Truncated, len(r.Answer), r.Len(), tc.max)
		}
	}
	r := exchange(t, srv, "tcp", "big.example", mdns.TypeTXT, 1232, false)
	if r.Truncated || len(r.Answer) != 40 {
		t.Errorf("TCP: TC %v, %d answers; want all 40", r.Truncated, len(r.Answer))
	}
}

func TestLongTXTIsSplit(t *testing.T) {
	long := strings.Repeat("x", 600) + `\"`
	srv := dnstest.New(t, dnstest.Zone{"long.example": {dnstest.TXT(long, "tail")}})
	r := exchange(t, srv, "tcp", "long.example", mdns.TypeTXT, 0, false)
	txt := r.Answer[0].(*mdns.TXT).Txt
	var lens []int
	for _, s := range txt {
		lens = append(lens, len(s))
	}
	// 602 octets: 255 + 255 + 92 (the last has '\' and '"', each
	// escaped in miekg's presentation form), then "tail".
	want := []int{255, 255, 94, 4}
	if len(lens) != len(want) || lens[0] != want[0] || lens[1] != want[1] || lens[2] != want[2] || lens[3] != want[3] {
		t.Errorf("character-string lengths %v, want %v", lens, want)
	}
}

func TestChangeWhileRunning(t *testing.T) {
	srv := dnstest.New(t, nil)
	res := srv.Resolver()
	ctx := context.Background()
	if _, _, err := res.LookupTXT(ctx, "x.example"); !errors.Is(err, dns.ErrNXDomain) {
		t.Fatalf("before Set: %v, want NXDOMAIN", err)
	}
	srv.Set("x.example", dnstest.TXT("hello"))
	if got, _, err := res.LookupTXT(ctx, "x.example"); err != nil || len(got) != 1 || got[0] != "hello" {
		t.Fatalf("after Set: %q, %v", got, err)
	}
	srv.ServFail("x.example")
	if _, _, err := res.LookupTXT(ctx, "x.example"); !errors.Is(err, dns.ErrTemporary) {
		t.Fatalf("ServFail: %v, want temporary", err)
	}
	srv.Reset("x.example")
	srv.Remove("x.example")
	if _, _, err := res.LookupTXT(ctx, "x.example"); !errors.Is(err, dns.ErrNXDomain) {
		t.Fatalf("after Remove: %v, want NXDOMAIN", err)
	}
}
