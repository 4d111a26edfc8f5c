package autoconfig

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// mozillaServers returns "type hostname port socketType auth,auth username"
// for each server of a Mozilla answer.
func mozillaServers(t *testing.T, root *node) []string {
	t.Helper()
	var out []string
	ep := root.one(t, "emailProvider")
	for _, s := range append(ep.all("incomingServer"), ep.all("outgoingServer")...) {
		var auths []string
		for _, a := range s.all("authentication") {
			auths = append(auths, strings.TrimSpace(a.Text))
		}
		out = append(out, strings.Join([]string{s.Attrs["type"], s.text(t, "hostname"), s.text(t, "port"),
			s.text(t, "socketType"), strings.Join(auths, ","), s.text(t, "username")}, " "))
	}
	return out
}

func TestMozilla(t *testing.T) {
	t.Parallel()
	h := testHandler(t)
	want := []string{
		"imap imap.example.com 993 SSL password-cleartext %EMAILADDRESS%",
		"smtp mail.example.com 465 SSL password-cleartext %EMAILADDRESS%",
		"smtp mail.example.com 587 STARTTLS password-cleartext,password-encrypted,OAuth2 %EMAILADDRESS%",
	}
	for _, c := range []struct{ host, target string }{
		{"autoconfig.example.com", PathMozilla + "?emailaddress=alice%40example.com"},
		{"autoconfig.example.com", PathMozilla + "?emailaddress=alice@example.com"},
		{"autoconfig.example.com", PathMozilla}, // the domain from the host
		{"example.com", PathMozillaWellKnown + "?emailaddress=Alice+Tag@EXAMPLE.com"},
		{"autoconfig.example.com:443", PathMozilla},
	} {
		code, hdr, body := get(h, "GET", c.host, c.target, "")
		if code != 200 {
			t.Errorf("%s%s: %d %s", c.host, c.target, code, body)
			continue
		}
		if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/xml") {
			t.Errorf("Content-Type %q", ct)
		}
		root, err := parseTree([]byte(body))
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, body)
		}
		if p := checkMozilla(root); p != nil {
			t.Errorf("%s: breaks the format: %v\n%s", c.target, p, body)
		}
		if got := mozillaServers(t, root); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: servers\n%s\nwant\n%s", c.target, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if d := root.one(t, "emailProvider").text(t, "domain"); d != "example.com" {
			t.Errorf("domain %q", d)
		}
	}
}

