package mailauth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"postern/internal/dns/dnstest"
)

const ourHost = "mx.postern.test"

// checkFixture is a Checker over a loopback DNS server with the keys of
// example.com (selectors ed and rsa) and example.org (ours).
type checkFixture struct {
	dns    *dnstest.Server
	signer *Signer // example.com and example.org keys
}

func newCheckFixture(t *testing.T) *checkFixture {
	keys := append(testKeys(t, "example.com"), testKeys(t, "example.org")...)
	z := keyZone(t, keys)
	z["example.com"] = []dnstest.RR{dnstest.TXT("v=spf1 ip4:192.0.2.1 -all")}
	z["_dmarc.example.com"] = []dnstest.RR{dnstest.TXT("v=DMARC1; p=reject")}
	z["quarantine.example.com"] = []dnstest.RR{dnstest.TXT("v=spf1 -all")}
	z["_dmarc.quarantine.example.com"] = []dnstest.RR{dnstest.TXT("v=DMARC1; p=quarantine")}
	z["example.net"] = []dnstest.RR{dnstest.TXT("v=spf1 ip4:192.0.2.2 -all")}
	z["example.org"] = []dnstest.RR{dnstest.TXT("v=spf1 ip4:192.0.2.9 -all")}
	s, err := NewSigner(keys, clock)
	if err != nil {
		t.Fatal(err)
	}
	return &checkFixture{dns: dnstest.New(t, z), signer: s}
}

