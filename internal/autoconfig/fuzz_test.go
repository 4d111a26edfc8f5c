package autoconfig

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseAddress checks that the address parser never panics, that
// what it accepts keeps the limits, holds nothing XML or a header could
// trip on, and parses again to itself.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"alice@example.com", "a+b@EXAMPLE.com", "élodie@example.com", `"a"@x.y`, "a@b@c", "a<b>@x.y", "@", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, d, err := ParseAddress(s)
		if err != nil {
			return
		}
		a := l + "@" + d
		if len(a) > maxAddress || len(l) > maxLocal || !utf8.ValidString(a) || strings.ContainsAny(a, "<>\"\\ \t\r\n\x00()[],;:") {
			t.Fatalf("%q accepted as %q", s, a)
		}
		if d != strings.ToLower(d) {
			t.Fatalf("domain %q not lower case", d)
		}
		if l2, d2, err := ParseAddress(a); err != nil || l2 != l || d2 != d {
			t.Fatalf("%q does not parse again to itself: %q@%q %v", a, l2, d2, err)
		}
	})
}

// FuzzServe sends hostile requests to the handler: a query for the
// emailaddress parameter and an Autodiscover body. It must never panic,
// answer only with the statuses it documents, and every 200 must be
// well-formed XML that keeps the published format and names the
// address exactly as parsed, however it was written.
func FuzzServe(f *testing.F) {
	f.Add("alice%40example.com", `<Autodiscover><Request><EMailAddress>bob@example.org</EMailAddress></Request></Autodiscover>`)
	f.Add("a%26b%27c@example.com", `<Autodiscover><Request><EMailAddress>a&amp;b&lt;@example.org</EMailAddress></Request></Autodiscover>`)
	f.Add("x%3C%2Fstring%3E@example.com", `<!DOCTYPE a [<!ENTITY e "x">]><Autodiscover>&e;</Autodiscover>`)
	f.Add("%ff@example.com", "<Autodiscover><Request><EMailAddress>\xff@example.com</EMailAddress></Request></Autodiscover>")
	h := testHandler(f)
	f.Fuzz(func(t *testing.T, query, body string) {
		addr, _ := url.PathUnescape(query)
		for _, rq := range []struct{ method, target, query, body string }{
			{"GET", PathMozilla, "emailaddress=" + query, ""},
			{"GET", PathApple, "emailaddress=" + query, ""},
			{"GET", PathAutodiscover, "emailaddress=" + query, ""},
			{"POST", PathAutodiscover, "", body},
		} {
			code, out := serveRaw(h, rq.method, rq.target, rq.query, rq.body)
			switch code {
			case 200:
			case 400, 404, 413:
				continue
			default:
				t.Fatalf("%s %s: status %d", rq.method, rq.target, code)
			}
			root, err := parseTree([]byte(out))
			if err != nil {
				t.Fatalf("%s %q: not well-formed: %v\n%s", rq.method, rq.target, err, out)
			}
			switch {
			case rq.target == PathMozilla:
				if p := checkMozilla(root); p != nil {
					t.Fatalf("%q: %v", query, p)
				}
			case rq.method == "GET" && rq.target == PathAutodiscover:
				if p := checkAutodiscover(root); p != nil {
					t.Fatalf("%q: %v", query, p)
				}
				l, d, _ := ParseAddress(addr)
				login := strings.TrimSpace(root.one(t, "Response").one(t, "Account").all("Protocol")[0].one(t, "LoginName").Text)
				if login != l+"@"+d {
					t.Fatalf("%q: LoginName %q, want %q", query, login, l+"@"+d)
				}
			case rq.method == "POST":
				if p := checkAutodiscover(root); p != nil {
					t.Fatalf("%q: %v", body, p)
				}
			}
		}
	})
}