func TestAutodiscover(t *testing.T) {
	t.Parallel()
	h := testHandler(t)
	req := func(addr string) string {
		return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="` + nsRequest + `">
  <Request>
    <EMailAddress>` + addr + `</EMailAddress>
    <AcceptableResponseSchema>` + nsOutlookAnswers + `</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
	}
	for _, c := range []struct{ method, path, body, addr string }{
		{"POST", PathAutodiscover, req("alice@example.com"), "alice@example.com"},
		{"POST", "/Autodiscover/Autodiscover.xml", req("Bob.O&apos;Neil+x@Example.ORG"), "Bob.O'Neil+x@example.org"},
		{"GET", PathAutodiscover + "?emailaddress=carol%40example.com", "", "carol@example.com"},
		// Delta Chat asks with a GET and no address (the domain is the
		// host's): the answer names no login, the client uses the address.
		{"GET", PathAutodiscover, "", "(none)"},
	} {
		code, hdr, body := get(h, c.method, "autodiscover.example.com", c.path, c.body)
		if code != 200 {
			t.Errorf("%s %s: %d %s", c.method, c.path, code, body)
			continue
		}
		if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
			t.Errorf("Content-Type %q", ct)
		}
		root, err := parseTree([]byte(body))
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, body)
		}
		if p := checkAutodiscover(root); p != nil {
			t.Errorf("breaks the format: %v\n%s", p, body)
		}
		var got []string
		for _, p := range root.one(t, "Response").one(t, "Account").all("Protocol") {
			login := "(none)"
			if ls := p.all("LoginName"); len(ls) > 0 {
				login = p.text(t, "LoginName")
			}
			got = append(got, strings.Join([]string{p.text(t, "Type"), p.text(t, "Server"), p.text(t, "Port"),
				p.text(t, "SSL"), p.text(t, "Encryption"), login, p.text(t, "AuthRequired"), p.text(t, "SPA")}, " "))
		}
		want := []string{
			"IMAP imap.example.com 993 on SSL " + c.addr + " on off",
			"SMTP mail.example.com 465 on SSL " + c.addr + " on off",
			"SMTP mail.example.com 587 on TLS " + c.addr + " on off",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("protocols\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestApple checks the profile with Python's plistlib, which parses
// property lists as Apple's tools do.
func TestApple(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			t.Fatal("python3 is required")
		}
		t.Skip("python3 not installed")
	}
	h := testHandler(t)
	addr := `o'hara&co@example.com`
	code, hdr, body := get(h, "GET", "autoconfig.example.com", PathApple+"?emailaddress="+url.QueryEscape(addr), "")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if hdr.Get("Content-Type") != "application/x-apple-aspen-config" || !strings.Contains(hdr.Get("Content-Disposition"), `filename="example.com.mobileconfig"`) {
		t.Errorf("headers %v", hdr)
	}
	got := plistJSON(t, body)
	var p map[string]any
	if err := json.Unmarshal([]byte(got), &p); err != nil {
		t.Fatal(err)
	}
	if p["PayloadType"] != "Configuration" || p["PayloadVersion"] != float64(1) || p["PayloadUUID"] == "" || p["PayloadIdentifier"] != "com.example.autoconfig."+p["PayloadIdentifier"].(string)[len("com.example.autoconfig."):] {
		t.Errorf("profile %v", p)
	}
	content := p["PayloadContent"].([]any)
	if len(content) != 1 {
		t.Fatalf("%d payloads", len(content))
	}
	m := content[0].(map[string]any)
	for k, v := range map[string]any{
		"PayloadType": "com.apple.mail.managed", "PayloadVersion": float64(1),
		"EmailAccountType": "EmailTypeIMAP", "EmailAddress": addr,
		"IncomingMailServerHostName": "imap.example.com", "IncomingMailServerPortNumber": float64(993),
		"IncomingMailServerUseSSL": true, "IncomingMailServerUsername": addr, "IncomingMailServerAuthentication": "EmailAuthPassword",
		"OutgoingMailServerHostName": "mail.example.com", "OutgoingMailServerPortNumber": float64(465),
		"OutgoingMailServerUseSSL": true, "OutgoingMailServerUsername": addr, "OutgoingMailServerAuthentication": "EmailAuthPassword",
		"OutgoingPasswordSameAsIncomingPassword": true,
	} {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	for k := range m {
		if strings.Contains(strings.ToLower(k), "password") && k != "OutgoingPasswordSameAsIncomingPassword" {
			t.Errorf("the profile holds %s", k)
		}
	}
	if m["PayloadUUID"] == p["PayloadUUID"] {
		t.Error("the payload and the profile share a UUID")
	}
	// The same address gets the same identifiers (the profile replaces
	// itself); another address others.
	_, _, again := get(h, "GET", "autoconfig.example.com", PathApple+"?emailaddress="+url.QueryEscape(addr), "")
	_, _, other := get(h, "GET", "autoconfig.example.com", PathApple+"?emailaddress=x@example.com", "")
	if again != body || other == body {
		t.Error("identifiers are not derived from the address")
	}
	// No IMAP server: no profile.
	noIMAP := testHandler(t)
	noIMAP.o.IMAP = nil
	if code, _, _ := get(noIMAP, "GET", "autoconfig.example.com", PathApple+"?emailaddress=x@example.com", ""); code != 404 {
		t.Errorf("without IMAP: %d, want 404", code)
	}
}

// plistJSON parses a property list with Python's plistlib and returns
// it as JSON.
func plistJSON(t *testing.T, body string) string {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-c", "import json, plistlib, sys; print(json.dumps(plistlib.loads(sys.stdin.buffer.read(), fmt=plistlib.FMT_XML)))")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plistlib: %v\n%s\n%s", err, out, body)
	}
	return string(out)
}

