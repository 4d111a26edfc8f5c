package mailauth

import (
	"strings"
	"testing"
)

func TestCheckSPFSyntax(t *testing.T) {
	t.Parallel()
	for term, ok := range map[string]bool{
		"mx": true, "-all": true, "~all": true, "a/24": true, "mx:mail.example.com/24": true,
		"ip4:192.0.2.0/24": true, "ip6:2001:db8::/32": true, "ip4:2001:db8::1": false,
		"include:_spf.example.net": true, "include": false, "redirect=_spf.example.com": true,
		"exp=explain.example.com": true, "all:x": false, "foo": false,
	} {
		err := CheckSPFSyntax("v=spf1 " + term)
		if (err == nil) != ok {
			t.Errorf("CheckSPFSyntax(v=spf1 %s) = %v, want ok %v", term, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+term+`" is not a valid mechanism`) {
			t.Errorf("error %q does not name the term %q", err, term)
		}
	}
	if err := CheckSPFSyntax("v=spf2 mx"); err == nil {
		t.Error("v=spf2 accepted")
	}
	if err := CheckSPFSyntax("V=SPF1 MX -ALL"); err != nil {
		t.Errorf("upper case: %v", err)
	}
}

func TestSPFRecords(t *testing.T) {
	t.Parallel()
	got := SPFRecords([]string{"v=spf1 mx -all", "v=spf10 a", "V=SPF1", "google-site-verification=x", "v=spf1"})
	if strings.Join(got, "|") != "v=spf1 mx -all|V=SPF1|v=spf1" {
		t.Errorf("SPFRecords = %q", got)
	}
}

func TestRecordKey(t *testing.T) {
	t.Parallel()
	good := []struct{ rec, key string }{
		{"v=DKIM1; k=ed25519; p=abc", "abc"},
		{"v=DKIM1; p=ab c\r\n\tde; t=s;", "abcde"},
		{"v=DKIM1; p=", ""}, // revoked
		{"p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A", "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"},
	}
	for _, g := range good {
		if k, err := RecordKey(g.rec); k != g.key || err != nil {
			t.Errorf("RecordKey(%q) = %q, %v; want %q", g.rec, k, err, g.key)
		}
	}
	for _, bad := range []string{"v=DKIM1; k=rsa", "v=DKIM1; p=a; p=b", "v=DKIM1; junk; p=a"} {
		if k, err := RecordKey(bad); err == nil {
			t.Errorf("RecordKey(%q) = %q, want an error", bad, k)
		}
	}
}

// FuzzCheckSPFSyntax: the SPF syntax check never panics, accepts only
// records that start with v=spf1, and names the term it refuses.
func FuzzCheckSPFSyntax(f *testing.F) {
	for _, s := range []string{"v=spf1 mx -all", "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net ~all",
		"v=spf1 ip6:2001:db8::/32 redirect=x.example", "v=spf1 a/24 ip4:300.1.1.1", "v=spf1 exists:%{i}.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		err := CheckSPFSyntax(rec)
		terms := strings.Fields(rec)
		if err == nil && (len(terms) == 0 || !strings.EqualFold(terms[0], "v=spf1")) {
			t.Fatalf("accepted %q", rec)
		}
		if err == nil && len(SPFRecords([]string{strings.Join(terms, " ")})) != 1 {
			t.Fatalf("accepted %q, which SPFRecords does not find", rec)
		}
	})
}