func (f *checkFixture) checker(t *testing.T, reportOnly bool) *Checker {
	c, err := NewChecker(CheckerOptions{
		Resolver:      f.dns.Resolver(),
		Hostname:      ourHost,
		IsLocalDomain: func(d string) bool { return d == "example.org" },
		ReportOnly:    reportOnly,
		Now:           clock,
		Rand:          func(int) int { return 0 },
		MaxSignatures: 5,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mail returns a message from addr with a Received field on top, signed
// when sign is set.
func (f *checkFixture) mail(t *testing.T, from string, sign bool, extra ...string) []byte {
	m := msg(append(append([]string{"From: " + from}, extra...), "Subject: hi", "Date: Fri, 27 Nov 2026 09:30:00 +0000", "", "Hello.", "")...)
	if sign {
		h, err := f.signer.Sign(m)
		if err != nil || h == nil {
			t.Fatalf("sign: %q %v", h, err)
		}
		m = append(h, m...)
	}
	return append([]byte("Received: from client.example.net by "+ourHost+"; Fri, 27 Nov 2026 09:30:00 +0000\r\n"), m...)
}

func TestCheckerGolden(t *testing.T) {
	t.Parallel()
	f := newCheckFixture(t)
	c := f.checker(t, false)
	data := f.mail(t, "a@example.com", true,
		"Authentication-Results: "+strings.ToUpper(ourHost)+"; dkim=pass (forged)",
		"Authentication-Results: (comment) "+ourHost+".; spf=pass",
		"Authentication-Results: other.example; spf=fail",
		"X-Postern-Quarantine: forged")
	v, err := c.Check(context.Background(), Message{Remote: netip.MustParseAddr("192.0.2.1"), Helo: "client.example.net", MailFrom: "bounce@example.com", Data: data})
	if err != nil || v.Reject != nil || v.Quarantine {
		t.Fatalf("verdict %+v, %v", v, err)
	}
	if v.Header == nil {
		t.Fatal("our forged fields not removed")
	}
	_, end := splitHeader(data)
	out := append(append(bytes.Clone(v.Prepend), v.Header...), data[end:]...)
	golden(t, "checked.eml", out)
	s := string(out)
	if strings.Count(s, "Authentication-Results: "+ourHost) != 1 || strings.Contains(s, "forged") ||
		!strings.Contains(s, "Authentication-Results: other.example; spf=fail") {
		t.Errorf("forged fields kept or ours missing:\n%s", s)
	}
	for _, want := range []string{"spf=pass smtp.mailfrom=bounce@example.com", "spf=none smtp.helo=client.example.net",
		"dkim=pass header.d=example.com header.s=ed header.a=ed25519-sha256", "header.s=rsa header.a=rsa-sha256",
		"dmarc=pass header.from=example.com"} {
		if !strings.Contains(s, want) {
			t.Errorf("lacks %q:\n%s", want, v.Prepend)
		}
	}
	// The DKIM signatures still verify after the removal.
	res := VerifyDKIM(context.Background(), f.dns.Resolver(), out, VerifyOptions{MaxSignatures: 5})
	if len(res) != 2 || res[0].Result != "pass" || res[1].Result != "pass" {
		t.Errorf("after check: %+v", res)
	}
}

func TestCheckerPolicy(t *testing.T) {
	t.Parallel()
	f := newCheckFixture(t)
	ctx := context.Background()
	ip1, ip2, ip9 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.9")
	tamper := func(b []byte) []byte { return bytes.Replace(b, []byte("Hello."), []byte("Hello!"), 1) }
	for _, tc := range []struct {
		name       string
		reportOnly bool
		ip         netip.Addr
		mailFrom   string
		data       []byte
		reject     string // reply prefix, "" for none
		quarantine bool
		ar         string // in Authentication-Results
		action     string // counted in postern_mailauth_policy_actions_total, "" for none
	}{
		{name: "dmarc reject", ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "a@example.com", false),
			reject: "550 5.7.1 Message rejected by the DMARC policy of example.com", action: "reject"},
		{name: "dmarc reject, report only", reportOnly: true, ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "a@example.com", false),
			ar: "dmarc=fail (p=reject dis=reject) header.from=example.com", action: "report_only"},
		{name: "broken signature", ip: ip2, mailFrom: "x@example.net", data: tamper(f.mail(t, "a@example.com", true)),
			reject: "550 5.7.1", action: "reject"},
		{name: "quarantine", ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "a@quarantine.example.com", false),
			quarantine: true, ar: "dmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.example.com", action: "quarantine"},
		{name: "quarantine, report only", reportOnly: true, ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "a@quarantine.example.com", false),
			ar: "dmarc=fail", action: "report_only"},
		{name: "no dmarc record", ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "a@example.net", false),
			ar: "dmarc=none header.from=example.net"},
		{name: "spoofed local From", ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "boss@example.org", false),
			reject: "550 5.7.1 Sender domain example.org is ours", action: "spoof_reject"},
		{name: "spoofed local From, report only", reportOnly: true, ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "boss@example.org", false),
			reject: "550 5.7.1 Sender domain example.org is ours", action: "spoof_reject"},
		{name: "spoofed local MAIL FROM", ip: ip2, mailFrom: "boss@example.org", data: f.mail(t, "a@example.net", false),
			reject: "550 5.7.1 Sender domain example.org is ours", action: "spoof_reject"},
		{name: "local From with DKIM", ip: ip2, mailFrom: "x@example.net", data: f.mail(t, "boss@example.org", true),
			ar: "dkim=pass header.d=example.org"},
		{name: "local From with SPF", ip: ip9, mailFrom: "boss@example.org", data: f.mail(t, "boss@example.org", false),
			ar: "spf=pass smtp.mailfrom=boss@example.org"},
		{name: "two From fields", ip: ip1, mailFrom: "x@example.com", data: f.mail(t, "a@example.com", false, "From: b@example.net"),
			reject: "550 5.7.1 Message must have exactly one From", action: "reject"},
		{name: "null sender", ip: ip2, mailFrom: "", data: f.mail(t, "a@example.net", false),
			ar: "spf=none smtp.mailfrom=postmaster@client.example.net"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := f.checker(t, tc.reportOnly)
			v, err := c.Check(ctx, Message{Remote: tc.ip, Helo: "client.example.net", MailFrom: tc.mailFrom, Data: tc.data})
			if err != nil {
				t.Fatal(err)
			}
			// The Checker counts into its own metrics: this message's action only.
			for _, a := range []string{"reject", "quarantine", "report_only", "spoof_reject", "tempfail"} {
				want := 0.0
				if a == tc.action {
					want = 1
				}
				if got := testutil.ToFloat64(c.o.Metrics.PolicyActions.WithLabelValues(a)); got != want {
					t.Errorf("policy action %s counted %v, want %v", a, got, want)
				}
			}
			if tc.reject != "" {
				if v.Reject == nil || !strings.HasPrefix(fmt.Sprintf("%d %s %s", v.Reject.Code, v.Reject.Enhanced, v.Reject.Message), tc.reject) {
					t.Errorf("reject = %v, want %q", v.Reject, tc.reject)
				}
				return
			}
			if v.Reject != nil {
				t.Fatalf("rejected: %v", v.Reject)
			}
			if v.Quarantine != tc.quarantine || tc.quarantine != bytes.HasPrefix(v.Prepend, []byte(QuarantineField+": ")) {
				t.Errorf("quarantine %v:\n%s", v.Quarantine, v.Prepend)
			}
			if !bytes.Contains(v.Prepend, []byte(tc.ar)) {
				t.Errorf("Authentication-Results lacks %q:\n%s", tc.ar, v.Prepend)
			}
		})
	}
}

