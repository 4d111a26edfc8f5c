package sasl

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// TestCRAMMD5SecretRFC2195 resumes MD5 from the stored states and checks
// RFC 2195 §2's example digest.
func TestCRAMMD5SecretRFC2195(t *testing.T) {
	sec := NewCRAMMD5Secret("tim", "tanstaaftanstaaf")
	got, err := cramDigest(sec, []byte("<1896.697170952@postoffice.reston.mci.net>"))
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != "b913a602c7eda7a495b4e6e7334d3890" {
		t.Errorf("digest %x", got)
	}
	// Long keys are hashed first (RFC 2104 §3): compare with crypto/hmac.
	long := strings.Repeat("k", 100)
	msg := []byte("<1.2@host>")
	got, err = cramDigest(NewCRAMMD5Secret("u", long), msg)
	m := hmac.New(md5.New, []byte(long))
	m.Write(msg)
	if err != nil || !bytes.Equal(got, m.Sum(nil)) {
		t.Errorf("long key: %x, want %x (%v)", got, m.Sum(nil), err)
	}
}

// TestSCRAMCredentialsRFC7677 derives the keys of RFC 7677 §3's example
// (user "user", password "pencil", 4096 iterations) and checks them
// against the proof and verifier the example exchange carries.
func TestSCRAMCredentialsRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	c, err := NewSCRAMCredentials("user", "pencil", HashSHA256, 4096, salt)
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "user" || c.Iterations != 4096 || !bytes.Equal(c.Salt, salt) || len(c.StoredKey) != 32 || len(c.ServerKey) != 32 {
		t.Fatalf("credentials %+v", c)
	}
	for _, tc := range []struct {
		hash       string
		iterations int
		salt       []byte
	}{
		{"MD5", 4096, salt},
		{HashSHA256, 1000, salt},
		{HashSHA1, 4096, []byte("short")},
	} {
		if _, err := NewSCRAMCredentials("u", "pencil", tc.hash, tc.iterations, tc.salt); err == nil {
			t.Errorf("%+v accepted", tc)
		}
	}
	// SASLprep refuses a password with a control character; the error does
	// not repeat it.
	if _, err := NewSCRAMCredentials("u", "pen\x07cil-secret", HashSHA256, 4096, salt); err == nil || strings.Contains(err.Error(), "cil-secret") {
		t.Errorf("control character: %v", err)
	}
}
