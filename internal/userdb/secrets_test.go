package userdb

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/sasl"
)

func TestSecretsMatchSASL(t *testing.T) { eachBackend(t, testSecretsMatchSASL) }

func testSecretsMatchSASL(t *testing.T, open opener) {
	db := open(t, newClock(), func(o *Options) { o.SCRAMIterations = 5000 })
	if err := db.Add("Alice@example.org", "pencil", SetOptions{CRAMMD5: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.Add("bob@example.org", "pencil"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	salts := make(map[string]bool)
	for _, h := range []string{sasl.HashSHA256, sasl.HashSHA1} {
		for _, user := range []string{"ALICE@example.org", "bob@example.org"} {
			c, err := db.SCRAM(ctx, user, h)
			if err != nil {
				t.Fatalf("SCRAM(%s, %s): %v", user, h, err)
			}
			if !strings.EqualFold(c.User, user) || c.Iterations != 5000 || len(c.Salt) != scramSaltLen {
				t.Errorf("SCRAM(%s, %s) = user %q, %d iterations, %d-byte salt", user, h, c.User, c.Iterations, len(c.Salt))
			}
			want, err := sasl.NewSCRAMCredentials(c.User, "pencil", h, c.Iterations, c.Salt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(c.StoredKey, want.StoredKey) || !bytes.Equal(c.ServerKey, want.ServerKey) {
				t.Errorf("SCRAM(%s, %s) keys differ from sasl.NewSCRAMCredentials", user, h)
			}
			if salts[string(c.Salt)] {
				t.Errorf("salt reused")
			}
			salts[string(c.Salt)] = true
		}
	}
	c, err := db.CRAMMD5(ctx, "alice@EXAMPLE.org")
	if err != nil {
		t.Fatal(err)
	}
	if c != sasl.NewCRAMMD5Secret("Alice@example.org", "pencil") {
		t.Errorf("CRAMMD5 = %+v, differs from sasl.NewCRAMMD5Secret", c)
	}
	if _, err := db.SCRAM(ctx, "alice@example.org", "SHA-512"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("SCRAM SHA-512: %v", err)
	}
	for _, user := range []string{"nobody@example.org", "", strings.Repeat("a", 300), "a\x00@example.org"} {
		if _, err := db.SCRAM(ctx, user, sasl.HashSHA256); !errors.Is(err, sasl.ErrInvalidCredentials) {
			t.Errorf("SCRAM(%q): %v", user, err)
		}
		if _, err := db.CRAMMD5(ctx, user); !errors.Is(err, sasl.ErrInvalidCredentials) {
			t.Errorf("CRAMMD5(%q): %v", user, err)
		}
	}
	// SCRAM and CRAM-MD5 spend no Argon2.
	before := db.hashCount()
	db.SCRAM(ctx, "alice@example.org", sasl.HashSHA256)
	db.CRAMMD5(ctx, "alice@example.org")
	if db.hashCount() != before {
		t.Error("a secret lookup computed an Argon2 hash")
	}
	db.Close()
	if _, err := db.SCRAM(ctx, "alice@example.org", sasl.HashSHA256); !errors.Is(err, sasl.ErrTemporary) {
		t.Errorf("SCRAM after Close: %v", err)
	}
	if _, err := db.CRAMMD5(ctx, "alice@example.org"); !errors.Is(err, sasl.ErrTemporary) {
		t.Errorf("CRAMMD5 after Close: %v", err)
	}
}

func TestCRAMMD5OptIn(t *testing.T) { eachBackend(t, testCRAMMD5OptIn) }

func testCRAMMD5OptIn(t *testing.T, open opener) {
	db := open(t, newClock(), nil)
	other := open(t, newClock(), nil) // another process or node
	ctx := context.Background()
	if err := db.Add("alice@example.org", "pw1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CRAMMD5(ctx, "alice@example.org"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("CRAM-MD5 without opt-in: %v", err)
	}
	old, _ := db.SCRAM(ctx, "alice@example.org", sasl.HashSHA256)
	if err := db.SetPassword("alice@example.org", "pw2", SetOptions{CRAMMD5: true}); err != nil {
		t.Fatal(err)
	}
	if c, err := db.CRAMMD5(ctx, "alice@example.org"); err != nil || c != sasl.NewCRAMMD5Secret("alice@example.org", "pw2") {
		t.Errorf("CRAM-MD5 after opt-in: %+v, %v", c, err)
	}
	if c, err := db.SCRAM(ctx, "alice@example.org", sasl.HashSHA256); err != nil || bytes.Equal(c.StoredKey, old.StoredKey) || bytes.Equal(c.Salt, old.Salt) {
		t.Errorf("SCRAM verifier not replaced with the password: %v", err)
	}
	// A plain passwd removes the CRAM-MD5 secret.
	if err := other.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := other.SetPassword("alice@example.org", "pw3"); err != nil {
		t.Fatal(err)
	}
	if err := db.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CRAMMD5(ctx, "alice@example.org"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("CRAM-MD5 after a plain passwd: %v", err)
	}
	if _, err := db.CheckPassword(ctx, "alice@example.org", "pw3"); err != nil {
		t.Errorf("PLAIN after passwd: %v", err)
	}
	if err := db.SetPassword("alice@example.org", "pw4", SetOptions{}, SetOptions{}); err == nil {
		t.Error("two SetOptions accepted")
	}
}

// rfcSCRAM is one SCRAM example exchange of an RFC.
type rfcSCRAM struct {
	hash                      string
	newHash                   func() hash.Hash
	salt                      string
	clientFirstBare, srvFirst string
	clientFinalNoProof, proof string
	verifier                  string
}

// TestSCRAMVerifierRFCExchanges stores verifiers derived from the RFCs'
// example salts in each backend, reads them back through SCRAM, and checks
// that they accept the example client proof and produce the example
// server signature: RFC 7677 §3 (SHA-256) and RFC 5802 §5 (SHA-1).
func TestSCRAMVerifierRFCExchanges(t *testing.T) { eachBackend(t, testSCRAMVerifierRFCExchanges) }

func testSCRAMVerifierRFCExchanges(t *testing.T, open opener) {
	vectors := []rfcSCRAM{{
		hash: sasl.HashSHA256, newHash: sha256.New, salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
		clientFirstBare:    "n=user,r=rOprNGfwEbeRWgbNEkqO",
		srvFirst:           "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		clientFinalNoProof: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
		proof:              "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
		verifier:           "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
	}, {
		hash: sasl.HashSHA1, newHash: sha1.New, salt: "QSXCR+Q6sek8bf92",
		clientFirstBare:    "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		srvFirst:           "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
		clientFinalNoProof: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
		proof:              "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
		verifier:           "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
	}}
	db := open(t, newClock(), nil)
	if err := db.Add("user@example.org", "pencil"); err != nil {
		t.Fatal(err)
	}
	// Replace the random-salted verifiers with ones of the RFCs' salts.
	r, err := db.get(context.Background(), "user@example.org")
	if err != nil || r == nil {
		t.Fatal(r, err)
	}
	sec := r.secrets
	for _, v := range vectors {
		salt, _ := base64.StdEncoding.DecodeString(v.salt)
		s := rfc5802Keys(t, v.newHash, "pencil", salt, 4096)
		if len(salt) >= 16 { // sasl's helper wants 16 octets; RFC 5802's has 12
			c, err := sasl.NewSCRAMCredentials("user", "pencil", v.hash, 4096, salt)
			if err != nil || !bytes.Equal(c.StoredKey, s.storedKey) || !bytes.Equal(c.ServerKey, s.serverKey) {
				t.Fatalf("%s: sasl.NewSCRAMCredentials differs from RFC 5802 §3 (%v)", v.hash, err)
			}
		}
		if v.hash == sasl.HashSHA256 {
			sec.scram256 = s
		} else {
			sec.scram1 = s
		}
	}
	if err := db.st.setSecrets(context.Background(), "user@example.org", sec, db.now()); err != nil {
		t.Fatal(err)
	}
	db2 := open(t, newClock(), nil) // read back from the store, not memory
	for _, v := range vectors {
		c, err := db2.SCRAM(context.Background(), "user@example.org", v.hash)
		if err != nil {
			t.Fatal(err)
		}
		if base64.StdEncoding.EncodeToString(c.Salt) != v.salt || c.Iterations != 4096 {
			t.Errorf("%s: salt or iterations changed in the store", v.hash)
		}
		authMsg := []byte(v.clientFirstBare + "," + v.srvFirst + "," + v.clientFinalNoProof)
		mac := func(key []byte) []byte {
			m := hmac.New(v.newHash, key)
			m.Write(authMsg)
			return m.Sum(nil)
		}
		proof, _ := base64.StdEncoding.DecodeString(v.proof)
		sig := mac(c.StoredKey)
		clientKey := make([]byte, len(proof))
		for i := range proof {
			clientKey[i] = proof[i] ^ sig[i]
		}
		h := v.newHash()
		h.Write(clientKey)
		if !bytes.Equal(h.Sum(nil), c.StoredKey) {
			t.Errorf("%s: the RFC's client proof does not verify against the stored key", v.hash)
		}
		if got := base64.StdEncoding.EncodeToString(mac(c.ServerKey)); got != v.verifier {
			t.Errorf("%s: server signature %s, want %s", v.hash, got, v.verifier)
		}
	}
}

// rfc5802Keys derives a verifier as RFC 5802 §3 defines it.
func rfc5802Keys(t *testing.T, h func() hash.Hash, password string, salt []byte, iter int) *scramSecret {
	t.Helper()
	salted, err := pbkdf2.Key(h, password, salt, iter, h().Size())
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(h, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	d := h()
	d.Write(mac(salted, "Client Key"))
	return &scramSecret{salt: salt, iterations: iter, storedKey: d.Sum(nil), serverKey: mac(salted, "Server Key")}
}

func TestVersion1FileLoads(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "users.json")
	// A file written before mechanism secrets: version 1, hash only.
	h := &hasher{params: fastArgon2, sem: make(chan struct{}, 1), count: func() {}}
	hash, err := h.hash(context.Background(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	v1 := `{"version": 1, "users": [{"address": "Alice@example.org", "password": "` + hash +
		`", "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(path, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	db := openTest(t, path, clk, nil)
	ctx := context.Background()
	if user, err := db.CheckPassword(ctx, "alice@example.org", "pw"); err != nil || user != "Alice@example.org" {
		t.Fatalf("version 1 user: %q, %v", user, err)
	}
	if _, err := db.SCRAM(ctx, "alice@example.org", sasl.HashSHA256); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("SCRAM of a version 1 user: %v", err)
	}
	if err := db.SetPassword("alice@example.org", "pw2"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"version": 2`) || !strings.Contains(string(b), `"scram_sha256"`) || strings.Contains(string(b), "cram_md5") {
		t.Errorf("rewritten file:\n%s", b)
	}
	if _, err := db.SCRAM(ctx, "alice@example.org", sasl.HashSHA256); err != nil {
		t.Errorf("SCRAM after passwd: %v", err)
	}
	// Secrets in a version 1 file, or malformed ones, refuse the file.
	good := string(b)
	for _, bad := range []string{
		strings.Replace(good, `"version": 2`, `"version": 1`, 1),
		strings.Replace(good, `"iterations": 10000`, `"iterations": 100`, 1),
		strings.Replace(good, `"stored_key": "`, `"stored_key": "AAAA`, 1),
		strings.Replace(good, `"salt": "`, `"salt": "!`, 1),
	} {
		if bad == good {
			t.Fatal("replacement did not apply")
		}
		if _, err := parseFile([]byte(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

func TestSCRAMIterationsOption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	for _, n := range []int{1, 4095, 1 << 21} {
		if _, err := Open(path, Options{Argon2: fastArgon2, SCRAMIterations: n}); err == nil {
			t.Errorf("SCRAMIterations %d accepted", n)
		}
	}
	db := openTest(t, path, newClock(), nil)
	if err := db.Add("a@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	if c, err := db.SCRAM(context.Background(), "a@example.org", sasl.HashSHA256); err != nil || c.Iterations != testSCRAMIterations {
		t.Errorf("iterations: %d, %v; want the option's, %d", c.Iterations, err, testSCRAMIterations)
	}
}
