package mailauth

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"postern/internal/dns/dnstest"
)

// rfc7208Zone is the zone of RFC 7208 Appendix A, without example.com's
// SPF record, which each case sets.
func rfc7208Zone() dnstest.Zone {
	z := dnstest.Zone{
		"mx.example.com":     {dnstest.A("192.0.2.11")},
		"mx2.example.com":    {dnstest.A("192.0.2.12")},
		"amy.example.com":    {dnstest.A("192.0.2.65")},
		"bob.example.com":    {dnstest.A("192.0.2.66")},
		"mail-a.example.com": {dnstest.A("192.0.2.129")},
		"mail-b.example.com": {dnstest.A("192.0.2.130")},
		"www.example.com":    {dnstest.CNAME("example.com")},
		"mail-c.example.org": {dnstest.A("192.0.2.140")},
		"example.org": {dnstest.MX(10, "mail-a.example.com"), dnstest.MX(20, "mail-b.example.com"),
			dnstest.MX(30, "mail-c.example.org")},
	}
	for ip, name := range map[string]string{
		"192.0.2.10": "example.com", "192.0.2.11": "example.com", "192.0.2.65": "amy.example.com",
		"192.0.2.66": "bob.example.com", "192.0.2.129": "mail-a.example.com",
		"192.0.2.130": "mail-b.example.com", "192.0.2.140": "mail-c.example.org",
		"10.0.0.4": "bob.example.com",
	} {
		z[dnstest.ReverseName(ip)] = []dnstest.RR{dnstest.PTR(name)}
	}
	return z
}

// exampleCom returns example.com's records of RFC 7208 Appendix A with
// the given SPF record.
func exampleCom(spf string) []dnstest.RR {
	rrs := []dnstest.RR{dnstest.MX(10, "mx.example.com"), dnstest.MX(20, "mx2.example.com"),
		dnstest.A("192.0.2.10"), dnstest.A("192.0.2.11")}
	if spf != "" {
		rrs = append(rrs, dnstest.TXT(spf))
	}
	return rrs
}

// spfCase is one SPF check: example.com publishes record, extra names
// are set, and the client at ip sends MAIL FROM:<sender>.
type spfCase struct {
	record string
	extra  map[string]string // name -> TXT
	ip     string
	sender string // default "user@example.com"
	want   string
}

