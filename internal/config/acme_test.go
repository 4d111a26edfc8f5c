package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestACMETable loads every key of [acme] and [check], and the defaults.
func TestACMETable(t *testing.T) {
	dir := t.TempDir()
	c := loadText(t, dir, `hostname = "mail.example.com"
[acme]
directory_url = "https://127.0.0.1:14000/dir"
email = "admin@example.com"
challenge = "DNS-01"
http_address = "127.0.0.1:8080"
tls_alpn_address = "127.0.0.1:8443"
dns_hook = "hook.sh"
ca_roots_file = "roots.pem"
renew_before = "240h"
hostnames = ["Mail.Example.com.", "smtp.example.com"]
[check]
public_addresses = ["192.0.2.1", "2001:db8::1"]
`)
	want := ACME{
		Enabled: true, DirectoryURL: "https://127.0.0.1:14000/dir", Email: "admin@example.com",
		Challenge: ChallengeDNS01, HTTPAddress: "127.0.0.1:8080", TLSALPNAddress: "127.0.0.1:8443",
		DNSHook: filepath.Join(dir, "hook.sh"), CARootsFile: filepath.Join(dir, "roots.pem"),
		RenewBefore: 240 * time.Hour, Hostnames: []string{"mail.example.com", "smtp.example.com"},
	}
	if !reflect.DeepEqual(c.ACME, want) {
		t.Errorf("ACME = %+v\nwant %+v", c.ACME, want)
	}
	if c.TLS.SelfSigned || len(c.TLSCertificateFiles()) != 0 {
		t.Error("[acme] without certificate files: want no certificate file and no self-signed one")
	}
	wantAddrs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	if !reflect.DeepEqual(c.Check.PublicAddresses, wantAddrs) {
		t.Errorf("Check.PublicAddresses = %v", c.Check.PublicAddresses)
	}
	if c.ACMEDir() != filepath.Join(c.DataDir, "acme") {
		t.Errorf("ACMEDir = %q", c.ACMEDir())
	}

	c = loadText(t, dir, "hostname = \"mail.example.com\"\n[acme]\n")
	want = ACME{
		Enabled: true, DirectoryURL: DefaultACMEDirectory, Challenge: ChallengeHTTP01,
		HTTPAddress: ":80", TLSALPNAddress: ":443", RenewBefore: 720 * time.Hour,
		Hostnames: []string{"mail.example.com"},
	}
	if !reflect.DeepEqual(c.ACME, want) {
		t.Errorf("defaults: ACME = %+v\nwant %+v", c.ACME, want)
	}
}

func TestACMEErrors(t *testing.T) {
	checkRefusals(t, "hostname = \"mail.example.com\"\n", []refusal{
		{"[acme]\ndirectory_url = \"http://ca.example/dir\"", `acme.directory_url: "http://ca.example/dir" is not an https URL`},
		{"[acme]\nchallenge = \"tls-sni-01\"", `acme.challenge: "tls-sni-01" is not http-01, tls-alpn-01 or dns-01`},
		{"[acme]\nchallenge = \"dns-01\"", "acme.dns_hook: is required"},
		{"[acme]\nhttp_address = \"80\"", "acme.http_address"},
		{"[acme]\nchallenge = \"tls-alpn-01\"\ntls_alpn_address = \":587\"", `acme.tls_alpn_address: ":587" is already the address of a listener`},
		{"[acme]\nrenew_before = \"0s\"", "acme.renew_before: must be greater than 0"},
		{"[acme]\nhostnames = []", "acme.hostnames: must name at least one host"},
		{"[acme]\nhostnames = [\"a.example\", \"A.example\"]", `acme.hostnames[1]: "a.example" is listed twice`},
		{"[acme]\nemail = \"nobody\"", "acme.email"},
		{"[acme]\nport = 80", `unknown key "acme.port"`},
		{"[check]\npublic_addresses = [\"mail.example.com\"]", `check.public_addresses[0]: "mail.example.com" is not an IP address`},
	})
}
