package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/check"
	"postern/internal/config"
	"postern/internal/dns/dnstest"
	"postern/internal/mailauth"
	"postern/internal/server"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// checkEnv is a configuration with a DKIM key, a DNS server on loopback
// and an HTTPS server standing in for mta-sts.example.com.
type checkEnv struct {
	cfg      *config.Config
	cfgFile  string
	dns      *dnstest.Server
	http     *http.Client
	policy   string // served at /.well-known/mta-sts.txt
	dkimRec  string // the DKIM TXT record of the key
	dkimZone string // its zone-file line
}

func newCheckEnv(t *testing.T, zone dnstest.Zone) *checkEnv {
	t.Helper()
	dir := t.TempDir()
	e := &checkEnv{dns: dnstest.New(t, zone)}
	e.cfgFile = filepath.Join(dir, "postern.toml")
	os.WriteFile(e.cfgFile, []byte(fmt.Sprintf(`hostname = "mail.example.com"
local_domains = ["example.com"]
data_dir = "data"
[tls]
self_signed = true
[dns]
servers = [%q]
timeout = "500ms"
[check]
public_addresses = ["192.0.2.1"]
`, e.dns.Addr())), 0o600)
	cfg, err := config.Load(e.cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	addTestUser(t, cfg, "postmaster@example.com")
	key, pemKey, err := mailauth.GenerateKey(mailauth.Ed25519SHA256)
	if err != nil {
		t.Fatal(err)
	}
	kp := mailauth.KeyPath(cfg.DataDir, "example.com", "s1", mailauth.Ed25519SHA256)
	os.MkdirAll(filepath.Dir(kp), 0o700)
	os.WriteFile(kp, pemKey, 0o600)
	e.dkimRec, _ = mailauth.KeyRecord(key)
	e.dkimZone = mailauth.ZoneRecord("example.com", "s1", e.dkimRec)

	// The MTA-STS policy host: a certificate for mta-sts.example.com,
	// every connection of the client dialled to the test server.
	certFile, keyFile, err := tlsconf.EnsureSelfSigned(filepath.Join(dir, "sts"), []string{"mta-sts.example.com"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "mta-sts.example.com" || r.URL.Path != "/.well-known/mta-sts.txt" || e.policy == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, e.policy)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	pemCert, _ := os.ReadFile(certFile)
	roots.AppendCertsFromPEM(pemCert)
	e.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "mta-sts.example.com:443" {
				return nil, fmt.Errorf("test dialer: unexpected address %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}}
	return e
}

// addTestUser adds a user to cfg's users file (cheap Argon2 parameters).
func addTestUser(t *testing.T, cfg *config.Config, addr string) {
	t.Helper()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := userdb.Open(cfg.UsersFile(), userdb.Options{Argon2: userdb.Argon2Params{Time: 1, MemoryKiB: 8, Threads: 1}, SCRAMIterations: userdb.MinSCRAMIterations})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Add(addr, "pw-check-1"); err != nil {
		t.Fatal(err)
	}
}

func (e *checkEnv) run(t *testing.T) []check.Result {
	t.Helper()
	c := server.NewChecker(e.cfg, e.dns.Resolver(), e.http)
	c.Now = func() time.Time { return time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC) }
	return server.RunChecks(context.Background(), c)
}

// find returns the results of one check.
func find(rs []check.Result, name string) []check.Result {
	var out []check.Result
	for _, r := range rs {
		if r.Check == name {
			out = append(out, r)
		}
	}
	return out
}

func goodZone() dnstest.Zone {
	return dnstest.Zone{
		"example.com":                    {dnstest.MX(10, "mail.example.com"), dnstest.TXT("v=spf1 ip4:192.0.2.0/24 -all")},
		"mail.example.com":               {dnstest.A("192.0.2.1")},
		dnstest.ReverseName("192.0.2.1"): {dnstest.PTR("mail.example.com")},
		"_dmarc.example.com":             {dnstest.TXT("v=DMARC1; p=reject; rua=mailto:postmaster@example.com")},
		"_mta-sts.example.com":           {dnstest.TXT("v=STSv1; id=20261127")},
		"_smtp._tls.example.com":         {dnstest.TXT("v=TLSRPTv1; rua=mailto:tlsrpt@example.com")},
		"_submissions._tcp.example.com":  {dnstest.SRV(0, 1, 465, "mail.example.com")},
		"_submission._tcp.example.com":   {dnstest.SRV(0, 1, 587, "mail.example.com")},
	}
}

// TestCheckAllWell: every record right, every check OK.
func TestCheckAllWell(t *testing.T) {
	e := newCheckEnv(t, goodZone())
	e.dns.Set("s1._domainkey.example.com", dnstest.TXT(e.dkimRec))
	e.policy = "version: STSv1\r\nmode: enforce\r\nmx: *.example.com\r\nmax_age: 86400\r\n"
	rs := e.run(t)
	for _, r := range rs {
		if r.Status != check.StatusOK {
			t.Errorf("%+v", r)
		}
	}
	for _, check := range []string{"config", "data-dir", "postmaster", "certificate", "address", "ptr", "mx", "spf", "dkim", "dmarc", "mta-sts", "tls-rpt"} {
		if len(find(rs, check)) != 1 {
			t.Errorf("check %s: %d results, want 1", check, len(find(rs, check)))
		}
	}
	var out bytes.Buffer
	check.Print(&out, rs, false)
	if !strings.Contains(out.String(), "OK   mta-sts example.com: policy mode enforce, mx *.example.com\n") ||
		!strings.HasSuffix(out.String(), "15 checks: 0 failed, 0 warnings\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestCheckMissing: nothing published but the host's address; each
// missing record is a FAIL or (optional ones) a WARN with the record to
// publish.
func TestCheckMissing(t *testing.T) {
	e := newCheckEnv(t, dnstest.Zone{"mail.example.com": {dnstest.A("192.0.2.1")}})
	rs := e.run(t)
	want := map[string]struct{ status, fix string }{
		"mx":      {check.StatusFail, "example.com. IN MX 10 mail.example.com."},
		"spf":     {check.StatusFail, `example.com. IN TXT "v=spf1 mx -all"`},
		"dkim":    {check.StatusFail, e.dkimZone},
		"dmarc":   {check.StatusFail, `_dmarc.example.com. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.com"`},
		"mta-sts": {check.StatusWarn, "_mta-sts.example.com. IN TXT \"v=STSv1; id=2026112701\"\n  and serve at https://mta-sts.example.com/.well-known/mta-sts.txt"},
		"tls-rpt": {check.StatusWarn, `_smtp._tls.example.com. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@example.com"`},
		"ptr":     {check.StatusFail, "publish 1.2.0.192.in-addr.arpa. IN PTR mail.example.com."},
	}
	for check, w := range want {
		got := find(rs, check)
		if len(got) != 1 || got[0].Status != w.status || !strings.Contains(got[0].Fix, w.fix) {
			t.Errorf("%s: %+v\nwant %s with fix containing %q", check, got, w.status, w.fix)
		}
	}
	if !strings.Contains(find(rs, "mta-sts")[0].Fix, "mode: enforce\n    mx: mail.example.com\n") {
		t.Errorf("mta-sts fix lacks the policy file: %q", find(rs, "mta-sts")[0].Fix)
	}
}

// TestCheckWrong: records present but wrong.
func TestCheckWrong(t *testing.T) {
	z := goodZone()
	z["example.com"] = []dnstest.RR{dnstest.MX(10, "mx.other.example"), dnstest.TXT("v=spf1 ip4:198.51.100.0/24 -all")}
	z[dnstest.ReverseName("192.0.2.1")] = []dnstest.RR{dnstest.PTR("host-1.isp.example")}
	z["_dmarc.example.com"] = []dnstest.RR{dnstest.TXT("v=DMARC1; p=none")}
	z["_smtp._tls.example.com"] = []dnstest.RR{dnstest.TXT("v=TLSRPTv1;")}
	e := newCheckEnv(t, z)
	other, _, _ := mailauth.GenerateKey(mailauth.Ed25519SHA256)
	otherRec, _ := mailauth.KeyRecord(other)
	e.dns.Set("s1._domainkey.example.com", dnstest.TXT(otherRec))
	e.policy = "version: STSv1\nmode: testing\nmx: mx.other.example\nmax_age: 86400\n"
	rs := e.run(t)
	want := map[string]struct{ status, msg string }{
		"mx":      {check.StatusFail, "no MX of example.com names this host mail.example.com (they name mx.other.example)"},
		"spf":     {check.StatusFail, "gives fail, not pass, for this host's address 192.0.2.1"},
		"dkim":    {check.StatusFail, "does not publish the key in"},
		"dmarc":   {check.StatusWarn, "p=none"},
		"mta-sts": {check.StatusFail, "lists mx mx.other.example but not this host mail.example.com"},
		"tls-rpt": {check.StatusFail, "has no rua="},
		"ptr":     {check.StatusFail, "PTR of 192.0.2.1 is host-1.isp.example, not mail.example.com"},
	}
	for check, w := range want {
		got := find(rs, check)
		if len(got) != 1 || got[0].Status != w.status || !strings.Contains(got[0].Message, w.msg) {
			t.Errorf("%s: %+v\nwant %s with message containing %q", check, got, w.status, w.msg)
		}
	}

	// Two SPF records; the policy not served; a bad SPF term.
	e.dns.Set("example.com", dnstest.MX(10, "mail.example.com"), dnstest.TXT("v=spf1 mx -all"), dnstest.TXT("v=spf1 a -all"))
	e.policy = ""
	rs = e.run(t)
	if r := find(rs, "spf"); r[0].Status != check.StatusFail || !strings.Contains(r[0].Message, "2 SPF records") {
		t.Errorf("spf: %+v", r)
	}
	if r := find(rs, "mta-sts"); r[0].Status != check.StatusFail || !strings.Contains(r[0].Message, "404") {
		t.Errorf("mta-sts: %+v", r)
	}
	e.dns.Set("example.com", dnstest.MX(10, "mail.example.com"), dnstest.TXT("v=spf1 mx ip4:300.1.1.1 -all"))
	if r := find(e.run(t), "spf"); r[0].Status != check.StatusFail || !strings.Contains(r[0].Message, `"ip4:300.1.1.1" is not a valid mechanism`) {
		t.Errorf("spf: %+v", r)
	}
}

// TestCheckCommand runs `postern check` as the binary would: human
// output and --json, exit 0 only without FAIL, and a broken config.
func TestCheckCommand(t *testing.T) {
	z := goodZone()
	delete(z, "_mta-sts.example.com") // no HTTPS fetch from the command
	e := newCheckEnv(t, z)
	e.dns.Set("s1._domainkey.example.com", dnstest.TXT(e.dkimRec))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "--config", e.cfgFile}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "WARN mta-sts example.com: no MTA-STS record") ||
		!strings.HasSuffix(stdout.String(), "15 checks: 0 failed, 1 warnings\n") {
		t.Errorf("stdout:\n%s", stdout.String())
	}

	e.dns.Remove("_dmarc.example.com")
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"check", "--json", "--config", e.cfgFile}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
	}
	var rs []check.Result
	if err := json.Unmarshal(stdout.Bytes(), &rs); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	if r := find(rs, "dmarc"); len(r) != 1 || r[0].Status != check.StatusFail || r[0].Domain != "example.com" ||
		!strings.HasPrefix(r[0].Fix, "_dmarc.example.com. IN TXT") {
		t.Errorf("dmarc: %+v", r)
	}

	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("hostname = \"mail.example.com\"\nbogus = 1\n[acme]\nchallenge = \"carrier-pigeon\"\n"), 0o600)
	stdout.Reset()
	if code := run([]string{"check", "--json", "--config", bad}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("bad config: exit %d, want 1", code)
	}
	rs = nil
	json.Unmarshal(stdout.Bytes(), &rs)
	// One result per problem, as serve prints them, the fix on the last.
	if len(rs) != 2 || rs[0].Check != "config" || rs[0].Status != check.StatusFail || !strings.Contains(rs[0].Message, `unknown key "bogus"`) ||
		rs[0].Fix != "" || !strings.Contains(rs[1].Message, "acme.challenge") || rs[1].Fix == "" {
		t.Errorf("bad config: %+v", rs)
	}
}