func TestVerifyDKIMResults(t *testing.T) {
	t.Parallel()
	f := newCheckFixture(t)
	ctx := context.Background()
	r := f.dns.Resolver()
	signed := f.mail(t, "a@example.com", true)
	one := func(data []byte) DKIMResult {
		t.Helper()
		res := VerifyDKIM(ctx, r, data, VerifyOptions{MaxSignatures: 1})
		if len(res) != 1 {
			t.Fatalf("%d results", len(res))
		}
		return res[0]
	}
	if got := one(signed); got.Result != "pass" {
		t.Errorf("signed: %+v", got)
	}
	if got := one(bytes.Replace(signed, []byte("Subject: hi"), []byte("Subject: ho"), 1)); got.Result != "fail" {
		t.Errorf("header changed: %+v", got)
	}
	// Key record checks (RFC 6376 §3.6.1, §6.1.2).
	f.dns.Set("ed._domainkey.example.com", dnstest.TXT("v=DKIM1; k=ed25519; p="))
	if got := one(signed); got.Result != "permerror" || !strings.Contains(got.Reason, "revoked") {
		t.Errorf("revoked key: %+v", got)
	}
	f.dns.Set("ed._domainkey.example.com", dnstest.TXT("v=DKIM1; k=rsa; p=AAAA"))
	if got := one(signed); got.Result != "permerror" {
		t.Errorf("wrong key type: %+v", got)
	}
	f.dns.Set("ed._domainkey.example.com", dnstest.TXT("v=DKIM1; k=ed25519; s=other; p=AAAA"))
	if got := one(signed); got.Result != "permerror" {
		t.Errorf("service not email: %+v", got)
	}
	f.dns.Remove("ed._domainkey.example.com")
	if got := one(signed); got.Result != "permerror" {
		t.Errorf("no key: %+v", got)
	}
	f.dns.Set("ed._domainkey.example.com")
	f.dns.ServFail("ed._domainkey.example.com")
	if got := one(signed); got.Result != "temperror" {
		t.Errorf("SERVFAIL: %+v", got)
	}
	// Expired by our clock (RFC 6376 §3.5 x=).
	exp := bytes.Replace(signed, []byte("DKIM-Signature: v=1;"), []byte("DKIM-Signature: v=1; x=1700000000;"), 1)
	if got := one(exp); got.Result != "permerror" {
		t.Errorf("expired: %+v", got)
	}
	// Malformed signature fields are results.
	for _, bad := range []string{"v=1; a=rsa-sha256", "garbage", "v=2; a=rsa-sha256; b=x; bh=x; d=example.com; h=from; s=x",
		"v=1; a=rsa-sha256; b=x; bh=x; d=example.com; h=subject; s=x"} {
		m := append([]byte("DKIM-Signature: "+bad+"\r\n"), signed...)
		res := VerifyDKIM(ctx, r, m, VerifyOptions{MaxSignatures: 1})
		if len(res) != 1 || res[0].Result != "permerror" {
			t.Errorf("%q: %+v", bad, res)
		}
	}
	// At most MaxSignatures are verified.
	many := signed
	for range 7 {
		many = append([]byte("DKIM-Signature: v=1; a=rsa-sha256; b=x; bh=x; d=example.net; h=from; s=x\r\n"), many...)
	}
	if res := VerifyDKIM(ctx, r, many, VerifyOptions{MaxSignatures: 5}); len(res) != 5 {
		t.Errorf("%d results, want 5", len(res))
	}
	if res := VerifyDKIM(ctx, r, []byte("From: a@example.com\r\n"), VerifyOptions{MaxSignatures: 5}); res != nil {
		t.Errorf("unsigned: %+v", res)
	}
}