// spfCases are RFC 7208 Appendix A.1 (simple examples) and A.2 (multiple
// domains), plus the limits of §4.6.4 and the errors of §2.6. pyspf is
// checked against the same table in the interop tests.
var spfCases = []spfCase{
	// A.1
	{record: "v=spf1 +all", ip: "192.0.2.200", want: "pass"},
	{record: "v=spf1 a -all", ip: "192.0.2.10", want: "pass"},
	{record: "v=spf1 a -all", ip: "192.0.2.11", want: "pass"},
	{record: "v=spf1 a -all", ip: "192.0.2.65", want: "fail"},
	{record: "v=spf1 a:example.org -all", ip: "192.0.2.10", want: "fail"},
	{record: "v=spf1 mx -all", ip: "192.0.2.11", want: "pass"},
	{record: "v=spf1 mx -all", ip: "192.0.2.12", want: "pass"},
	{record: "v=spf1 mx -all", ip: "192.0.2.13", want: "fail"},
	{record: "v=spf1 mx:example.org -all", ip: "192.0.2.129", want: "pass"},
	{record: "v=spf1 mx:example.org -all", ip: "192.0.2.140", want: "pass"},
	{record: "v=spf1 mx:example.org -all", ip: "192.0.2.11", want: "fail"},
	{record: "v=spf1 mx mx:example.org -all", ip: "192.0.2.130", want: "pass"},
	{record: "v=spf1 mx mx:example.org -all", ip: "192.0.2.12", want: "pass"},
	{record: "v=spf1 mx/30 mx:example.org/30 -all", ip: "192.0.2.9", want: "pass"},
	{record: "v=spf1 mx/30 mx:example.org/30 -all", ip: "192.0.2.15", want: "pass"},
	{record: "v=spf1 mx/30 mx:example.org/30 -all", ip: "192.0.2.131", want: "pass"},
	{record: "v=spf1 mx/30 mx:example.org/30 -all", ip: "192.0.2.141", want: "pass"},
	{record: "v=spf1 mx/30 mx:example.org/30 -all", ip: "192.0.2.16", want: "fail"},
	{record: "v=spf1 ptr -all", ip: "192.0.2.65", want: "pass"},
	{record: "v=spf1 ptr -all", ip: "192.0.2.10", want: "pass"},
	{record: "v=spf1 ptr -all", ip: "192.0.2.140", want: "fail"},
	{record: "v=spf1 ptr -all", ip: "10.0.0.4", want: "fail"},
	{record: "v=spf1 ip4:192.0.2.128/28 -all", ip: "192.0.2.65", want: "fail"},
	{record: "v=spf1 ip4:192.0.2.128/28 -all", ip: "192.0.2.129", want: "pass"},
	{record: "v=spf1 ip4:192.0.2.128/28 -all", ip: "192.0.2.143", want: "pass"},
	// A.2: example.net has no SPF record: include of it is a permerror
	// (§5.2).
	{record: "v=spf1 -all", extra: map[string]string{"example.org": "v=spf1 include:example.com include:example.net -all"},
		ip: "192.0.2.200", sender: "user@example.org", want: "permerror"},
	{record: "v=spf1 a -all", extra: map[string]string{"example.org": "v=spf1 include:example.com include:example.net -all"},
		ip: "192.0.2.10", sender: "user@example.org", want: "pass"},
	// Qualifiers and results (§2.6, §4.6.2).
	{record: "v=spf1 ~all", ip: "192.0.2.1", want: "softfail"},
	{record: "v=spf1 ?all", ip: "192.0.2.1", want: "neutral"},
	{record: "v=spf1 ip4:192.0.2.1", ip: "192.0.2.2", want: "neutral"},
	{record: "", ip: "192.0.2.1", want: "none"},
	{record: "v=spf1 ip4:192.0.2.1 -all", ip: "192.0.2.1", sender: "user@nowhere.example.com", want: "none"},
	{record: "v=spf1 ip4:300.0.0.1 -all", ip: "192.0.2.1", want: "permerror"},
	{record: "v=spf1 bogus:x -all", ip: "192.0.2.1", want: "permerror"},
	{record: "v=spf1 redirect=example.net", ip: "192.0.2.1", want: "permerror"},
	{record: "v=spf1 ip6:2001:db8::/32 -all", ip: "2001:db8::1", want: "pass"},
	// §4.6.4: two void lookups are allowed, the third is a permerror.
	{record: "v=spf1 a:v1.example.com a:v2.example.com ip4:192.0.2.1 -all", ip: "192.0.2.1", want: "pass"},
	{record: "v=spf1 a:v1.example.com a:v2.example.com a:v3.example.com ip4:192.0.2.1 -all", ip: "192.0.2.1", want: "permerror"},
	// §4.6.4: ten DNS mechanisms are allowed, the eleventh is a permerror.
	{record: "v=spf1 " + strings.Repeat("a ", 10) + "ip4:192.0.2.1 -all", ip: "192.0.2.1", want: "pass"},
	{record: "v=spf1 " + strings.Repeat("a ", 11) + "ip4:192.0.2.1 -all", ip: "192.0.2.1", want: "permerror"},
	// An include loop exhausts the limit.
	{record: "v=spf1 include:example.com -all", ip: "192.0.2.1", want: "permerror"},
	// §3.2: two SPF records are a permerror.
	{record: "v=spf1 -all", extra: map[string]string{"example.org": "v=spf1 +all"}, ip: "192.0.2.1", sender: "u@two.example.org", want: "permerror"},
}