// TestCheckPostmaster: a postmaster address that reaches nobody is a
// FAIL with the exact command that fixes it (issue 12, §6); the
// embedded default is internal/check's TestCheckPostmasterFirstStart.
func TestCheckPostmaster(t *testing.T) {
	e := newCheckEnv(t, goodZone())
	os.Remove(e.cfg.UsersFile())
	os.Remove(strings.TrimSuffix(e.cfg.UsersFile(), ".json") + ".lock")
	for _, users := range [][]string{nil, {"alice@example.com"}} {
		for _, u := range users {
			addTestUser(t, e.cfg, u)
		}
		r := find(e.run(t), "postmaster")
		want := "postern user add postmaster@example.com --config " + e.cfgFile +
			`, or an alias to an existing user in ` + e.cfgFile + `: [aliases] "postmaster@example.com" = ["USER@example.com"]`
		if len(r) != 1 || r[0].Status != check.StatusFail || r[0].Domain != "example.com" || r[0].Fix != want ||
			!strings.Contains(r[0].Message, "postmaster@example.com reaches nobody") {
			t.Errorf("users %q: %+v\nwant FAIL with fix %q", users, r, want)
		}
	}
	if _, err := os.Stat(e.cfg.UsersFile()); err != nil {
		t.Fatal(err)
	}

}

