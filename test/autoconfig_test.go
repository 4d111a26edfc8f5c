package test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/acme/acmetest"
	"postern/internal/dns/dnstest"
	"postern/internal/testcert"
)

// curlHTTPS fetches url with curl, verifying the server's certificate
// against caFile and reaching every host name at addr's port on
// 127.0.0.1 (--resolve); extra are more options (method, data). It
// returns the HTTP status and the body.
func curlHTTPS(t *testing.T, caFile, addr, url string, extra ...string) (int, string) {
	t.Helper()
	curl := needTool(t, "curl")
	_, port, _ := net.SplitHostPort(addr)
	host := strings.TrimPrefix(url, "https://")
	host = host[:strings.IndexAny(host, ":/")]
	args := append([]string{"-sS", "--max-time", "10", "--cacert", caFile, "--resolve", host + ":" + port + ":127.0.0.1",
		"-w", "\n%{http_code}"}, extra...)
	out, err := exec.Command(curl, append(args, url)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", url, err, out)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscanf(s[i+1:], "%d", &code)
	return code, s[:i]
}

// mozillaConfig is what the test reads of a Mozilla autoconfig file.
type mozillaConfig struct {
	XMLName  xml.Name `xml:"clientConfig"`
	Version  string   `xml:"version,attr"`
	Provider struct {
		ID       string         `xml:"id,attr"`
		Incoming []mozillaEntry `xml:"incomingServer"`
		Outgoing []mozillaEntry `xml:"outgoingServer"`
	} `xml:"emailProvider"`
}

type mozillaEntry struct {
	Type     string   `xml:"type,attr"`
	Hostname string   `xml:"hostname"`
	Port     string   `xml:"port"`
	Socket   string   `xml:"socketType"`
	Auth     []string `xml:"authentication"`
	Username string   `xml:"username"`
}

func (e mozillaEntry) String() string {
	return strings.Join([]string{e.Type, e.Hostname, e.Port, e.Socket, strings.Join(e.Auth, ","), e.Username}, " ")
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// startAutoconfig starts the real binary for example.test with
// [autoconfig] on a free loopback port (IMAP at imap.example.test), its
// certificate, for the autoconfig and autodiscover names, issued by a test
// CA; it returns the server, the autoconfig address and the CA's PEM file.
// With standardPorts, submission listens on port 587 and submissions on
// 465 of a loopback address free on both, as clients expect them.
func startAutoconfig(t *testing.T, standardPorts bool) (*server, string, string) {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, filepath.Join(dir, "ca.pem"))
	c := ca.Issue(testcert.Spec{DNSNames: []string{"localhost", "example.test", "autoconfig.example.test", "autodiscover.example.test"}})
	testcert.WriteFiles(t, c, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	acAddr := freeAddr(t)
	s := testConfig(t, dir, fmt.Sprintf("\n[autoconfig]\naddress = %q\nimap_host = \"imap.example.test\"\n", acAddr))
	b, _ := os.ReadFile(s.config)
	cfg := strings.Replace(string(b), "self_signed = true", "cert_file = \"cert.pem\"\nkey_file = \"key.pem\"\nca_file = \"ca.pem\"", 1)
	if standardPorts {
		ip := loopbackFreeOn(t, "465", "587")
		cfg = strings.Replace(cfg, s.sub, ip+":587", 1)
		cfg = strings.Replace(cfg, s.subs, ip+":465", 1)
		s.sub, s.subs = ip+":587", ip+":465"
	}
	os.WriteFile(s.config, []byte(cfg), 0o600)
	s.start()
	return s, acAddr, filepath.Join(dir, "ca.pem")
}

// loopbackFreeOn returns an address of 127.0.2.0/24 on which all the
// ports can be bound at the moment.
func loopbackFreeOn(t *testing.T, ports ...string) string {
	t.Helper()
	for i := 1; i < 255; i++ {
		ip := fmt.Sprintf("127.0.2.%d", i)
		var ls []net.Listener
		for _, p := range ports {
			if l, err := net.Listen("tcp", net.JoinHostPort(ip, p)); err == nil {
				ls = append(ls, l)
			}
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == len(ports) {
			return ip
		}
	}
	t.Fatalf("no address of 127.0.2.0/24 has ports %v free (ports under 1024 need root, as scripts/test runs)", ports)
	return ""
}

// TestAutoconfig runs the real binary with [autoconfig] and fetches, with
// curl over real HTTPS (the server's certificate, verified, chosen by
// the autoconfig name), Mozilla's autoconfig, Microsoft's Autodiscover
// and the Apple profile (read with Python's plistlib); hostile requests
// get their statuses; postern check reports the listener; and after a
// graceful restart the new process serves the same socket.
func TestAutoconfig(t *testing.T) {
	integration(t)
	s, acAddr, caFile := startAutoconfig(t, false)
	base := "https://autoconfig.example.test:" + portOf(acAddr)

	t.Run("Mozilla autoconfig", func(t *testing.T) {
		for _, url := range []string{
			base + "/mail/config-v1.1.xml?emailaddress=gina%40example.test",
			"https://example.test:" + portOf(acAddr) + "/.well-known/autoconfig/mail/config-v1.1.xml",
		} {
			code, body := curlHTTPS(t, caFile, acAddr, url)
			if code != 200 {
				t.Fatalf("%s: %d %s", url, code, body)
			}
			var mc mozillaConfig
			if err := xml.Unmarshal([]byte(body), &mc); err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			var got []string
			for _, e := range append(mc.Provider.Incoming, mc.Provider.Outgoing...) {
				got = append(got, e.String())
			}
			want := []string{
				"imap imap.example.test 993 SSL password-cleartext %EMAILADDRESS%",
				"smtp localhost " + portOf(s.subs) + " SSL password-cleartext %EMAILADDRESS%",
				"smtp localhost " + portOf(s.sub) + " STARTTLS password-cleartext %EMAILADDRESS%",
			}
			if mc.Version != "1.1" || mc.Provider.ID != "example.test" || strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s:\n%s\nwant\n%s", url, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})

	t.Run("Microsoft Autodiscover", func(t *testing.T) {
		req := `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>gina@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`
		code, body := curlHTTPS(t, caFile, acAddr, "https://autodiscover.example.test:"+portOf(acAddr)+"/Autodiscover/Autodiscover.xml",
			"-X", "POST", "-H", "Content-Type: text/xml", "--data-binary", req)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var ad struct {
			XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
			Response struct {
				XMLName xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
				Account struct {
					AccountType, Action string
					Protocol            []struct{ Type, Server, Port, LoginName, SSL, Encryption, AuthRequired string }
				}
			}
		}
		if err := xml.Unmarshal([]byte(body), &ad); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		var got []string
		for _, p := range ad.Response.Account.Protocol {
			got = append(got, strings.Join([]string{p.Type, p.Server, p.Port, p.LoginName, p.SSL, p.Encryption, p.AuthRequired}, " "))
		}
		want := []string{
			"IMAP imap.example.test 993 gina@example.test on SSL on",
			"SMTP localhost " + portOf(s.subs) + " gina@example.test on SSL on",
			"SMTP localhost " + portOf(s.sub) + " gina@example.test on TLS on",
		}
		if ad.Response.Account.AccountType != "email" || ad.Response.Account.Action != "settings" || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%+v\n%s\nwant\n%s", ad.Response.Account, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("Apple profile", func(t *testing.T) {
		code, body := curlHTTPS(t, caFile, acAddr, base+"/mail/config.mobileconfig?emailaddress=gina%40example.test")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		cmd := exec.Command("/usr/bin/python3", "-c", `import json, plistlib, sys
p = plistlib.loads(sys.stdin.buffer.read())
m = p["PayloadContent"][0]
print(json.dumps([p["PayloadType"], m["PayloadType"], m["EmailAddress"], m["OutgoingMailServerHostName"], m["OutgoingMailServerPortNumber"],
    m["OutgoingMailServerUseSSL"], m["IncomingMailServerHostName"], sorted(k for k in m if "Password" in k)]))`)
		cmd.Stdin = strings.NewReader(body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("plistlib: %v\n%s", err, out)
		}
		var got []any
		json.Unmarshal(out, &got)
		want := fmt.Sprintf(`["Configuration","com.apple.mail.managed","gina@example.test","localhost",%s,true,"imap.example.test",["OutgoingPasswordSameAsIncomingPassword"]]`, portOf(s.subs))
		if g, _ := json.Marshal(got); string(g) != want {
			t.Errorf("profile %s, want %s", g, want)
		}
	})

	t.Run("hostile requests", func(t *testing.T) {
		for _, c := range []struct {
			url   string
			extra []string
			code  int
		}{
			{base + "/mail/config-v1.1.xml?emailaddress=gina%40evil.example", nil, 404},
			{base + "/mail/config.mobileconfig?emailaddress=" + "%3Cx%3E%40example.test", nil, 400},
			{base + "/autodiscover/autodiscover.xml", []string{"--data-binary", "<Autodiscover><Request><EMailAddress>" + strings.Repeat("a", 20000) + "@example.test</EMailAddress></Request></Autodiscover>"}, 413},
			{base + "/etc/passwd", nil, 404},
			{base + "/mail/config-v1.1.xml", []string{"-X", "DELETE"}, 405},
		} {
			if code, body := curlHTTPS(t, caFile, acAddr, c.url, c.extra...); code != c.code {
				t.Errorf("%s: %d %s, want %d", c.url, code, body, c.code)
			}
		}
		if m := metricLine(t, s.http, `postern_autoconfig_requests_total{format="mozilla",result="not_found"}`); m == "" {
			t.Error("refusals not counted")
		}
	})

	t.Run("check", func(t *testing.T) {
		out, _ := s.run("", "check")
		for _, want := range []string{
			"OK   autoconfig: serves on " + acAddr + ": submission at localhost, IMAP at imap.example.test:993",
			"WARN srv example.test: no SRV record at _submissions._tcp.example.test",
			"fix: _submissions._tcp.example.test. IN SRV 0 1 " + portOf(s.subs) + " localhost.",
			"fix: _imaps._tcp.example.test. IN SRV 0 1 993 imap.example.test.",
			"WARN autoconfig example.test: autoconfig.example.test has no address",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("check lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("graceful restart", func(t *testing.T) {
		restarted(t, s)
		waitUntil(t, 15*time.Second, "the old process did not exit", func() bool { return !pidAlive(s.cmd.Process.Pid) })
		if code, body := curlHTTPS(t, caFile, acAddr, base+"/mail/config-v1.1.xml"); code != 200 {
			t.Errorf("after the restart: %d %s", code, body)
		}
	})
}

// metricLine returns the line of the /metrics page at addr that starts
// with prefix, "" when there is none.
func metricLine(t *testing.T, addr, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(metricsPage(t, addr), "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestAutoconfigACME runs the real binary with [acme] and [autoconfig]
// against a real Pebble that validates HTTP-01: the certificate it
// obtains names autoconfig.example.com and autodiscover.example.com
// too, and curl fetches the settings over it.
func TestAutoconfigACME(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	s := &server{t: t, data: filepath.Join(dir, "data"), mx: freeAddr(t), sub: freeAddr(t), subs: freeAddr(t), http: freeAddr(t)}
	s.dns = dnstest.New(t, dnstest.Zone{
		"mail.example.com":         {dnstest.A("127.0.0.1")},
		"autoconfig.example.com":   {dnstest.CNAME("mail.example.com")},
		"autodiscover.example.com": {dnstest.A("127.0.0.1")},
	})
	acmeAddr, acAddr := freeAddr(t), freeAddr(t)
	var port int
	fmt.Sscanf(portOf(acmeAddr), "%d", &port)
	p := acmetest.Start(t, acmetest.Options{HTTPPort: port, DNSServer: s.dns.Addr()})
	roots := writeACMEConfig(t, s, p, fmt.Sprintf("http_address = %q\n[autoconfig]\naddress = %q\n", acmeAddr, acAddr))
	s.start()
	chain := waitACMEChain(t, s, p, 60*time.Second)
	leaf := p.Verify(t, chain, "autoconfig.example.com")
	for _, n := range []string{"mail.example.com", "autoconfig.example.com", "autodiscover.example.com"} {
		if leaf.VerifyHostname(n) != nil {
			t.Errorf("the ACME certificate does not name %s: %v", n, leaf.DNSNames)
		}
	}
	for _, host := range []string{"autoconfig", "autodiscover"} {
		url := "https://" + host + ".example.com:" + portOf(acAddr) + "/mail/config-v1.1.xml?emailaddress=a%40example.com"
		if code, body := curlHTTPS(t, roots, acAddr, url); code != 200 || !strings.Contains(body, `<emailProvider id="example.com">`) {
			t.Errorf("%s: %d %s", url, code, body)
		}
	}
}
