package dns_test

import (
	"context"
	"testing"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

// TestLookupSRV asks a DNS server on loopback for SRV records: found,
// "." (not available), through a CNAME, and none.
func TestLookupSRV(t *testing.T) {
	srv := dnstest.New(t, dnstest.Zone{
		"_submissions._tcp.example.com": {dnstest.SRV(0, 1, 465, "Mail.Example.com")},
		"_submission._tcp.example.com":  {dnstest.SRV(0, 0, 0, ".")},
		"_imaps._tcp.example.com":       {dnstest.CNAME("_imaps._tcp.example.net")},
		"_imaps._tcp.example.net":       {dnstest.SRV(10, 5, 993, "imap.example.net")},
	})
	c := srv.Client(dns.Config{})
	ctx := context.Background()
	for name, want := range map[string]dns.SRV{
		"_submissions._tcp.example.com": {Target: "mail.example.com", Port: 465, Weight: 1},
		"_submission._tcp.example.com":  {Target: ""},
		"_imaps._tcp.example.com":       {Target: "imap.example.net", Port: 993, Priority: 10, Weight: 5},
	} {
		got, _, err := c.LookupSRV(ctx, name)
		if err != nil || len(got) != 1 || got[0] != want {
			t.Errorf("%s: %+v %v, want %+v", name, got, err, want)
		}
	}
	if _, _, err := c.LookupSRV(ctx, "_submissions._tcp.example.org"); !dns.IsNotFound(err) {
		t.Errorf("missing: %v", err)
	}
}
