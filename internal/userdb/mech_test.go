package userdb

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/xdg-go/scram"

	"postern/internal/sasl"
	"postern/internal/testkit"
)

// scramLogin runs a whole SCRAM exchange: a real client (xdg-go/scram)
// against sasl's server over db's stored verifiers.
func scramLogin(t *testing.T, db *DB, hash, user, password string) (string, error) {
	t.Helper()
	gen := scram.SHA256
	if hash == sasl.HashSHA1 {
		gen = scram.SHA1
	}
	c, err := gen.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	conv := c.NewConversation()
	srv := sasl.NewSCRAM(context.Background(), sasl.SCRAMOptions{Hash: hash, Lookup: db})
	msg, err := conv.Step("")
	for range 4 {
		if err != nil {
			t.Fatalf("client: %v", err)
		}
		ch, done, err := srv.Next([]byte(msg))
		if err != nil || done {
			return srv.Identity(), err
		}
		if msg, err = conv.Step(string(ch)); err != nil {
			t.Fatalf("client refuses the server: %v", err)
		}
	}
	t.Fatal("exchange did not end")
	return "", nil
}

// cramLogin runs a CRAM-MD5 exchange against sasl's server over db.
func cramLogin(t *testing.T, db *DB, clk *testkit.Clock, user, password string) (string, error) {
	t.Helper()
	srv := sasl.NewCRAMMD5(context.Background(), "mx.example.org", db, clk.Now)
	ch, _, err := srv.Next(nil)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(md5.New, []byte(password))
	m.Write(ch)
	_, done, err := srv.Next([]byte(user + " " + hex.EncodeToString(m.Sum(nil))))
	if err == nil && !done {
		t.Fatal("CRAM-MD5 not done")
	}
	return srv.Identity(), err
}

// TestMechanismsEndToEnd logs in with SCRAM-SHA-256, SCRAM-SHA-1 and
// CRAM-MD5 through sasl's servers on each store, and after a password
// change made by another DB.
func TestMechanismsEndToEnd(t *testing.T) { eachBackend(t, testMechanismsEndToEnd) }

func testMechanismsEndToEnd(t *testing.T, open opener) {
	clk := newClock()
	db := open(t, clk, nil)
	admin := open(t, clk, nil)
	if err := admin.Add("Alice@example.org", "pencil", SetOptions{CRAMMD5: true}); err != nil {
		t.Fatal(err)
	}
	if err := db.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{sasl.HashSHA256, sasl.HashSHA1} {
		if id, err := scramLogin(t, db, h, "alice@example.org", "pencil"); err != nil || id != "Alice@example.org" {
			t.Errorf("SCRAM-%s: %q, %v", h, id, err)
		}
		if _, err := scramLogin(t, db, h, "alice@example.org", "pencil2"); !errors.Is(err, sasl.ErrInvalidCredentials) {
			t.Errorf("SCRAM-%s, wrong password: %v", h, err)
		}
		if _, err := scramLogin(t, db, h, "nobody@example.org", "pencil"); !errors.Is(err, sasl.ErrInvalidCredentials) {
			t.Errorf("SCRAM-%s, unknown user: %v", h, err)
		}
	}
	if id, err := cramLogin(t, db, clk, "ALICE@example.org", "pencil"); err != nil || id != "Alice@example.org" {
		t.Errorf("CRAM-MD5: %q, %v", id, err)
	}
	if _, err := cramLogin(t, db, clk, "alice@example.org", "pencil2"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("CRAM-MD5, wrong password: %v", err)
	}

	// A plain passwd elsewhere: the new password works for SCRAM, the old
	// does not, and CRAM-MD5 is gone.
	if err := admin.SetPassword("alice@example.org", "new pencil"); err != nil {
		t.Fatal(err)
	}
	if err := db.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := scramLogin(t, db, sasl.HashSHA256, "alice@example.org", "pencil"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("SCRAM with the old password: %v", err)
	}
	if _, err := scramLogin(t, db, sasl.HashSHA256, "alice@example.org", "new pencil"); err != nil {
		t.Errorf("SCRAM with the new password: %v", err)
	}
	if _, err := cramLogin(t, db, clk, "alice@example.org", "new pencil"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("CRAM-MD5 after a plain passwd: %v", err)
	}
}