// TestVerifyGolden verifies messages signed by dkimpy (python3-dkim),
// stored in testdata (ed25519-sha256 relaxed/relaxed, rsa-sha256
// simple/simple), with the keys of testKeys.
func TestVerifyGolden(t *testing.T) {
	t.Parallel()
	srv := dnstest.New(t, keyZone(t, testKeys(t, "example.org")))
	for _, name := range []string{"dkimpy-ed25519.eml", "dkimpy-rsa.eml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		res := VerifyDKIM(context.Background(), srv.Resolver(), data, VerifyOptions{MaxSignatures: 5, Now: clock})
		if len(res) != 1 || res[0].Result != "pass" || res[0].Domain != "example.org" {
			t.Errorf("%s: %+v", name, res)
		}
	}
}

// TestVerifyLibraryRules checks rules of RFC 6376 and RFC 8301 that we
// rely on go-msgauth for.
func TestVerifyLibraryRules(t *testing.T) {
	t.Parallel()
	keys := testKeys(t, "example.org")
	srv := dnstest.New(t, keyZone(t, keys))
	ctx := context.Background()
	s, _ := NewSigner(keys[1:], clock)
	h, _ := s.Sign(sampleMessage)
	signed := append(h, sampleMessage...)
	check := func(name, want string, data []byte) {
		t.Helper()
		res := VerifyDKIM(ctx, srv.Resolver(), data, VerifyOptions{MaxSignatures: 5})
		if len(res) != 1 || res[0].Result != want {
			t.Errorf("%s: %+v, want %s", name, res, want)
		}
	}
	rec, _ := KeyRecord(keys[1].Key)
	// RFC 6376 §3.6.1 h=: the key allows only sha1.
	srv.Set("rsa._domainkey.example.org", dnstest.TXT(splitTXT(strings.Replace(rec, "k=rsa;", "k=rsa; h=sha1;", 1))...))
	check("key h=sha1", "permerror", signed)
	// RFC 6376 §3.6.2.2: several key records are undefined; refused.
	srv.Set("rsa._domainkey.example.org", dnstest.TXT(splitTXT(rec)...), dnstest.TXT(splitTXT(rec)...))
	check("two key records", "permerror", signed)
	srv.Set("rsa._domainkey.example.org", dnstest.TXT(splitTXT(rec)...))
	check("restored", "pass", signed)
	// RFC 6376 §8.2: l= lets content be appended; we do not accept it.
	withL := bytes.Replace(signed, []byte("c=relaxed/relaxed;"), []byte("c=relaxed/relaxed; l=10;"), 1)
	check("l= tag", "policy", withL)
	// RFC 8301 §3.1: rsa-sha1 is not accepted.
	sha1 := bytes.Replace(signed, []byte("a=rsa-sha256"), []byte("a=rsa-sha1"), 1)
	check("rsa-sha1", "permerror", sha1)
}

// In VerifyOptions and CheckerOptions, a MaxSignatures of 0 verifies no
// signature (mail_auth.max_dkim_signatures = 0), never a default.
func TestMaxSignaturesZeroVerifiesNone(t *testing.T) {
	t.Parallel()
	f := newCheckFixture(t)
	data := f.mail(t, "a@example.com", true)
	if res := VerifyDKIM(context.Background(), f.dns.Resolver(), data, VerifyOptions{}); res != nil {
		t.Errorf("MaxSignatures 0 verified %+v", res)
	}
	if res := VerifyDKIM(context.Background(), f.dns.Resolver(), data, VerifyOptions{MaxSignatures: 1}); len(res) != 1 || res[0].Result != "pass" {
		t.Errorf("MaxSignatures 1: %+v", res)
	}
	c := f.checker(t, false)
	c.o.MaxSignatures = 0
	v, err := c.Check(context.Background(), Message{Remote: netip.MustParseAddr("192.0.2.1"), Helo: "client.example.net", MailFrom: "bounce@example.com", Data: data})
	if err != nil || !strings.Contains(string(v.Prepend), "dkim=none") {
		t.Errorf("checker with MaxSignatures 0: %s, %v; want dkim=none", v.Prepend, err)
	}
}
