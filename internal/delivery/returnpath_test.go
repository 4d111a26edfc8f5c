package delivery

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/delivery/dovecottest"
)

// forgedReturnPath is a message that arrived with a Return-Path field of
// its own, as a sender may write one.
const forgedReturnPath = "Return-Path: <forged@evil.example>\r\nSubject: rp\r\nreturn-path:\r\n <forged2@evil.example>\r\n\r\nbody\r\nReturn-Path: <in-body@example.net>\r\n"

// TestMaildirReturnPath checks RFC 5321 §4.4: the final delivery puts
// the envelope sender in a Return-Path field, the only one the stored
// copy has (a sender's own is dropped: a recipient's client must not
// read a forged one).
func TestMaildirReturnPath(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root, DeliveredTo: true}
	for _, tc := range []struct{ from, want string }{
		{"bounces@sender.example", "Return-Path: <bounces@sender.example>\r\nDelivered-To: bob@example.org\r\nSubject: rp\r\n\r\nbody\r\nReturn-Path: <in-body@example.net>\r\n"},
		{"", "Return-Path: <>\r\nDelivered-To: bob@example.org\r\nSubject: rp\r\n\r\nbody\r\nReturn-Path: <in-body@example.net>\r\n"},
	} {
		os.RemoveAll(root)
		if err := m.Deliver(context.Background(), "bob@example.org", tc.from, []byte(forgedReturnPath)); err != nil {
			t.Fatal(err)
		}
		files := newFiles(t, root, "example.org", "bob")
		if len(files) != 1 {
			t.Fatalf("%d files", len(files))
		}
		got, _ := os.ReadFile(files[0])
		if string(got) != tc.want {
			t.Errorf("from %q: stored\n%q\nwant\n%q", tc.from, got, tc.want)
		}
	}
	if err := m.Deliver(context.Background(), "bob@example.org", "a\r\nX-Injected: 1@x", []byte("x")); !errors.Is(err, ErrBadMailbox) {
		t.Errorf("sender with CRLF: %v", err)
	}
}

// TestDropReturnPath checks the header filter on its own.
func TestDropReturnPath(t *testing.T) {
	for in, want := range map[string]string{
		"Subject: x\r\n\r\nbody":                              "Subject: x\r\n\r\nbody",
		"Return-Path: <a@b>\r\n\r\n":                          "\r\n",
		"RETURN-PATH:<a@b>\r\nSubject: x\r\n\r\n":             "Subject: x\r\n\r\n",
		"Subject: x\r\nReturn-Path: <a@b>\r\n\tmore\r\n\r\nb": "Subject: x\r\n\r\nb",
		"Return-Paths: kept\r\n\r\n":                          "Return-Paths: kept\r\n\r\n",
		"Subject: x\r\n":                                      "Subject: x\r\n",
		"Return-Path: <a@b>":                                  "",
		"":                                                    "",
	} {
		if got := string(dropReturnPath([]byte(in))); got != want {
			t.Errorf("dropReturnPath(%q) = %q, want %q", in, got, want)
		}
	}
	clean := []byte("Subject: x\r\n\r\nReturn-Path: in the body\r\n")
	if got := dropReturnPath(clean); &got[0] != &clean[0] {
		t.Error("a message without Return-Path was copied")
	}
}

// TestLMTPDovecot delivers through the real Dovecot LMTP server:
// Dovecot adds the Return-Path itself, from MAIL FROM (as LMTP servers
// do), so the client adds none and drops the sender's own: the stored
// copy has exactly one. A recipient Dovecot refuses keeps Dovecot's
// enhanced status code for the DSN.
func TestLMTPDovecot(t *testing.T) {
	dc := dovecottest.Start(t, "alice@example.test")
	l := &LMTP{Network: "tcp", Address: dc.Addr, Hostname: "mx.postern.test"}
	errs := l.Deliver(context.Background(), "bounces@sender.example",
		[]string{"alice@example.test", "nobody@example.test"}, []byte(forgedReturnPath))
	if errs[0] != nil {
		t.Fatalf("alice: %v", errs[0])
	}
	msg := dc.WaitMessage("alice@example.test", "Subject: rp")
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	if head == msg {
		head, _, _ = strings.Cut(msg, "\n\n")
	}
	if n := strings.Count(strings.ToLower(head), "return-path:"); n != 1 ||
		!strings.HasPrefix(msg, "Return-Path: <bounces@sender.example>") {
		t.Errorf("%d Return-Path fields, want 1 with the envelope sender:\n%s", n, msg)
	}
	var le *LMTPError
	if !errors.As(errs[1], &le) || le.Code != 550 || le.Enhanced != "5.1.1" || !errors.Is(errs[1], ErrPermanent) {
		t.Fatalf("nobody: %v, want a permanent 550 5.1.1", errs[1])
	}
	ds, ok := errs[1].(interface{ DSNStatus() (string, string) })
	if !ok {
		t.Fatalf("%T does not tell the DSN its status", errs[1])
	}
	status, diag := ds.DSNStatus()
	if status != "5.1.1" || !strings.HasPrefix(diag, "smtp; 550 5.1.1 ") || !strings.Contains(diag, "nobody@example.test") {
		t.Errorf("DSNStatus = %q, %q; want 5.1.1 and Dovecot's reply", status, diag)
	}
}

// FuzzDropReturnPath checks that no Return-Path field is left in the
// header section, that the body is untouched and that a second pass
// changes nothing.
func FuzzDropReturnPath(f *testing.F) {
	f.Add([]byte(forgedReturnPath))
	f.Add([]byte("Subject: x\r\n\r\nbody"))
	f.Add([]byte("Return-Path : <a@b>\r\n \r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := dropReturnPath(data)
		again := dropReturnPath(out)
		if string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q", data, out, again)
		}
		for i := 0; i < len(out); {
			end := bytes.IndexByte(out[i:], '\n')
			if end < 0 {
				end = len(out)
			} else {
				end += i + 1
			}
			line := out[i:end]
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				// The body: the input's, byte for byte.
				if !bytes.HasSuffix(data, out[i:]) {
					t.Fatalf("body changed: %q -> %q", data, out)
				}
				break
			}
			if isReturnPath(line) {
				t.Fatalf("Return-Path left in %q (from %q)", out, data)
			}
			i = end
		}
	})
}

// TestMaildirPathFolding checks that mailbox paths fold ASCII letters
// only: Élise and élise are two users with two Maildirs, a U-label
// domain is kept under its A-label, and a domain that is no IDNA name
// (the Kelvin sign) is refused, not taken for work.test.
func TestMaildirPathFolding(t *testing.T) {
	root := t.TempDir()
	m := &Maildir{Root: root}
	ctx := context.Background()
	for _, mb := range []string{"Élise@Work.test", "élise@work.test", "x@bücher.example"} {
		if err := m.Deliver(ctx, mb, "", []byte("x")); err != nil {
			t.Fatalf("%s: %v", mb, err)
		}
	}
	for _, dir := range []string{"work.test/Élise", "work.test/élise", "xn--bcher-kva.example/x"} {
		if len(newFiles(t, root, filepath.Dir(dir), filepath.Base(dir))) != 1 {
			t.Errorf("%s: want one message", dir)
		}
	}
	if err := m.Deliver(ctx, "alice@wor\u212A.test", "", []byte("x")); !errors.Is(err, ErrBadMailbox) {
		t.Errorf("Kelvin domain: %v, want ErrBadMailbox", err)
	}
}
