package delivery

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"postern/internal/mailauth"
)

func TestMaildirQuarantineToJunk(t *testing.T) {
	if QuarantineField != mailauth.QuarantineField {
		t.Fatalf("QuarantineField %q, mailauth's %q", QuarantineField, mailauth.QuarantineField)
	}
	root := t.TempDir()
	m := &Maildir{Root: root, DeliveredTo: true}
	ctx := context.Background()
	junk := []byte("x-postern-quarantine: dmarc=fail policy=quarantine header.from=example.com\r\nFrom: a@example.com\r\n\r\nHi\r\n")
	if err := m.Deliver(ctx, "Bob@Example.org", "", junk); err != nil {
		t.Fatal(err)
	}
	box := filepath.Join(root, "example.org", "bob")
	files, _ := filepath.Glob(filepath.Join(box, ".Junk", "new", "*"))
	if len(files) != 1 {
		t.Fatalf("Junk/new has %d files", len(files))
	}
	got, _ := os.ReadFile(files[0])
	if string(got) != "Return-Path: <>\r\nDelivered-To: bob@example.org\r\n"+string(junk) {
		t.Errorf("delivered %q", got)
	}
	// Maildir++: the folder has its maildirfolder file, cur/ and tmp/,
	// and the mailbox itself is a Maildir.
	for _, p := range []string{".Junk/maildirfolder", ".Junk/cur", ".Junk/tmp", "new", "cur", "tmp"} {
		if _, err := os.Stat(filepath.Join(box, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	// The field anywhere but on top does not count, nor a longer name.
	for _, data := range []string{
		"Received: x\r\nX-Postern-Quarantine: yes\r\n\r\nHi\r\n",
		"X-Postern-Quarantined: yes\r\n\r\nHi\r\n",
		"X-Postern-Quarantine",
	} {
		if Quarantined([]byte(data)) {
			t.Errorf("Quarantined(%q)", data)
		}
		if err := m.Deliver(ctx, "bob@example.org", "", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	inbox, _ := filepath.Glob(filepath.Join(box, "new", "*"))
	files, _ = filepath.Glob(filepath.Join(box, ".Junk", "new", "*"))
	if len(inbox) != 3 || len(files) != 1 {
		t.Errorf("inbox %d, junk %d", len(inbox), len(files))
	}
	// Once the mailbox exists, Junk is created on the first quarantined
	// message.
	m2 := &Maildir{Root: t.TempDir()}
	if err := m2.Deliver(ctx, "a@example.org", "", []byte("Subject: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := m2.Deliver(ctx, "a@example.org", "", junk); err != nil {
		t.Fatal(err)
	}
	if files, _ := filepath.Glob(filepath.Join(m2.Root, "example.org", "a", ".Junk", "new", "*")); len(files) != 1 {
		t.Errorf("junk after inbox: %d", len(files))
	}
}
