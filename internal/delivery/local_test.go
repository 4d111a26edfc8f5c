package delivery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"postern/internal/queue"
	"postern/internal/smtp"
)

// testAliases maps a recipient to its mailboxes and to the number of
// copies it forwards; a recipient missing from both maps names nobody
// (permanent), and fail is returned as is.
type testAliases struct {
	boxes map[string][]string
	fwd   map[string]int
	fail  error
}

func (a testAliases) Expand(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) (Expansion, error) {
	if a.fail != nil {
		return Expansion{}, a.fail
	}
	b, ok := a.boxes[rcpt]
	n, fok := a.fwd[rcpt]
	if !ok && !fok {
		return Expansion{}, queue.Permanent(errors.New("no such user"))
	}
	return Expansion{Mailboxes: b, Forwarded: n}, nil
}

func (a testAliases) Mailbox(ctx context.Context, rcpt string) (string, bool) {
	b := a.boxes[rcpt]
	if a.fail != nil || len(b) != 1 {
		return "", false
	}
	return b[0], true
}

var localMsg = &smtp.Message{Header: []byte("Subject: x\r\n\r\n"), Body: smtp.BodyBytes([]byte("body\r\n"))}

// TestLocalMaildir: Maildir delivery after expansion, and which failures
// are permanent (a mailbox name that is no path; a recipient that names
// nobody) and which are retried (a directory error, an unwritable
// mailbox).
func TestLocalMaildir(t *testing.T) {
	root := t.TempDir()
	l := &Local{Aliases: testAliases{boxes: map[string][]string{
		"team@x.test":  {"a@x.test", "b@x.test"},
		"fwd@x.test":   nil, // forwarded only
		"bad@x.test":   {"../evil@x.test"},
		"stuck@x.test": {"stuck@x.test"},
	}}, Maildir: &Maildir{Root: root}}
	env := &smtp.Envelope{ID: "i1", From: "s@src.test"}
	ctx := context.Background()
	if err := l.Deliver(ctx, env, "team@x.test", localMsg); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b"} {
		if n := len(newFiles(t, root, "x.test", u)); n != 1 {
			t.Errorf("%s has %d messages, want 1", u, n)
		}
	}
	if err := l.Deliver(ctx, env, "fwd@x.test", localMsg); err != nil {
		t.Errorf("forwarded only: %v", err)
	}
	if err := l.Deliver(ctx, env, "bad@x.test", localMsg); !queue.IsPermanent(err) || !errors.Is(err, ErrBadMailbox) {
		t.Errorf("bad mailbox: %v, want permanent ErrBadMailbox", err)
	}
	if err := l.Deliver(ctx, env, "nobody@x.test", localMsg); !queue.IsPermanent(err) {
		t.Errorf("unknown: %v, want permanent", err)
	}
	// A mailbox whose path is blocked by a file: temporary.
	if err := os.WriteFile(filepath.Join(root, "x.test", "stuck"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Deliver(ctx, env, "stuck@x.test", localMsg); err == nil || queue.IsPermanent(err) {
		t.Errorf("blocked mailbox: %v, want a temporary error", err)
	}
	l.Aliases = testAliases{fail: errors.New("directory down")}
	if err := l.Deliver(ctx, env, "team@x.test", localMsg); err == nil || queue.IsPermanent(err) {
		t.Errorf("directory down: %v, want a temporary error", err)
	}
}

// TestLocalLMTP: the mailboxes of a recipient go in one LMTP transaction;
// a 5xx for one of them fails the recipient for good and names the
// mailbox, a 4xx defers it.
func TestLocalLMTP(t *testing.T) {
	s := newFakeLMTP(t, "tcp", "127.0.0.5:0", func(cmd string) string {
		switch cmd {
		case "DOT <gone@x.test>":
			return "550 5.1.1 no such user"
		case "DOT <full@x.test>":
			return "452 4.2.2 mailbox full"
		}
		return ""
	})
	l := &Local{Aliases: testAliases{boxes: map[string][]string{
		"team@x.test": {"a@x.test", "b@x.test"},
		"gone@x.test": {"a@x.test", "gone@x.test"},
		"full@x.test": {"full@x.test"},
	}}, LMTP: &LMTP{Network: "tcp", Address: s.ln.Addr().String(), Hostname: "mx.test", Timeout: 2 * time.Second}}
	env := &smtp.Envelope{ID: "i1", From: "s@src.test"}
	ctx := context.Background()
	if err := l.Deliver(ctx, env, "team@x.test", localMsg); err != nil {
		t.Fatal(err)
	}
	err := l.Deliver(ctx, env, "gone@x.test", localMsg)
	if !queue.IsPermanent(err) || !strings.Contains(err.Error(), "gone@x.test") {
		t.Errorf("5xx: %v, want permanent naming gone@x.test", err)
	}
	var le *LMTPError
	if !errors.As(err, &le) || le.Enhanced != "5.1.1" {
		t.Errorf("5xx: the LMTPError (for the DSN) is lost: %v", err)
	}
	if err := l.Deliver(ctx, env, "full@x.test", localMsg); err == nil || queue.IsPermanent(err) {
		t.Errorf("4xx: %v, want a temporary error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.data) != 3 {
		t.Errorf("server took %d messages, want 3 (one transaction per recipient)", len(s.data))
	}
}

// TestLocalDSNOutcome checks what local delivery tells the queue for a
// success notice (RFC 3461 §6.2.7): an alias that sends the message to
// several places (mailboxes, forwarded copies or both) is "expanded"
// (§6.2.7.3); one that forwards it to a single address passes the
// NOTIFY on with the copy (§6.2.7.2), so the queue sends no notice of
// its own; a single mailbox is a plain delivery.
func TestLocalDSNOutcome(t *testing.T) {
	l := &Local{Aliases: testAliases{
		boxes: map[string][]string{
			"solo@x.test":  {"solo@x.test"},
			"alias@x.test": {"solo@x.test"},
			"team@x.test":  {"a@x.test", "b@x.test"},
			"mixed@x.test": {"a@x.test"},
		},
		fwd: map[string]int{"mixed@x.test": 1, "fwd1@x.test": 1, "fwd2@x.test": 2},
	}, Maildir: &Maildir{Root: t.TempDir()}}
	env := &smtp.Envelope{ID: "i1", From: "s@src.test"}
	for _, c := range []struct {
		rcpt              string
		expanded, nextHop bool
	}{
		{"solo@x.test", false, false},
		{"alias@x.test", false, false},
		{"team@x.test", true, false},
		{"mixed@x.test", true, false},
		{"fwd1@x.test", false, true},
		{"fwd2@x.test", true, false},
	} {
		o := l.DeliverOutcome(context.Background(), env, c.rcpt, localMsg)
		if o.Err != nil || o.Expanded != c.expanded || o.NextHopDSN != c.nextHop {
			t.Errorf("%s: err %v, expanded %v, next hop DSN %v; want nil, %v, %v",
				c.rcpt, o.Err, o.Expanded, o.NextHopDSN, c.expanded, c.nextHop)
		}
	}
	if o := l.DeliverOutcome(context.Background(), env, "nobody@x.test", localMsg); !queue.IsPermanent(o.Err) {
		t.Errorf("unknown: %v, want permanent", o.Err)
	}
}
