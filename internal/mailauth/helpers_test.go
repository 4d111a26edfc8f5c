package mailauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/dns"
	"postern/internal/dns/dnstest"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fixedNow is the clock of the tests.
var fixedNow = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

func clock() time.Time { return fixedNow }

// testEd25519 is a fixed ed25519 key, so that signatures are golden.
func testEd25519() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

// testKeys returns the ed25519 key (selector "ed") and the RSA key in
// testdata (selector "rsa") for domain.
func testKeys(t testing.TB, domain string) []SigningKey {
	t.Helper()
	rk, err := LoadKeyFile(filepath.Join("testdata", "rsa2048.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return []SigningKey{
		{Domain: domain, Selector: "ed", Key: testEd25519()},
		{Domain: domain, Selector: "rsa", Key: rk},
	}
}

// keyZone returns the key records of keys.
func keyZone(t testing.TB, keys []SigningKey) dnstest.Zone {
	t.Helper()
	z := dnstest.Zone{}
	for _, k := range keys {
		rec, err := KeyRecord(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		z[k.Selector+"._domainkey."+k.Domain] = []dnstest.RR{dnstest.TXT(splitTXT(rec)...)}
	}
	return z
}

// splitTXT splits s into strings of at most 255 octets.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

// msg joins lines with CRLF.
func msg(lines ...string) []byte {
	return []byte(strings.Join(lines, "\r\n"))
}

// sampleMessage is a message as a client would submit it.
var sampleMessage = msg(
	"From: Alice <alice@example.org>",
	"To: bob@example.net",
	"Subject:  Hello,\r\n\t  world ",
	"Date: Fri, 27 Nov 2026 09:30:00 +0000",
	"Message-ID: <1@example.org>",
	"MIME-Version: 1.0",
	"Content-Type: text/plain; charset=utf-8",
	"X-Not-Signed: 1",
	"",
	"Hello Bob,  \t",
	"",
	"  how are you?",
	"",
	"",
	"")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// mapResolver answers TXT lookups from a map, for fuzzing and unit tests
// that need no DNS server; other lookups find nothing.
type mapResolver map[string][]string

func (m mapResolver) LookupTXT(ctx context.Context, name string) ([]string, dns.Result, error) {
	if v, ok := m[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return v, dns.Result{}, nil
	}
	return nil, dns.Result{}, dns.ErrNXDomain
}
func (m mapResolver) LookupMX(ctx context.Context, name string) ([]dns.MX, dns.Result, error) {
	return nil, dns.Result{}, dns.ErrNXDomain
}
func (m mapResolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, dns.Result, error) {
	return nil, dns.Result{}, dns.ErrNXDomain
}
func (m mapResolver) LookupTLSA(ctx context.Context, name string) ([]dns.TLSA, dns.Result, error) {
	return nil, dns.Result{}, dns.ErrNXDomain
}
func (m mapResolver) LookupPTR(ctx context.Context, ip netip.Addr) ([]string, dns.Result, error) {
	return nil, dns.Result{}, dns.ErrNXDomain
}