func init() {
	// The two-records case: two TXT records at two.example.org.
	spfCases[len(spfCases)-1].extra = map[string]string{"two.example.org": "v=spf1 +all\x00v=spf1 -all"}
}

// spfZone returns the zone for c.
func spfZone(c spfCase) dnstest.Zone {
	z := rfc7208Zone()
	z["example.com"] = exampleCom(c.record)
	for name, txt := range c.extra {
		var rrs []dnstest.RR
		for _, t := range strings.Split(txt, "\x00") {
			rrs = append(rrs, dnstest.TXT(t))
		}
		z[name] = append(z[name], rrs...)
	}
	return z
}

func (c spfCase) from() string {
	if c.sender == "" {
		return "user@example.com"
	}
	return c.sender
}

func TestSPFRFC7208Examples(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t, rfc7208Zone())
	for i, c := range spfCases {
		t.Run(fmt.Sprintf("%d %s %s", i, c.record, c.ip), func(t *testing.T) {
			for name, rrs := range spfZone(c) {
				srv.Set(name, rrs...)
			}
			t.Cleanup(func() {
				for name := range c.extra {
					srv.Remove(name)
				}
			})
			got := CheckSPF(context.Background(), srv.Resolver(), netip.MustParseAddr(c.ip), "client.example.net", c.from(), "mailfrom")
			if got.Result != c.want {
				t.Errorf("got %s (%s), want %s", got.Result, got.Reason, c.want)
			}
			if got.Identity != "mailfrom" || got.Domain != addressDomain(c.from()) || got.Sender != c.from() {
				t.Errorf("result %+v", got)
			}
		})
	}
}

func TestSPFTempError(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t, dnstest.Zone{
		"example.com":       {dnstest.TXT("v=spf1 include:down.example.net -all")},
		"down.example.net":  {dnstest.TXT("v=spf1 +all")},
		"fail.example.com":  {dnstest.TXT("v=spf1 -all")},
		"helo.example.com":  {dnstest.TXT("v=spf1 ip4:192.0.2.7 -all")},
		"other.example.com": {dnstest.TXT("v=spf1 a:down.example.net -all")},
	})
	srv.ServFail("down.example.net")
	ip := netip.MustParseAddr("192.0.2.7")
	ctx := context.Background()
	// §2.6.6: a DNS failure is a temperror, not a permerror.
	if got := CheckSPF(ctx, srv.Resolver(), ip, "helo.example.com", "u@example.com", "mailfrom"); got.Result != "temperror" {
		t.Errorf("include of a SERVFAIL name: %+v", got)
	}
	if got := CheckSPF(ctx, srv.Resolver(), ip, "helo.example.com", "u@other.example.com", "mailfrom"); got.Result != "temperror" {
		t.Errorf("a: of a SERVFAIL name: %+v", got)
	}
	srv.ServFail("example.com")
	if got := CheckSPF(ctx, srv.Resolver(), ip, "helo.example.com", "u@example.com", "mailfrom"); got.Result != "temperror" {
		t.Errorf("SERVFAIL for the record: %+v", got)
	}
	// §2.4: the null sender is checked as postmaster@HELO; §2.3: HELO.
	got := CheckSPF(ctx, srv.Resolver(), ip, "HELO.example.com.", "", "mailfrom")
	if got.Result != "pass" || got.Sender != "postmaster@helo.example.com" || got.Domain != "helo.example.com" {
		t.Errorf("null sender: %+v", got)
	}
	got = CheckSPF(ctx, srv.Resolver(), ip, "helo.example.com", "u@fail.example.com", "helo")
	if got.Result != "pass" || got.Sender != "helo.example.com" || got.Identity != "helo" {
		t.Errorf("helo: %+v", got)
	}
	// An address literal as HELO: nothing to check.
	if got := CheckSPF(ctx, srv.Resolver(), ip, "[192.0.2.7]", "", "mailfrom"); got.Result != "none" {
		t.Errorf("literal HELO: %+v", got)
	}
}
