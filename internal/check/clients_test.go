package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/config"
	"postern/internal/dns/dnstest"
	"postern/internal/testcert"
)

// runSRV runs the client checks of example.com under cfg against zone.
func runSRV(t *testing.T, cfg *config.Config, zone dnstest.Zone) []Result {
	t.Helper()
	srv := dnstest.New(t, zone)
	c := &Checker{Config: cfg, Resolver: srv.Resolver(), Now: time.Now}
	c.checkClientSRV(context.Background(), "example.com")
	return c.out
}

func srvConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	f := filepath.Join(t.TempDir(), "postern.toml")
	os.WriteFile(f, []byte(`hostname = "mail.example.com"
local_domains = ["example.com"]
[tls]
self_signed = true
`+extra), 0o600)
	cfg, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCheckClientSRV checks the SRV records of RFC 6186 and RFC 8314
// §5.1: right, missing, wrong, "not available" for a service Postern
// offers or does not, and _imaps._tcp with [autoconfig] imap_host.
func TestCheckClientSRV(t *testing.T) {
	cfg := srvConfig(t, "")
	type res struct{ status, msg, fix string }
	for _, c := range []struct {
		name string
		cfg  *config.Config
		zone dnstest.Zone
		want []res
	}{
		{"right", cfg, dnstest.Zone{
			"_submissions._tcp.example.com": {dnstest.SRV(0, 1, 465, "mail.example.com")},
			"_submission._tcp.example.com":  {dnstest.SRV(0, 1, 587, "mail.example.com")},
		}, []res{
			{StatusOK, "_submissions._tcp.example.com: SRV 0 1 465 mail.example.com", ""},
			{StatusOK, "_submission._tcp.example.com: SRV 0 1 587 mail.example.com", ""}}},
		{"missing", cfg, dnstest.Zone{}, []res{
			{StatusWarn, "no SRV record at _submissions._tcp.example.com", "_submissions._tcp.example.com. IN SRV 0 1 465 mail.example.com."},
			{StatusWarn, "no SRV record at _submission._tcp.example.com", "_submission._tcp.example.com. IN SRV 0 1 587 mail.example.com."}}},
		{"wrong", cfg, dnstest.Zone{
			"_submissions._tcp.example.com": {dnstest.SRV(0, 1, 465, "smtp.other.example")},
			"_submission._tcp.example.com":  {dnstest.SRV(0, 0, 0, ".")},
		}, []res{
			{StatusFail, "_submissions._tcp.example.com says SRV 0 1 465 smtp.other.example, not mail.example.com port 465", "replace it with: _submissions._tcp.example.com. IN SRV 0 1 465 mail.example.com."},
			{StatusFail, "_submission._tcp.example.com says SRV 0 0 0 ., not mail.example.com port 587", "_submission._tcp.example.com. IN SRV 0 1 587 mail.example.com."}}},
		{"465 only, 587 said not available", srvConfig(t, "[[listener]]\nrole = \"submissions\"\naddress = \":465\"\n"), dnstest.Zone{
			"_submissions._tcp.example.com": {dnstest.SRV(0, 1, 465, "mail.example.com")},
			"_submission._tcp.example.com":  {dnstest.SRV(0, 0, 0, ".")},
		}, []res{
			{StatusOK, "SRV 0 1 465 mail.example.com", ""},
			{StatusOK, "_submission._tcp.example.com: SRV 0 0 0 .", ""}}},
		{"465 only, 587 pointing here", srvConfig(t, "[[listener]]\nrole = \"submissions\"\naddress = \":465\"\n"), dnstest.Zone{
			"_submissions._tcp.example.com": {dnstest.SRV(0, 1, 465, "mail.example.com")},
			"_submission._tcp.example.com":  {dnstest.SRV(0, 1, 587, "mail.example.com")},
		}, []res{
			{StatusOK, "SRV 0 1 465 mail.example.com", ""},
			{StatusFail, "points clients at mail.example.com, where Postern offers no submission with STARTTLS", "_submission._tcp.example.com. IN SRV 0 0 0 ."}}},
		{"imaps", srvConfig(t, "[autoconfig]\nimap_host = \"imap.example.com\"\n"), dnstest.Zone{
			"_submissions._tcp.example.com": {dnstest.SRV(0, 1, 465, "mail.example.com")},
			"_submission._tcp.example.com":  {dnstest.SRV(0, 1, 587, "mail.example.com")},
		}, []res{
			{StatusOK, "465", ""}, {StatusOK, "587", ""},
			{StatusWarn, "no SRV record at _imaps._tcp.example.com", "_imaps._tcp.example.com. IN SRV 0 1 993 imap.example.com."}}},
	} {
		got := runSRV(t, c.cfg, c.zone)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d results, want %d: %+v", c.name, len(got), len(c.want), got)
			continue
		}
		for i, w := range c.want {
			g := got[i]
			if g.Check != "srv" || g.Domain != "example.com" || g.Status != w.status || !strings.Contains(g.Message, w.msg) || !strings.Contains(g.Fix, w.fix) {
				t.Errorf("%s: result %d: %+v\nwant %s %q fix %q", c.name, i, g, w.status, w.msg, w.fix)
			}
		}
	}
	// A resolver that fails is a FAIL that says so, not a missing record.
	srv := dnstest.New(t, dnstest.Zone{})
	srv.ServFail("_submissions._tcp.example.com")
	c := &Checker{Config: cfg, Resolver: srv.Resolver(), Now: time.Now}
	c.checkClientSRV(context.Background(), "example.com")
	if c.out[0].Status != StatusFail || !strings.Contains(c.out[0].Message, "cannot look up _submissions._tcp.example.com") {
		t.Errorf("SERVFAIL: %+v", c.out[0])
	}
}

