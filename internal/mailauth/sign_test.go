package mailauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/dns/dnstest"
)

func TestRelaxedCanonicalization(t *testing.T) {
	t.Parallel()
	// RFC 6376 §3.4.5's example.
	hdr := []byte("A: X\r\n")
	if got := string(relaxedHeader(hdr)); got != "a:X\r\n" {
		t.Errorf("A: %q", got)
	}
	if got := string(relaxedHeader([]byte("B : Y\t\r\n\tZ  \r\n"))); got != "b:Y Z\r\n" {
		t.Errorf("B: %q", got)
	}
	body := []byte(" C \r\nD \t E\r\n\r\n\r\n")
	if got := string(relaxedBody(body)); got != " C\r\nD E\r\n" {
		t.Errorf("body: %q", got)
	}
	// RFC 6376 §3.4.4: an empty body stays empty; trailing empty and
	// whitespace-only lines go; a missing final CRLF is added.
	for in, want := range map[string]string{
		"":                   "",
		"\r\n":               "",
		" \r\n\t\r\n":        "",
		"a":                  "a\r\n",
		"a\r\n \r\nb \r\n":   "a\r\n\r\nb\r\n",
		"x\r\n\r\n\r\ny\r\n": "x\r\n\r\n\r\ny\r\n",
	} {
		if got := string(relaxedBody([]byte(in))); got != want {
			t.Errorf("relaxedBody(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignGolden(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(testKeys(t, "example.org"), clock)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Sign(sampleMessage)
	if err != nil {
		t.Fatal(err)
	}
	// Both signatures are deterministic (ed25519; RSA PKCS #1 v1.5).
	signed := append(h, sampleMessage...)
	golden(t, "signed.eml", signed)
	if n := strings.Count(string(h), "DKIM-Signature:"); n != 2 {
		t.Fatalf("%d signatures:\n%s", n, h)
	}
	for _, want := range []string{"a=ed25519-sha256", "a=rsa-sha256", "c=relaxed/relaxed", "d=example.org", "s=ed;", "s=rsa;", "t=1795771800;",
		"h=from:from:subject:date:to:message-id:mime-version:content-type;"} {
		if !strings.Contains(string(h), want) {
			t.Errorf("signature lacks %q:\n%s", want, h)
		}
	}
	for _, line := range strings.Split(string(h), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line of %d characters: %q", len(line), line)
		}
	}

	// They verify, through a real DNS server on loopback.
	dns := dnstest.New(t, keyZone(t, testKeys(t, "example.org")))
	res := VerifyDKIM(context.Background(), dns.Resolver(), signed, VerifyOptions{MaxSignatures: 5, Now: clock})
	if len(res) != 2 || res[0].Result != "pass" || res[1].Result != "pass" {
		t.Fatalf("verify: %+v", res)
	}
	if res[0].Algorithm != "ed25519-sha256" || res[0].Selector != "ed" || res[0].Domain != "example.org" || len(res[0].B) != 12 {
		t.Errorf("result %+v", res[0])
	}

	// No key for the From domain: no signature.
	other := []byte(strings.Replace(string(sampleMessage), "alice@example.org", "alice@example.com", 1))
	if h, err := s.Sign(other); err != nil || h != nil {
		t.Errorf("Sign for a domain without key: %q, %v", h, err)
	}
}

func TestSignOversignsFrom(t *testing.T) {
	t.Parallel()
	s, _ := NewSigner(testKeys(t, "example.org")[:1], clock)
	h, _ := s.Sign(sampleMessage)
	signed := append(h, sampleMessage...)
	// A second From added on top breaks the signature (RFC 6376 §8.15).
	forged := append([]byte("From: mallory@example.org\r\n"), signed...)
	dns := dnstest.New(t, keyZone(t, testKeys(t, "example.org")))
	res := VerifyDKIM(context.Background(), dns.Resolver(), forged, VerifyOptions{MaxSignatures: 5})
	if len(res) != 1 || res[0].Result != "fail" {
		t.Errorf("forged From: %+v", res)
	}
}

func TestKeyFilesAndRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, alg := range []Algorithm{Ed25519SHA256, RSASHA256} {
		k, pemBytes, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		p := KeyPath(dir, "Example.ORG", "sel", alg)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		rec, _ := KeyRecord(k)
		if !strings.HasPrefix(rec, "v=DKIM1; k="+alg.keyExt()+"; p=") {
			t.Errorf("record %q", rec)
		}
		if alg == Ed25519SHA256 && len(rec) != len("v=DKIM1; k=ed25519; p=")+44 {
			t.Errorf("ed25519 record %q", rec)
		}
		z := ZoneRecord("example.org", "sel", rec)
		if !strings.HasPrefix(z, `sel._domainkey.example.org. IN TXT "v=DKIM1;`) {
			t.Errorf("zone %q", z)
		}
		for _, part := range strings.Split(z, `" "`) {
			if len(part) > 255+len(`sel._domainkey.example.org. IN TXT "`) {
				t.Errorf("TXT string too long: %d", len(part))
			}
		}
	}
	keys, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Algorithm() != Ed25519SHA256 || keys[1].Algorithm() != RSASHA256 || keys[0].Domain != "example.org" || keys[0].Selector != "sel" {
		t.Errorf("LoadKeys: %+v", keys)
	}
	if keys, err := LoadKeys(filepath.Join(dir, "none")); err != nil || keys != nil {
		t.Errorf("LoadKeys of a missing dir: %v, %v", keys, err)
	}
	// A short RSA key is refused.
	if _, err := ParsePrivateKey([]byte("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n")); err == nil {
		t.Error("public key accepted as private")
	}
	if _, err := NewSigner([]SigningKey{{Domain: "x.org", Selector: "s", Key: ed25519.PrivateKey(nil)}}, nil); err != nil {
		t.Logf("nil ed25519 key: %v", err)
	}
}

// opaqueSigner hides a key's type, as a key in a PKCS#11 token does
// (pkcs11.Key): only Public and Sign.
type opaqueSigner struct{ k crypto.Signer }

func (o opaqueSigner) Public() crypto.PublicKey { return o.k.Public() }
func (o opaqueSigner) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.k.Sign(r, d, opts)
}

// TestSignWithOpaqueSigner checks that a key known only as a
// crypto.Signer (a key in a token) signs exactly as the key itself does,
// and that an RSA key under 2048 bits is refused however it comes.
func TestSignWithOpaqueSigner(t *testing.T) {
	t.Parallel()
	keys := testKeys(t, "example.org")
	plain, err := NewSigner(keys, clock)
	if err != nil {
		t.Fatal(err)
	}
	var opaque []SigningKey
	for _, k := range keys {
		k.Key = opaqueSigner{k.Key}
		opaque = append(opaque, k)
	}
	s, err := NewSigner(opaque, clock)
	if err != nil {
		t.Fatalf("opaque keys: %v", err)
	}
	want, _ := plain.Sign(sampleMessage)
	got, err := s.Sign(sampleMessage)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("opaque keys sign\n%s\nwant (both deterministic)\n%s\n%v", got, want, err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewSigner([]SigningKey{{Domain: "example.org", Selector: "s", Key: opaqueSigner{small}}}, clock)
	if err == nil || !strings.Contains(err.Error(), "1024 bits") {
		t.Errorf("1024-bit RSA key: %v", err)
	}
}
