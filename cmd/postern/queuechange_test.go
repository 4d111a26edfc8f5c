package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/internal/admin"
	"postern/internal/spool"
)

// runQueueCmd runs `postern queue ARGS` as main does and returns its
// stdout, stderr and exit status; stdin is not a terminal.
func runQueueCmd(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = testCLI(strings.NewReader(""), &o, &e, func() time.Time { return cliNow }).run(append([]string{"queue"}, args...))
	return o.String(), e.String(), code
}

// incidentFake is a queue with n deferred messages to down.example, one
// from alice to up.example and down.example, and a held one.
func incidentFake(n int) *fakeQueue {
	q := &fakeQueue{}
	deferred := spool.RecipientState{Status: spool.StatusDeferred, Attempts: 2, NextAttempt: cliNow.Add(time.Hour)}
	for i := range n {
		q.items = append(q.items, spool.Item{ID: fmt.Sprintf("d%019d", i), From: "news@spam.example", Size: 100,
			ReceivedAt: cliNow.Add(-time.Hour), Recipients: []spool.ItemRecipient{{Addr: fmt.Sprintf("u%d@down.example", i), State: deferred}}})
	}
	q.items = append(q.items,
		spool.Item{ID: "a0000000000000000001", From: "alice@example.com", Size: 200, ReceivedAt: cliNow.Add(-time.Minute),
			Recipients: []spool.ItemRecipient{{Addr: "bob@up.example", State: deferred}, {Addr: "carl@Down.Example", State: deferred}}},
		spool.Item{ID: "h0000000000000000001", From: "alice@example.com", Size: 300, ReceivedAt: cliNow.Add(-time.Minute),
			Held: true, HoldReason: "held by operator",
			Recipients: []spool.ItemRecipient{{Addr: "dan@up.example", State: spool.RecipientState{Status: spool.StatusHeld}}}})
	return q
}

