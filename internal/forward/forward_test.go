package forward

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/srs"
	"postern/internal/userdb"
)

// forwardFixture is a Forwarder over a real spool and a users file with
// alice, and aliases to another domain; it returns its secret file, made
// by CreateSecretFile.
func forwardFixture(t *testing.T) (*Forwarder, *spool.Spool, string) {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	db, err := userdb.Open(filepath.Join(dir, "users"), userdb.Options{
		Argon2: userdb.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}, SCRAMIterations: userdb.MinSCRAMIterations,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Add("alice@example.test", "pw-alice-12"); err != nil {
		t.Fatal(err)
	}
	dcfg := userdb.DirectoryConfig{
		LocalDomains: []string{"localhost", "example.test"},
		Aliases: map[string][]string{
			"fwd@example.test":  {"Carol@Remote.example"},
			"both@example.test": {"alice@example.test", "carol@remote.example"},
		},
	}
	if err := dcfg.Validate(); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "srs.secret")
	if err := CreateSecretFile(secretFile); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(secretFile)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 40 {
		t.Fatalf("srs.secret not made as it should be: %v %v", fi, err)
	}
	key, _ := os.ReadFile(secretFile)
	if err := CreateSecretFile(secretFile); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(secretFile); string(again) != string(key) {
		t.Fatal("CreateSecretFile replaced an existing secret")
	}
	rw, err := srs.New([][]byte{[]byte(strings.TrimSpace(string(key)))}, srs.Options{MaxAge: 21 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{Directory: userdb.NewDirectory(db, dcfg), SRS: rw, Logger: log})
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f.SetSpool(sp)
	return f, sp, secretFile
}

// TestForwarderExpand: a local recipient's mailboxes come back; its
// targets in other domains become one new message, the data unchanged,
// the sender rewritten with SRS unless it is null or local; an SRS
// address made here goes back to its original sender, and one that
// does not verify fails for good.
func TestForwarderExpand(t *testing.T) {
	f, sp, secretFile := forwardFixture(t)
	ctx := context.Background()
	data := []byte("DKIM-Signature: v=1; d=orig.example\r\nSubject: s\r\n\r\nbody\r\n")
	end := smtp.HeaderEnd(data)
	msg := &smtp.Message{Header: data[:end], Body: smtp.BodyBytes(data[end:])}
	env := &smtp.Envelope{ID: "orig", From: "dave@orig.example", Body: "7BIT", Recipients: []string{"both@example.test"}}
	newest := func() (*smtp.Envelope, []byte) {
		t.Helper()
		items := sp.List()
		if len(items) == 0 {
			t.Fatal("nothing queued")
		}
		last := items[0]
		for _, it := range items {
			if it.ID > last.ID {
				last = it
			}
		}
		e, d, err := sp.Get(last.ID)
		if err != nil {
			t.Fatal(err)
		}
		return e, d
	}

	boxes, err := f.Expand(ctx, env, "both@example.test", msg)
	if err != nil || strings.Join(boxes, ",") != "alice@example.test" {
		t.Fatalf("expand: %q, %v", boxes, err)
	}
	fe, fd := newest()
	if string(fd) != string(data) || strings.Join(fe.Recipients, ",") != "carol@remote.example" || fe.Listener != "forward" {
		t.Errorf("forwarded copy: %+v %q", fe, fd)
	}
	if !srs.IsSRS(fe.From) || !strings.HasSuffix(fe.From, "=orig.example=dave@example.test") {
		t.Errorf("forwarded sender %q, want an SRS0 address of example.test", fe.From)
	}
	srsAddr := fe.From
	back, err := f.o.SRS.Reverse(srsAddr)
	if err != nil || back != "dave@orig.example" {
		t.Errorf("Reverse(%q) = %q, %v", fe.From, back, err)
	}

	// Null and local senders are kept.
	for _, from := range []string{"", "alice@example.test"} {
		n := len(sp.List())
		if _, err := f.Expand(ctx, &smtp.Envelope{ID: "x", From: from, Body: "7BIT"}, "fwd@example.test", msg); err != nil {
			t.Fatal(err)
		}
		if fe, _ := newest(); len(sp.List()) != n+1 || fe.From != from || fe.Recipients[0] != "Carol@Remote.example" {
			t.Errorf("sender %q forwarded as %q to %q", from, fe.From, fe.Recipients)
		}
	}

	// A bounce to the SRS address goes to dave, its sender kept.
	boxes, err = f.Expand(ctx, &smtp.Envelope{ID: "b", From: "", Body: "7BIT"}, srsAddr, msg)
	if err != nil || len(boxes) != 0 {
		t.Fatalf("bounce: %q, %v", boxes, err)
	}
	if be, _ := newest(); be.From != "" || strings.Join(be.Recipients, ",") != "dave@orig.example" {
		t.Errorf("bounce forwarded %+v", be)
	}
	// Forged: a permanent failure, nothing queued.
	n := len(sp.List())
	_, err = f.Expand(ctx, &smtp.Envelope{ID: "c", Body: "7BIT"}, "SRS0=AAAA=JZ=orig.example=dave@example.test", msg)
	if err == nil || !errors.Is(err, srs.ErrBadHash) || !queue.IsPermanent(err) || len(sp.List()) != n {
		t.Errorf("forged: %v (%d queued)", err, len(sp.List())-n)
	}
	// Nobody: permanent.
	if _, err := f.Expand(ctx, env, "nobody@example.test", msg); err == nil || !errors.Is(err, userdb.ErrNotFound) || !queue.IsPermanent(err) {
		t.Errorf("nobody: %v", err)
	}

	// RCPT: the SRS address made here exists; a forged or expired one
	// does not.
	d := f.Directory()
	key, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := srs.New([][]byte{[]byte(strings.TrimSpace(string(key)))}, srs.Options{MaxAge: 21 * 24 * time.Hour, Now: func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }})
	expired, _ := old.Forward("dave@orig.example", "example.test")
	for addr, want := range map[string]bool{
		srsAddr: true, "SRS0=AAAA=JZ=orig.example=dave@example.test": false, expired: false,
		strings.Replace(srsAddr, "@example.test", "@remote.example", 1): false, // not a local domain
		"alice@example.test": true,
	} {
		if got, err := d.RecipientExists(ctx, addr); err != nil || got != want {
			t.Errorf("RecipientExists(%q) = %v, %v; want %v", addr, got, err, want)
		}
	}
}