// TestCheckMTASTSAsDelivery: postern check judges the MTA-STS record and
// policy with delivery's own parser and matcher (internal/delivery/
// policy), so it never blesses what delivery refuses: its own parser
// took a signed max_age, keys that are no keys and records that are not
// "v=STSv1" (issue 15 §1).
func TestCheckMTASTSAsDelivery(t *testing.T) {
	e := newCheckEnv(t, goodZone())
	e.dns.Set("s1._domainkey.example.com", dnstest.TXT(e.dkimRec))
	good := "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"
	for _, tt := range []struct{ record, policy, status, want string }{
		{"v=STSv1; id=20261127", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: +86400\n", check.StatusFail, "max_age"},
		{"v=STSv1; id=20261127", good + "bad key: x\n", check.StatusFail, "invalid key"},
		{"v=STSv1; id=20261127", "version: STSv1\nmode: enforce\nmx: mail.example.com!\nmax_age: 86400\n", check.StatusFail, "invalid mx pattern"},
		{"v=STSv1; id=1; id=2", good, check.StatusFail, "id given twice"},
		// Delivery sees no record here: no policy, as if none were published.
		{"v=STSv10; id=20261127", good, check.StatusWarn, "no MTA-STS record"},
	} {
		e.dns.Set("_mta-sts.example.com", dnstest.TXT(tt.record))
		e.policy = tt.policy
		r := find(e.run(t), "mta-sts")
		if len(r) != 1 || r[0].Status != tt.status || !strings.Contains(r[0].Message, tt.want) {
			t.Errorf("record %q, policy %q: %+v; want %s saying %q", tt.record, tt.policy, r, tt.status, tt.want)
		}
	}
	// What delivery takes, check takes: the pattern in upper case with
	// a trailing dot, CRLF line ends, an extension key.
	e.dns.Set("_mta-sts.example.com", dnstest.TXT("v=STSv1; id=20261127"))
	e.policy = "version: STSv1\r\nmode: enforce\r\nmx: *.EXAMPLE.com.\r\nmax_age: 86400\r\next_1: y\r\n"
	if r := find(e.run(t), "mta-sts"); len(r) != 1 || r[0].Status != check.StatusOK {
		t.Errorf("a policy delivery takes: %+v", r)
	}
}