// The filters of queue list and --json.
func TestQueueListFilters(t *testing.T) {
	q := incidentFake(2)
	q.active = map[string][]string{"a0000000000000000001": {"bob@up.example"}}
	data := serveAdmin(t, q)
	out, errs, code := runQueueCmd("list", "--domain", "up.example", "--data", data)
	if code != 0 || !strings.Contains(out, "bob@up.example (being delivered now, 2 attempts)") ||
		!strings.Contains(out, "dan@up.example (held: held by operator)") || strings.Contains(out, "down.example") ||
		!strings.HasSuffix(out, "\n2 messages, 2 recipients\n") {
		t.Errorf("list --domain up.example: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = runQueueCmd("list", "--state", "deferred", "--from", "spam.example", "--json", "--data", data)
	var msgs []admin.Message
	if code != 0 || json.Unmarshal([]byte(out), &msgs) != nil || len(msgs) != 2 || msgs[0].Recipients[0].Status != "deferred" ||
		msgs[0].ID != "d0000000000000000000" {
		t.Errorf("list --json: exit %d, %+v\n%s%s", code, msgs, out, errs)
	}
	if out, errs, code := runQueueCmd("list", "--to", "nobody@up.example", "--data", data); code != 0 || out != "No message matches.\n" {
		t.Errorf("a filter that matches nothing: exit %d\n%s%s", code, out, errs)
	}
	if out, _, code := runQueueCmd("list", "--json", "--data", serveAdmin(t, &fakeQueue{})); code != 0 || out != "[]\n" {
		t.Errorf("list --json of an empty queue: exit %d, %q", code, out)
	}
	for _, c := range []struct{ args, want string }{
		{"list --state stuck", `--state "stuck": want one of pending, deferred, held, active`},
		{"list --to up.example", "use --domain up.example"},
		{"list --domain bob@up.example", "give the domain alone (up.example)"},
		{"delete", "name the messages: by id, by a filter"},
		{"delete --all --domain up.example", "--all takes every message"},
		{"delete ../state.db", `"../state.db" is not a queue id`},
		{"cat x/y", `"x/y" is not a queue id`},
		{"show a;b", `"a;b" is not a queue id`},
		{"flush --all", "flag provided but not defined: --all"},
		{"retry --yes --all", "flag provided but not defined: --yes"},
	} {
		out, errs, code := runQueueCmd(append(strings.Fields(c.args), "--data", data)...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, want 64 and %q\n%s%s", c.args, code, c.want, out, errs)
		}
	}
	if len(q.changes) != 0 {
		t.Errorf("refused commands changed %v", q.changes)
	}
}

// More than five messages: refused without a terminal unless --yes; the
// count is printed; a filter that matches nothing exits 1, saying so.
func TestQueueChangeConfirm(t *testing.T) {
	q := incidentFake(6)
	data := serveAdmin(t, q)
	out, errs, code := runQueueCmd("delete", "--domain", "down.example", "--data", data)
	if code != 1 || out != "" || !strings.Contains(errs, "7 messages (7 recipients) would be deleted") || !strings.Contains(errs, "--yes") {
		t.Errorf("delete of 7 without --yes nor a terminal: exit %d\n%s%s", code, out, errs)
	}
	if len(q.changes) != 0 {
		t.Fatalf("a refused delete changed %v", q.changes)
	}
	out, errs, code = runQueueCmd("hold", "--domain", "down.example", "--yes", "--data", data)
	if code != 0 || out != "Held 7 messages (7 recipients): nothing is tried until postern queue release.\n" {
		t.Errorf("hold --yes: exit %d\n%s%s", code, out, errs)
	}
	// bob at up.example is not held: the filter picks recipients.
	if st := q.items[6].Recipients; st[0].State.Status != spool.StatusDeferred || st[1].State.Status != spool.StatusHeld {
		t.Errorf("alice's message after hold --domain down.example: %+v", st)
	}
	out, errs, code = runQueueCmd("release", "--domain", "nowhere.example", "--data", data)
	if code != 1 || out != "" || !strings.Contains(errs, "postern: queue release: nothing to release: no held recipient matches --domain nowhere.example") {
		t.Errorf("a filter that matches nothing: exit %d\n%s%s", code, out, errs)
	}
	// Five or fewer: no question.
	out, errs, code = runQueueCmd("release", "--domain", "up.example", "--data", data)
	if code != 0 || out != "Released 1 message (1 recipient): delivered now.\n" {
		t.Errorf("release of one: exit %d\n%s%s", code, out, errs)
	}
	want := []string{"hold d0000000000000000000", "hold d0000000000000000005", "hold a0000000000000000001", "release h0000000000000000001"}
	for _, w := range want {
		if !slices.Contains(q.changes, w) {
			t.Errorf("changes %v lack %q", q.changes, w)
		}
	}
}

// By id: a message gone since it was listed (delivered between list and
// delete) is named on stderr, the others are changed; one id alone that
// is gone is an error.
func TestQueueChangeByID(t *testing.T) {
	q := incidentFake(1)
	data := serveAdmin(t, q)
	out, errs, code := runQueueCmd("delete", "d0000000000000000000", "gone0000000000000000", "h0000000000000000001", "--data", data)
	if code != 0 || out != "Deleted 2 messages (2 recipients): nothing more is delivered to them, and no bounce is sent.\n" ||
		errs != "postern: queue delete: gone0000000000000000: not in the queue (delivered, deleted, or never there)\n" {
		t.Errorf("delete by ids: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := runQueueCmd("retry", "gone0000000000000000", "--data", data); code != 1 ||
		errs != "postern: queue: no message gone0000000000000000 in the queue\n" {
		t.Errorf("retry of a gone id: exit %d\n%s", code, errs)
	}
	if _, errs, code := runQueueCmd("release", "a0000000000000000001", "--data", data); code != 1 ||
		errs != "postern: queue: message a0000000000000000001 is not held\n" {
		t.Errorf("release of a message not held: exit %d\n%s", code, errs)
	}
	if out, errs, code := runQueueCmd("flush", "--data", data); code != 0 || out != "Retrying 1 message (2 recipients) now.\n" {
		t.Errorf("flush: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := runQueueCmd("flush", "--data", serveAdmin(t, &fakeQueue{})); code != 0 || out != "Nothing to retry: no deferred recipient.\n" {
		t.Errorf("flush of an empty queue: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := runQueueCmd("delete", "--all", "--data", serveAdmin(t, &fakeQueue{})); code != 0 || out != "Deleted 0 messages.\n" {
		t.Errorf("delete --all of an empty queue: exit %d\n%s%s", code, out, errs)
	}
}

// queue cat writes the message as stored.
func TestQueueCat(t *testing.T) {
	data := serveAdmin(t, newFakeQueue())
	const id = "0ab1c2d3e4f5g6h7i8j9"
	out, errs, code := runQueueCmd("cat", id, "--data", data)
	want := "Received: from laptop.example\r\n\tby mail.example.net\r\nSubject: Lunch?\r\n\r\n" + fakeBody
	if code != 0 || out != want {
		t.Errorf("cat: exit %d, %q, want %q\n%s", code, out, want, errs)
	}
	if out, _, code := runQueueCmd("cat", id, "--header", "--data", data); code != 0 || out != strings.TrimSuffix(want, fakeBody) {
		t.Errorf("cat --header: exit %d, %q", code, out)
	}
	if _, errs, code := runQueueCmd("cat", "nosuchid", "--data", data); code != 1 || errs != "postern: queue: no message nosuchid in the queue\n" {
		t.Errorf("cat of an unknown id: exit %d, %q", code, errs)
	}
}

// TestShowListEscapes: queue show and list show, not obey, the control
// characters a client (HELO), a sender (the header) or a remote server
// (the last error) put in what they print.
func TestShowListEscapes(t *testing.T) {
	m := admin.Message{ID: "A1", From: "s@x.test", ReceivedAt: time.Now(),
		Recipients: []admin.Recipient{{Addr: "r@y.test", Status: "deferred", LastError: "451 \x1b[2J screen cleared",
			ORcpt: "utf-8;\x1b[8mhidden@y.test"}}}
	d := &admin.MessageDetail{Message: m, Helo: "evil\x1b]0;title\x07", Headers: "Subject: \x1b[31mred\u009b2J\x1b[0m\r\n\r\n",
		EnvID: "id\x1b[1A"}
	var b bytes.Buffer
	printShow(&b, d, time.Now())
	printList(&b, []admin.Message{m}, time.Now())
	if strings.ContainsAny(b.String(), "\x1b\x07\u009b") {
		t.Errorf("queue show and list send control characters to the terminal:\n%q", b.String())
	}
	for _, want := range []string{`evil\x1b]0;title\x07`, `Subject: \x1b[31mred\u{009b}2J`, `451 \x1b[2J screen cleared`,
		`ENVID=id+1B[1A`, `ORCPT=utf-8;\x{1B}[8mhidden@y.test`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestShowDSNWireForm: queue show prints ENVID and ORCPT as MAIL and
// RCPT carry them (xtext), so that a sender's "id RET=HDRS" cannot read
// as a second RET, nor an ORCPT as a second NOTIFY.
func TestShowDSNWireForm(t *testing.T) {
	m := admin.Message{ID: "A1", From: "s@x.test", ReceivedAt: time.Now(),
		Recipients: []admin.Recipient{{Addr: "x@remote.example", Status: "pending", Notify: "SUCCESS",
			ORcpt: "rfc822;x@remote.example NOTIFY=NEVER"}}}
	d := &admin.MessageDetail{Message: m, Ret: "FULL", EnvID: "id1 RET=HDRS"}
	var b bytes.Buffer
	printShow(&b, d, time.Now())
	for _, want := range []string{"RET=FULL ENVID=id1+20RET+3DHDRS\n", "NOTIFY=SUCCESS ORCPT=rfc822;x@remote.example+20NOTIFY+3DNEVER\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, b.String())
		}
	}
}
