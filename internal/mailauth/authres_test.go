package mailauth

import (
	"strings"
	"testing"
)

func TestAuthenticationResultsSyntax(t *testing.T) {
	t.Parallel()
	got := string(AuthenticationResults("mx.example.org", Results{
		SPF:     []SPFResult{{Result: "fail", Identity: "mailfrom", Sender: `"odd user"@example.com`}},
		DKIM:    []DKIMResult{{Result: "fail", Domain: "example.com", Selector: "s", Reason: `body hash "did" not verify`}},
		DMARC:   DMARCResult{Result: "fail", From: "example.com", Policy: PolicyQuarantine, Record: PolicyReject},
		Checked: true,
	}))
	want := "Authentication-Results: mx.example.org;\r\n" +
		"\tspf=fail smtp.mailfrom=\"\\\"odd user\\\"@example.com\";\r\n" +
		"\tdkim=fail reason=\"body hash \\\"did\\\" not verify\" header.d=example.com header.s=s;\r\n" +
		"\tdmarc=fail (p=reject dis=quarantine) header.from=example.com\r\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if got := string(AuthenticationResults("mx.example.org", Results{})); got != "Authentication-Results: mx.example.org;\r\n\tdkim=none\r\n" {
		t.Errorf("empty: %q", got)
	}
	for v, want := range map[string]string{
		"mx.example.org; spf=pass":           "mx.example.org",
		"  MX.Example.ORG.;":                 "mx.example.org",
		"(a (b) c) mx.example.org 1; none":   "mx.example.org",
		"mx.example.org":                     "mx.example.org",
		"\"mx.example.org\"; none":           "mx.example.org",
		"(unterminated mx.example.org; none": "",
	} {
		if got := authservID(v); got != want {
			t.Errorf("authservID(%q) = %q, want %q", v, got, want)
		}
	}
	if s := stripFields([]byte("A: 1\r\nB: 2\r\n 3\r\nC: 4\r\n\r\nbody B: 5\r\n"), func(f field) bool { return f.name == "B" }); string(s) != "A: 1\r\nC: 4\r\n\r\nbody B: 5\r\n" {
		t.Errorf("stripFields: %q", s)
	}
	if !strings.HasPrefix(pvalue("a b"), `"`) || pvalue("user@example.com") != "user@example.com" {
		t.Error("pvalue")
	}
}
