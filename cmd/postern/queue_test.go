package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/smtp"
	"postern/internal/spool"
)

var cliNow = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fakeQueue is an admin.Spool and admin.Runner over fixed messages.
type fakeQueue struct {
	items    []spool.Item
	envs     map[string]*smtp.Envelope
	retried  []string
	deleted  []string
	released []string
	// changes records each change: the op and the ids it changed.
	changes []string
	// active are the recipients being delivered, by id.
	active map[string][]string
}

func (q *fakeQueue) List() []spool.Item { return q.items }

func (q *fakeQueue) Lookup(id string) (spool.Item, error) {
	for _, it := range q.items {
		if it.ID == id {
			return it, nil
		}
	}
	return spool.Item{}, fmt.Errorf("queue: lookup %s: %w", id, spool.ErrNotFound)
}

func (q *fakeQueue) Header(id string) (*smtp.Envelope, []byte, error) {
	env, ok := q.envs[id]
	if !ok {
		return nil, nil, spool.ErrNotFound
	}
	return env, []byte("Received: from laptop.example\r\n\tby mail.example.net\r\nSubject: Lunch?\r\n\r\n"), nil
}

// fakeBody is the body of every message of a fakeQueue.
const fakeBody = "Shall we have lunch?\r\n"

func (q *fakeQueue) Open(id string) (*smtp.Envelope, *spool.Message, error) {
	env, h, err := q.Header(id)
	if err != nil {
		return nil, nil, err
	}
	return env, &spool.Message{Message: smtp.Message{Header: h, Body: smtp.BodyBytes([]byte(fakeBody))}}, nil
}

// Change changes the states of the recipients sel picks as the spool
// does, and records what it changed.
func (q *fakeQueue) Change(ids []string, op spool.Op, sel spool.Select) ([]spool.Changed, error) {
	var out []spool.Changed
	for _, id := range ids {
		for i := range q.items {
			it := &q.items[i]
			if it.ID != id {
				continue
			}
			c := spool.Changed{ID: id}
			for j := range it.Recipients {
				r := &it.Recipients[j]
				if op.Changes(r.State.Status) && (sel == nil || sel(id, it.From, r.Addr, r.State)) {
					switch op {
					case spool.OpDelete:
						r.State.Status = spool.StatusRemoved
					case spool.OpHold:
						r.State.Status = spool.StatusHeld
					case spool.OpRelease:
						r.State.Status = spool.StatusPending
					}
					c.Recipients = append(c.Recipients, r.Addr)
				}
			}
			if len(c.Recipients) > 0 {
				out = append(out, c)
				q.changes = append(q.changes, op.String()+" "+id)
			}
		}
	}
	return out, nil
}

func (q *fakeQueue) Active() map[string][]string { return q.active }

func (q *fakeQueue) Delete(id string) error {
	q.deleted = append(q.deleted, id)
	return nil
}

func (q *fakeQueue) Retry(id string) error {
	if _, err := q.Lookup(id); err != nil {
		return err
	}
	q.retried = append(q.retried, id)
	return nil
}

func (q *fakeQueue) Release(id string) error {
	it, err := q.Lookup(id)
	if err != nil {
		return err
	}
	if !it.Held {
		return fmt.Errorf("queue: release %s: %w", id, spool.ErrNotHeld)
	}
	q.released = append(q.released, id)
	return nil
}

