package mailauth

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

func TestParseDMARC(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		txt  string
		want *DMARCRecord // nil: error
	}{
		{"v=DMARC1; p=reject", &DMARCRecord{Policy: PolicyReject, Percent: 100}},
		{"v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;rua=mailto:d@example.com",
			&DMARCRecord{Policy: PolicyQuarantine, SubdomainPolicy: PolicyNone, StrictDKIM: true, StrictSPF: true, Percent: 20, RUA: []string{"mailto:d@example.com"}}},
		{"v = DMARC1 ; p = None ;", &DMARCRecord{Policy: PolicyNone, Percent: 100}},
		// §6.3: unknown tags are ignored; bad optional values default.
		{"v=DMARC1; p=reject; foo=bar; rf=iodef; ri=x; fo=z; pct=200; adkim=x", &DMARCRecord{Policy: PolicyReject, Percent: 100}},
		// §6.6.3 step 6: no valid p= but a rua: as p=none.
		{"v=DMARC1; rua=mailto:a@example.com", &DMARCRecord{Policy: PolicyNone, Percent: 100, RUA: []string{"mailto:a@example.com"}}},
		{"v=DMARC1; p=bogus; rua=mailto:a@example.com", &DMARCRecord{Policy: PolicyNone, Percent: 100, RUA: []string{"mailto:a@example.com"}}},
		{"v=DMARC1; p=reject; sp=bogus; rua=mailto:a@example.com", &DMARCRecord{Policy: PolicyNone, Percent: 100, RUA: []string{"mailto:a@example.com"}}},
		{"v=DMARC1; p=bogus", nil},
		{"v=DMARC1", nil},
		{"v=DMARC1; p=reject; sp=bogus", nil},
		// §6.6.3 step 4: v=DMARC1 first.
		{"p=reject; v=DMARC1", nil},
		{"v=DMARC2; p=reject", nil},
		{"v=spf1 -all", nil},
		{"", nil},
	} {
		got, err := ParseDMARC(c.txt)
		if c.want == nil {
			if err == nil {
				t.Errorf("ParseDMARC(%q) = %+v, want error", c.txt, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseDMARC(%q) = %+v, %v; want %+v", c.txt, got, err, c.want)
		}
	}
	if _, err := ParseDMARC("v=spf1"); !errors.Is(err, ErrNotDMARC) {
		t.Errorf("not DMARC: %v", err)
	}
}

func TestAlignment(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		from, id        string
		relaxed, strict bool
	}{
		{"example.com", "example.com", true, true},
		{"Example.COM", "example.com.", true, true},
		{"news.example.com", "example.com", true, false},
		{"example.com", "mail.example.com", true, false},
		{"a.example.com", "b.example.com", true, false},
		{"example.com", "example.net", false, false},
		{"example.co.uk", "other.co.uk", false, false}, // public suffix co.uk
		{"a.example.co.uk", "example.co.uk", true, false},
		{"foo.github.io", "bar.github.io", false, false}, // private suffix github.io
		{"example.com", "", false, false},
	} {
		if got := Aligned(c.from, c.id, false); got != c.relaxed {
			t.Errorf("relaxed %s ~ %s = %v", c.from, c.id, got)
		}
		if got := Aligned(c.from, c.id, true); got != c.strict {
			t.Errorf("strict %s ~ %s = %v", c.from, c.id, got)
		}
	}
	for in, want := range map[string]string{
		"mail.example.com": "example.com", "a.b.example.co.uk": "example.co.uk", "com": "com", "example.com.": "example.com",
	} {
		if got := OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestLookupDMARC(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t, dnstest.Zone{
		"_dmarc.example.com":      {dnstest.TXT("v=DMARC1; p=reject; sp=quarantine")},
		"_dmarc.own.example.com":  {dnstest.TXT("v=DMARC1; p=none")},
		"_dmarc.two.example.net":  {dnstest.TXT("v=DMARC1; p=reject"), dnstest.TXT("v=DMARC1; p=none")},
		"_dmarc.spf.example.net":  {dnstest.TXT("v=spf1 -all"), dnstest.TXT("v=DMARC1; p=quarantine")},
		"_dmarc.down.example.org": {dnstest.TXT("v=DMARC1; p=reject")},
	})
	srv.ServFail("_dmarc.down.example.org")
	ctx := context.Background()
	r := srv.Resolver()
	for _, c := range []struct {
		domain, at string
		policy     Policy
	}{
		{"example.com", "example.com", PolicyReject},
		{"a.b.example.com", "example.com", PolicyReject}, // §6.6.3 org domain fallback
		{"own.example.com", "own.example.com", PolicyNone},
		{"two.example.net", "", ""}, // two records: none
		{"spf.example.net", "spf.example.net", PolicyQuarantine},
		{"nothing.example", "", ""},
	} {
		rec, at, err := LookupDMARC(ctx, r, c.domain)
		if err != nil || at != c.at || (rec == nil) != (c.policy == "") || rec != nil && rec.Policy != c.policy {
			t.Errorf("LookupDMARC(%s) = %+v, %q, %v", c.domain, rec, at, err)
		}
	}
	if _, _, err := LookupDMARC(ctx, r, "down.example.org"); !errors.Is(err, dns.ErrTemporary) {
		t.Errorf("SERVFAIL: %v", err)
	}
}

func TestDMARCPolicy(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t, dnstest.Zone{
		"_dmarc.example.com": {dnstest.TXT("v=DMARC1; p=reject; sp=quarantine; pct=50")},
		"_dmarc.strict.net":  {dnstest.TXT("v=DMARC1; p=reject; adkim=s; aspf=s")},
	})
	roll := 0
	c, _ := NewChecker(CheckerOptions{Resolver: srv.Resolver(), Hostname: "mx.example.org", Rand: func(n int) int { return roll }})
	ctx := context.Background()
	spfPass := func(d string) SPFResult { return SPFResult{Result: "pass", Identity: "mailfrom", Domain: d} }
	dkimPass := func(d string) []DKIMResult { return []DKIMResult{{Result: "pass", Domain: d}} }
	for _, tc := range []struct {
		name      string
		from      string
		spf       SPFResult
		dkim      []DKIMResult
		roll      int
		result    string
		policy    Policy
		recordPol Policy
	}{
		{"spf aligned relaxed", "example.com", spfPass("bounce.example.com"), nil, 0, "pass", "", ""},
		{"dkim aligned relaxed", "news.example.com", SPFResult{Result: "fail"}, dkimPass("example.com"), 0, "pass", "", ""},
		{"spf pass unaligned", "example.com", spfPass("example.net"), nil, 0, "fail", PolicyReject, PolicyReject},
		{"dkim fail", "example.com", SPFResult{}, []DKIMResult{{Result: "fail", Domain: "example.com"}}, 0, "fail", PolicyReject, PolicyReject},
		{"helo pass does not count", "example.com", SPFResult{Result: "pass", Identity: "helo", Domain: "example.com"}, nil, 0, "fail", PolicyReject, PolicyReject},
		{"pct sampled out: reject to quarantine", "example.com", SPFResult{}, nil, 50, "fail", PolicyQuarantine, PolicyReject},
		{"pct sampled in", "example.com", SPFResult{}, nil, 49, "fail", PolicyReject, PolicyReject},
		{"sp for subdomain", "sub.example.com", SPFResult{}, nil, 0, "fail", PolicyQuarantine, PolicyQuarantine},
		{"sp then pct: quarantine to none", "sub.example.com", SPFResult{}, nil, 99, "fail", PolicyNone, PolicyQuarantine},
		{"strict spf: subdomain does not align", "strict.net", spfPass("mail.strict.net"), nil, 0, "fail", PolicyReject, PolicyReject},
		{"strict dkim: exact", "strict.net", SPFResult{}, dkimPass("strict.net"), 0, "pass", "", ""},
		{"strict dkim: parent does not align", "mail.strict.net", SPFResult{}, dkimPass("strict.net"), 0, "fail", PolicyReject, PolicyReject},
		{"no record", "example.net", SPFResult{}, nil, 0, "none", "", ""},
	} {
		roll = tc.roll
		got := c.dmarc(ctx, tc.from, tc.spf, tc.dkim)
		if got.Result != tc.result || got.Policy != tc.policy || got.Record != tc.recordPol || got.From != tc.from {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
}