// TestCheckAutoconfig checks the autoconfig names: their addresses and
// the certificate that must cover them.
func TestCheckAutoconfig(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.NewCA()
	ca.WriteFile(t, filepath.Join(dir, "ca.pem"))
	c1 := ca.Issue(testcert.Spec{DNSNames: []string{"mail.example.com", "autoconfig.example.com"}})
	testcert.WriteFiles(t, c1, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	f := filepath.Join(dir, "postern.toml")
	os.WriteFile(f, []byte(`hostname = "mail.example.com"
local_domains = ["example.com"]
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
ca_file = "ca.pem"
[autoconfig]
`), 0o600)
	cfg, err := config.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	srv := dnstest.New(t, dnstest.Zone{
		"mail.example.com":         {dnstest.A("192.0.2.1")},
		"autoconfig.example.com":   {dnstest.CNAME("mail.example.com")},
		"autodiscover.example.com": {dnstest.A("192.0.2.1")},
	})
	c := &Checker{Config: cfg, Resolver: srv.Resolver(), Now: time.Now}
	c.checkCertificates()
	c.checkAutoconfigServer()
	c.checkAutoconfig(context.Background(), "example.com")
	var got []Result
	for _, r := range c.out {
		if r.Check == "autoconfig" {
			got = append(got, r)
		}
	}
	want := []string{
		"WARN  no imap_host: the settings name no server to read mail from",
		"OK example.com autoconfig.example.com resolves and the certificate covers it",
		"WARN example.com no served certificate covers autodiscover.example.com",
	}
	if len(got) != len(want) {
		t.Fatalf("%+v", got)
	}
	for i, w := range want {
		if g := fmt.Sprintf("%s %s %s", got[i].Status, got[i].Domain, got[i].Message); !strings.HasPrefix(g, w) {
			t.Errorf("got %q, want %q...", g, w)
		}
	}
	srv.Remove("autodiscover.example.com")
	c.out = nil
	c.checkAutoconfig(context.Background(), "example.com")
	if r := c.out[1]; r.Status != StatusWarn || !strings.Contains(r.Message, "autodiscover.example.com has no address") ||
		r.Fix != "autodiscover.example.com. IN CNAME mail.example.com." {
		t.Errorf("no address: %+v", r)
	}
}