func newFakeQueue() *fakeQueue {
	const a, b = "0ab1c2d3e4f5g6h7i8j9", "0ab1c2d3e4f5g6h7i8ka"
	return &fakeQueue{
		items: []spool.Item{
			{ID: a, From: "alice@example.com", Size: 2300, ReceivedAt: cliNow.Add(-(2*time.Hour + 5*time.Minute)),
				Recipients: []spool.ItemRecipient{
					{Addr: "bob@example.org", State: spool.RecipientState{Status: spool.StatusDeferred, Attempts: 3,
						NextAttempt: cliNow.Add(20 * time.Minute), LastError: "451 4.3.0 try later", Code: "4.3.0",
						RemoteMTA: "mx.example.org"}},
					{Addr: "carl@example.net", State: spool.RecipientState{Status: spool.StatusDelivered, Attempts: 1, Code: "2.0.0"}},
					{Addr: "dan@local.test"},
				}},
			{ID: b, From: "", Size: 512, ReceivedAt: cliNow.Add(-30 * time.Second),
				Recipients: []spool.ItemRecipient{
					{Addr: "eve@example.com", State: spool.RecipientState{Status: spool.StatusDeferred, Attempts: 1,
						NextAttempt: cliNow.Add(-time.Second), Warned: true}},
				}},
		},
		envs: map[string]*smtp.Envelope{
			a: {ID: a, From: "alice@example.com", Body: "8BITMIME", SMTPUTF8: true, RequireTLS: true,
				AuthUser: "alice", Listener: "submission", Remote: netip.MustParseAddrPort("192.0.2.7:40000"),
				Helo: "laptop.example", ReceivedAt: cliNow.Add(-(2*time.Hour + 5*time.Minute)),
				Ret: "HDRS", EnvID: "QQ314159",
				DSN: map[string]smtp.RcptDSN{
					"bob@example.org":  {Notify: smtp.NotifySuccess | smtp.NotifyFailure, ORcpt: "rfc822;robert@example.org"},
					"carl@example.net": {Notify: smtp.NotifyNever},
				}},
		},
	}
}

// serveAdmin runs an admin server for q on DATA/admin.sock.
func serveAdmin(t *testing.T, q *fakeQueue) (dataDir string) {
	return serveAdminServer(t, &admin.Server{Spool: q, Runner: q})
}

// serveAdminServer runs srv, with a silent logger, on DATA/admin.sock
// of a new data directory.
func serveAdminServer(t *testing.T, srv *admin.Server) (dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	l, err := admin.Listen(config.Dev(dataDir).AdminSocket())
	if err != nil {
		t.Fatal(err)
	}
	srv.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return dataDir
}

func runQ(t *testing.T, args ...string) (string, error) {
	return runGroup(t, "queue", args...)
}

// runGroup runs `postern GROUP ARGS...` at the CLI's clock and returns
// its standard output.
func runGroup(t *testing.T, group string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := testCLI(nil, &out, io.Discard, func() time.Time { return cliNow }).exec(append([]string{group}, args...))
	return out.String(), err
}