// TestHostileInput checks each refusal and its status.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	h := testHandler(t)
	want := map[string]float64{} // refusals by result, for the metrics
	adBody := func(inner string) string {
		return `<Autodiscover xmlns="` + nsRequest + `"><Request><EMailAddress>` + inner + `</EMailAddress></Request></Autodiscover>`
	}
	for _, c := range []struct {
		name, method, host, target, body string
		code                             int
	}{
		{"unknown domain", "GET", "autoconfig.example.net", PathMozilla + "?emailaddress=a@example.net", "", 404},
		{"unknown domain by host", "GET", "autoconfig.example.net", PathMozilla, "", 404},
		{"unknown domain, autodiscover", "POST", "autodiscover.example.com", PathAutodiscover, adBody("a@evil.example"), 404},
		{"unknown domain, apple", "GET", "autoconfig.example.com", PathApple + "?emailaddress=a@evil.example", "", 404},
		{"a subdomain is not the domain", "GET", "x", PathMozilla + "?emailaddress=a@sub.example.com", "", 404},
		{"unknown path", "GET", "autoconfig.example.com", "/mail/config-v1.0.xml", "", 404},
		{"XML in the address", "GET", "x", PathMozilla + "?emailaddress=" + url.QueryEscape("a<b>@example.com"), "", 400},
		{"closing tag in the address", "POST", "x", PathAutodiscover, adBody("x@example.com&lt;/LoginName&gt;&lt;LoginName&gt;admin"), 400},
		{"quoted local part", "GET", "x", PathApple + "?emailaddress=" + url.QueryEscape(`"a b"@example.com`), "", 400},
		{"control character", "GET", "x", PathApple + "?emailaddress=a%0d%0aX-Header:1@example.com", "", 400},
		{"no @", "GET", "x", PathApple + "?emailaddress=example.com", "", 400},
		{"empty", "GET", "x", PathApple + "?emailaddress=", "", 400},
		{"no address (apple)", "GET", "x", PathApple, "", 400},
		{"no address, POST", "POST", "autodiscover.example.com", PathAutodiscover, adBody(""), 400},
		{"no address, unknown host", "GET", "autodiscover.example.net", PathAutodiscover, "", 404},
		{"twice", "GET", "x", PathMozilla + "?emailaddress=a@example.com&emailaddress=b@example.org", "", 400},
		{"bad escape", "GET", "x", PathMozilla + "?emailaddress=a%zz@example.com", "", 400},
		{"long local part", "GET", "x", PathApple + "?emailaddress=" + strings.Repeat("a", 65) + "@example.com", "", 400},
		{"long query", "GET", "x", PathMozilla + "?x=" + strings.Repeat("a", MaxQuerySize), "", 400},
		{"body too large", "POST", "x", PathAutodiscover, adBody(strings.Repeat("a", MaxBodySize) + "@example.com"), 413},
		{"not XML", "POST", "x", PathAutodiscover, "emailaddress=a@example.com", 400},
		{"entity expansion", "POST", "x", PathAutodiscover, `<!DOCTYPE a [<!ENTITY e "a@example.com">]>` + adBody("&e;"), 400},
		{"other namespace", "POST", "x", PathAutodiscover, `<Autodiscover xmlns="urn:x"><Request><EMailAddress>a@example.com</EMailAddress></Request></Autodiscover>`, 400},
		{"ActiveSync schema", "POST", "x", PathAutodiscover, `<Autodiscover><Request><EMailAddress>a@example.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>`, 400},
		{"address in both", "POST", "x", PathAutodiscover + "?emailaddress=a@example.com", adBody("a@example.com"), 400},
		{"PUT", "PUT", "x", PathMozilla, "", 405},
		{"POST to Mozilla", "POST", "autoconfig.example.com", PathMozilla, "x", 405},
	} {
		code, _, body := get(h, c.method, c.host, c.target, c.body)
		if code != c.code {
			t.Errorf("%s: %d %q, want %d", c.name, code, body, c.code)
		}
		want[map[int]string{404: "not_found", 400: "bad_request", 405: "bad_method", 413: "too_large"}[c.code]]++
	}
	// The Handler counts each refusal by result into its own metrics.
	if got := requestsByResult(t, h); !maps.Equal(got, want) {
		t.Errorf("requests counted %v, want %v", got, want)
	}
}

// requestsByResult sums h's postern_autoconfig_requests_total by
// result, over the formats.
func requestsByResult(t *testing.T, h *Handler) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h.o.Metrics.Requests)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					got[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}

// TestParseAddress checks the address rules.
func TestParseAddress(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"alice@example.com":        "alice@example.com",
		"Alice.B+tag@EXAMPLE.COM":  "Alice.B+tag@example.com",
		"o'hara&co{x}@example.com": "o'hara&co{x}@example.com",
		"élodie@example.com":       "élodie@example.com",
		"a@xn--bcher-kva.example":  "a@xn--bcher-kva.example",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + ".com": strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + ".com",
	} {
		l, d, err := ParseAddress(in)
		if err != nil || l+"@"+d != want {
			t.Errorf("%q: %q@%q, %v", in, l, d, err)
		}
	}
	for _, in := range []string{"", "@example.com", "a@", "a@@example.com", "a.@example.com", ".a@example.com", "a..b@example.com",
		"a b@example.com", "a\x00@example.com", "a\u200b@example.com", "a@-example.com", "a@example..com", "a@exa_mple.com",
		"a@exämple.com", "\xff@example.com", strings.Repeat("a", 65) + "@example.com", "a@" + strings.Repeat("b.", 127) + "com",
		`"a"@example.com`, "a(comment)@example.com", "a<b@example.com"} {
		if l, d, err := ParseAddress(in); err == nil {
			t.Errorf("%q accepted as %q@%q", in, l, d)
		}
	}
}

// TestHead checks HEAD: headers, no body.
func TestHead(t *testing.T) {
	t.Parallel()
	code, hdr, body := get(testHandler(t), http.MethodHead, "autoconfig.example.com", PathMozilla, "")
	if code != 200 || body != "" || hdr.Get("Content-Type") == "" {
		t.Errorf("HEAD: %d %q %v", code, body, hdr)
	}
}
