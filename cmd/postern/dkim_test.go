package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"postern/internal/mailauth"
)

func TestDKIMKeygen(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC) }
	var out bytes.Buffer
	if err := dkimCmd([]string{"keygen", "Example.ORG", "--data", dir}, &out, now); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dkim", "example.org", "p202611.rsa.pem")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	// RSA records are longer than 255 octets: two strings.
	re := regexp.MustCompile(`(?m)^p202611\._domainkey\.example\.org\. IN TXT "v=DKIM1; k=rsa; p=[A-Za-z0-9+/]{237}" "[A-Za-z0-9+/=]+"$`)
	if !re.MatchString(out.String()) {
		t.Errorf("output:\n%s", out.String())
	}
	out.Reset()
	if err := dkimCmd([]string{"keygen", "--algorithm", "ed25519", "example.org", "--data", dir}, &out, now); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^p202611e\._domainkey\.example\.org\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="$`).MatchString(out.String()) {
		t.Errorf("output:\n%s", out.String())
	}
	keys, err := mailauth.LoadKeys(dir)
	if err != nil || len(keys) != 2 {
		t.Fatalf("LoadKeys: %v %v", keys, err)
	}
	for _, args := range [][]string{
		{"keygen", "example.org", "--data", dir},                                                    // exists
		{"keygen", "example.org", "--selector", "p202611", "--algorithm", "ed25519", "--data", dir}, // other algorithm, same selector
		{"keygen", "--data", dir},
		{"keygen", "bad_domain", "--data", dir},
		{"keygen", "example.org", "--selector", "a.b", "--data", dir},
		{"keygen", "example.org", "--algorithm", "dsa", "--data", dir},
		{"rotate"},
	} {
		if err := dkimCmd(args, &out, now); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