func TestQueueList(t *testing.T) {
	data := serveAdmin(t, newFakeQueue())
	got, err := runQ(t, "list", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	want := `ID                    AGE    SIZE  FROM               RECIPIENTS
0ab1c2d3e4f5g6h7i8j9  2h05m  2.2K  alice@example.com  bob@example.org (deferred, next in 20m, 3 attempts)
                                                      carl@example.net (delivered, 1 attempt)
                                                      dan@local.test pending
0ab1c2d3e4f5g6h7i8ka  30s    512B  <>                 eve@example.com (deferred, due now, 1 attempt)
2 messages, 4 recipients
`
	if got != want {
		t.Errorf("queue list:\n%s\nwant:\n%s", got, want)
	}
	one := newFakeQueue()
	one.items = one.items[1:]
	if got, err := runQ(t, "list", "--data", serveAdmin(t, one)); err != nil || !strings.HasSuffix(got, "\n1 message, 1 recipient\n") {
		t.Errorf("one message: %q, %v", got, err)
	}
	empty := serveAdmin(t, &fakeQueue{})
	if got, err := runQ(t, "list", "--data", empty); err != nil || got != "The queue is empty.\n" {
		t.Errorf("empty list: %q, %v", got, err)
	}
}

func TestQueueShow(t *testing.T) {
	data := serveAdmin(t, newFakeQueue())
	got, err := runQ(t, "show", "0ab1c2d3e4f5g6h7i8j9", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	want := `ID:         0ab1c2d3e4f5g6h7i8j9
From:       alice@example.com
Received:   2026-11-27T07:55:00Z (2h05m ago)
Via:        listener submission, from 192.0.2.7:40000, helo laptop.example, user alice
Size:       2300 bytes
Parameters: BODY=8BITMIME SMTPUTF8 REQUIRETLS RET=HDRS ENVID=QQ314159
Recipients:
  bob@example.org (deferred, next in 20m, 3 attempts)
      status 4.3.0, remote mx.example.org
      last error: 451 4.3.0 try later
      NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;robert@example.org
  carl@example.net (delivered, 1 attempt)
      status 2.0.0
      NOTIFY=NEVER
  dan@local.test pending
Headers:
  Received: from laptop.example
  	by mail.example.net
  Subject: Lunch?
`
	if got != want {
		t.Errorf("queue show:\n%s\nwant:\n%s", got, want)
	}
}

func TestQueueRetryDelete(t *testing.T) {
	q := newFakeQueue()
	data := serveAdmin(t, q)
	const id = "0ab1c2d3e4f5g6h7i8j9"
	if got, err := runQ(t, "retry", id, "--data", data); err != nil || got != "Retrying 1 message (1 recipient) now.\n" {
		t.Errorf("retry: %q, %v", got, err)
	}
	if got, err := runQ(t, "delete", "--data", data, id); err != nil ||
		got != "Deleted 1 message (2 recipients): nothing more is delivered to them, and no bounce is sent.\n" {
		t.Errorf("delete: %q, %v", got, err)
	}
	if want := []string{"retry " + id, "delete " + id}; !slices.Equal(q.changes, want) {
		t.Errorf("changes %v, want %v", q.changes, want)
	}
	for _, verb := range []string{"show", "retry", "delete"} {
		_, err := runQ(t, verb, "nosuchid", "--data", data)
		if err == nil || err.Error() != "queue: no message nosuchid in the queue" {
			t.Errorf("%s of an unknown id: %v", verb, err)
		}
	}
}

func TestQueueHeld(t *testing.T) {
	q := newFakeQueue()
	const id = "0ab1c2d3e4f5g6h7i8kb"
	q.items = append(q.items[1:], spool.Item{ID: id, From: "alice@example.com", Size: 300, ReceivedAt: cliNow.Add(-5 * time.Minute),
		Held: true, HoldReason: "send limit: messages per hour",
		Recipients: []spool.ItemRecipient{{Addr: "bob@example.org", State: spool.RecipientState{Status: spool.StatusHeld}}}})
	q.envs[id] = &smtp.Envelope{ID: id, From: "alice@example.com", Body: "7BIT", AuthUser: "alice", Listener: "submission",
		ReceivedAt: cliNow.Add(-5 * time.Minute), Hold: true, HoldReason: "send limit: messages per hour"}
	data := serveAdmin(t, q)
	got, err := runQ(t, "list", "--data", data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, id+"  5m   300B  alice@example.com  bob@example.org (held: send limit: messages per hour)\n") {
		t.Errorf("queue list does not show the hold:\n%s", got)
	}
	got, err = runQ(t, "show", id, "--data", data)
	if err != nil || !strings.Contains(got, "State:      held for review (send limit: messages per hour); postern queue release "+id) {
		t.Errorf("queue show: %v\n%s", err, got)
	}
	if got, err := runQ(t, "release", id, "--data", data); err != nil || got != "Released 1 message (1 recipient): delivered now.\n" {
		t.Errorf("release: %q, %v", got, err)
	}
	if want := []string{"release " + id}; !slices.Equal(q.changes, want) {
		t.Errorf("changes %v, want %v", q.changes, want)
	}
	if _, err := runQ(t, "release", "0ab1c2d3e4f5g6h7i8ka", "--data", data); err == nil ||
		err.Error() != "queue: message 0ab1c2d3e4f5g6h7i8ka is not held" {
		t.Errorf("release of a message not held: %v", err)
	}
	if _, err := runQ(t, "release", "nosuchid", "--data", data); err == nil || err.Error() != "queue: no message nosuchid in the queue" {
		t.Errorf("release of an unknown id: %v", err)
	}
	if _, err := runQ(t, "release", "--data", data); err == nil {
		t.Error("release without an id accepted")
	}
}

func TestQueueNotRunning(t *testing.T) {
	data := t.TempDir()
	_, err := runQ(t, "list", "--data", data)
	want := "postern is not running (no " + filepath.Join(data, "admin.sock") +
		"): the queue commands act through the running server, which owns the spool; start it first"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	// Through run(): a message on stderr and exit status 1.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"queue", "show", "x", "--data", data}, nil, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "postern: postern is not running") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestQueueUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"frob"}, {"show"}, {"show", "a", "b"}, {"retry"}, {"list", "extra"}, {"list", "--bogus"}} {
		_, err := runQ(t, args...)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
