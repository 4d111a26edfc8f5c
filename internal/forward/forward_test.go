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

	x, err := f.Expand(ctx, env, "both@example.test", msg)
	if err != nil || strings.Join(x.Mailboxes, ",") != "alice@example.test" || x.Forwarded != 1 {
		t.Fatalf("expand: %+v, %v", x, err)
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
	x, err = f.Expand(ctx, &smtp.Envelope{ID: "b", From: "", Body: "7BIT"}, srsAddr, msg)
	if err != nil || len(x.Mailboxes) != 0 || x.Forwarded != 1 {
		t.Fatalf("bounce: %+v, %v", x, err)
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

// TestForwarderDSN checks the DSN parameters a forwarded copy carries
// (RFC 3461 §6.2.7): ENVID and RET always; the recipient's NOTIFY and
// ORCPT unchanged when the copy is all its alias expands to (§6.2.7.2);
// NOTIFY without SUCCESS when the alias also has other targets
// (§6.2.7.3: the "expanded" notice was the success report),
// NOTIFY=SUCCESS alone becoming NEVER; the alias as ORCPT when the
// sender gave none (§4.2).
func TestForwarderDSN(t *testing.T) {
	f, sp, _ := forwardFixture(t)
	ctx := context.Background()
	msg := &smtp.Message{Header: []byte("Subject: s\r\n\r\n"), Body: smtp.BodyBytes([]byte("body\r\n"))}
	forwarded := func(env *smtp.Envelope, rcpt string) *smtp.Envelope {
		t.Helper()
		before := map[string]bool{}
		for _, it := range sp.List() {
			before[it.ID] = true
		}
		if _, err := f.Expand(ctx, env, rcpt, msg); err != nil {
			t.Fatal(err)
		}
		for _, it := range sp.List() {
			if !before[it.ID] {
				e, _, err := sp.Get(it.ID)
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
		}
		t.Fatalf("%s: nothing forwarded", rcpt)
		return nil
	}
	env := &smtp.Envelope{ID: "o1", From: "dave@orig.example", Body: "7BIT", EnvID: "E-1", Ret: "HDRS",
		Recipients: []string{"both@example.test", "fwd@example.test"},
		DSN: map[string]smtp.RcptDSN{
			"both@example.test": {Notify: smtp.NotifySuccess | smtp.NotifyFailure},
			"fwd@example.test":  {Notify: smtp.NotifySuccess | smtp.NotifyDelay, ORcpt: "rfc822;old@orig.example"},
		}}
	for _, c := range []struct {
		rcpt, to string
		want     smtp.RcptDSN
	}{
		{"both@example.test", "carol@remote.example", smtp.RcptDSN{Notify: smtp.NotifyFailure, ORcpt: "rfc822;both@example.test"}},
		{"fwd@example.test", "Carol@Remote.example", smtp.RcptDSN{Notify: smtp.NotifySuccess | smtp.NotifyDelay, ORcpt: "rfc822;old@orig.example"}},
	} {
		fe := forwarded(env, c.rcpt)
		if fe.EnvID != "E-1" || fe.Ret != "HDRS" || fe.RcptDSN(c.to) != c.want {
			t.Errorf("%s: copy has ENVID %q RET %q DSN %+v; want E-1, HDRS, %+v", c.rcpt, fe.EnvID, fe.Ret, fe.DSN, c.want)
		}
	}
	env.DSN["both@example.test"] = smtp.RcptDSN{Notify: smtp.NotifySuccess}
	if fe := forwarded(env, "both@example.test"); fe.RcptDSN("carol@remote.example").Notify != smtp.NotifyNever {
		t.Errorf("NOTIFY=SUCCESS expanded: copy has %+v, want NEVER", fe.DSN)
	}
	env.DSN["fwd@example.test"] = smtp.RcptDSN{Notify: smtp.NotifySuccess}
	if fe := forwarded(env, "fwd@example.test"); fe.RcptDSN("Carol@Remote.example") != (smtp.RcptDSN{Notify: smtp.NotifySuccess, ORcpt: "rfc822;fwd@example.test"}) {
		t.Errorf("single target without ORCPT: copy has %+v", fe.DSN)
	}
	// A recipient without DSN parameters forwards a copy without them.
	if fe := forwarded(&smtp.Envelope{ID: "o2", From: "dave@orig.example", Body: "7BIT"}, "fwd@example.test"); fe.DSN != nil || fe.EnvID != "" {
		t.Errorf("plain copy has DSN %+v, ENVID %q", fe.DSN, fe.EnvID)
	}
}
