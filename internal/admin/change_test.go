package admin

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"postern/internal/queue"
	"postern/internal/spool"
)

// incidentQueue puts three deferred messages: one from alice to two
// domains, one from a compromised account to two domains, and a bounce.
func incidentQueue(t *testing.T, f *fixture) (alice, mallory, bounce string) {
	t.Helper()
	alice, mallory, bounce = "a0000000000000000001", "a0000000000000000002", "a0000000000000000003"
	f.put(t, alice, "alice@example.com", "bob@a.example", "carl@b.example")
	f.put(t, mallory, "mallory@evil.example", "x@a.example", "y@c.example")
	f.put(t, bounce, "", "alice@example.com")
	waitUntil(t, "every recipient deferred", func() bool {
		n := 0
		for _, it := range f.spool.List() {
			for _, r := range it.Recipients {
				if r.State.Status == spool.StatusDeferred {
					n++
				}
			}
		}
		return n == 5
	})
	return alice, mallory, bounce
}

// picked renders a list as "id:rcpt,rcpt id:rcpt", for comparisons.
func picked(msgs []Message) string {
	var parts []string
	for _, m := range msgs {
		var rcpts []string
		for _, r := range m.Recipients {
			rcpts = append(rcpts, r.Addr)
		}
		parts = append(parts, m.ID[len(m.ID)-1:]+":"+strings.Join(rcpts, ","))
	}
	return strings.Join(parts, " ")
}

// The filters of GET /queue, evaluated by the server: each picks
// recipients, a message is listed with the recipients picked.
func TestListFilter(t *testing.T) {
	f := newFixture(t)
	incidentQueue(t, f)
	ctx := context.Background()
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "1:bob@a.example,carl@b.example 2:x@a.example,y@c.example 3:alice@example.com"},
		{Filter{Domain: "A.Example"}, "1:bob@a.example 2:x@a.example"},
		{Filter{From: "Mallory@EVIL.example"}, "2:x@a.example,y@c.example"},
		{Filter{From: "evil.example"}, "2:x@a.example,y@c.example"},
		{Filter{From: "<>"}, "3:alice@example.com"},
		{Filter{To: "BOB@a.example"}, "1:bob@a.example"},
		{Filter{From: "alice@example.com", Domain: "b.example"}, "1:carl@b.example"},
		{Filter{State: "deferred", Domain: "c.example"}, "2:y@c.example"},
		{Filter{State: "held"}, ""},
		{Filter{State: "active"}, ""},
		{Filter{Domain: "nowhere.example"}, ""},
	} {
		msgs, err := f.client.ListFilter(ctx, c.f)
		if err != nil {
			t.Errorf("%+v: %v", c.f, err)
			continue
		}
		if got := picked(msgs); got != c.want {
			t.Errorf("%+v: %q, want %q", c.f, got, c.want)
		}
	}
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{To: "a.example"}, "use --domain a.example"},
		{Filter{Domain: "x@a.example"}, "give the domain alone (a.example)"},
		{Filter{State: "stuck"}, "want one of pending, deferred, held, active"},
		{Filter{From: "@a.example"}, "not an address"},
		{Filter{From: "a..example"}, "neither an address nor a domain"},
	} {
		_, err := f.client.ListFilter(ctx, c.f)
		var se *ServerError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, c.want) {
			t.Errorf("%+v: %v, want a refusal saying %q", c.f, err, c.want)
		}
		if err := c.f.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%+v) = %v, want %q", c.f, err, c.want)
		}
	}
}

// An incident, through the API: hold the compromised account's mail,
// release part of it, a dry run that changes nothing, then delete by
// domain, which leaves the other recipients of the same messages alone.
func TestChangeBySelection(t *testing.T) {
	f := newFixture(t)
	alice, mallory, bounce := incidentQueue(t, f)
	ctx := context.Background()
	change := func(op spool.Op, sel Selection) *ChangeResult {
		t.Helper()
		res, err := f.client.Change(ctx, op, sel)
		if err != nil {
			t.Fatalf("%v %+v: %v", op, sel, err)
		}
		return res
	}
	res := change(spool.OpHold, Selection{Filter: Filter{From: "mallory@evil.example"}})
	if res.Messages != 1 || res.Recipients != 2 || !slices.Equal(res.IDs, []string{mallory}) {
		t.Errorf("hold: %+v", res)
	}
	msgs, _ := f.client.ListFilter(ctx, Filter{State: "held"})
	if picked(msgs) != "2:x@a.example,y@c.example" || !msgs[0].Held || msgs[0].HoldReason != "held by operator" {
		t.Errorf("held: %+v", msgs)
	}
	res = change(spool.OpRelease, Selection{Filter: Filter{Domain: "c.example"}})
	if res.Messages != 1 || res.Recipients != 1 {
		t.Errorf("release of c.example: %+v", res)
	}
	waitUntil(t, "y@c.example tried again", func() bool {
		it, _ := f.spool.Lookup(mallory)
		return it.Recipients[1].State.Attempts == 2
	})

	// A dry run of --all says what a delete would do, and does nothing.
	res = change(spool.OpDelete, Selection{All: true, DryRun: true})
	if res.Messages != 3 || res.Recipients != 5 || !slices.Equal(res.IDs, []string{alice, mallory, bounce}) {
		t.Errorf("dry run: %+v", res)
	}
	if n := len(f.spool.List()); n != 3 {
		t.Fatalf("a dry run deleted: %d messages left", n)
	}

	// Delete by domain: bob and x (held) go; carl and y stay.
	res = change(spool.OpDelete, Selection{Filter: Filter{Domain: "a.example"}})
	if res.Messages != 2 || res.Recipients != 2 || res.Active != 0 {
		t.Errorf("delete a.example: %+v", res)
	}
	msgs, _ = f.client.List(ctx)
	if got := picked(msgs); got != "1:bob@a.example,carl@b.example 2:x@a.example,y@c.example 3:alice@example.com" {
		t.Errorf("after deleting a.example: %s", got)
	}
	for _, m := range msgs[:2] {
		if m.Recipients[0].Status != "removed" || m.Recipients[1].Status != "deferred" {
			t.Errorf("%s: %+v, want the first recipient removed, the second deferred", m.ID, m.Recipients)
		}
	}

	// By id, with what is missing and what the change does not apply to.
	res = change(spool.OpRelease, Selection{IDs: []string{alice, "nosuchid", alice}})
	if res.Messages != 0 || !slices.Equal(res.Missing, []string{"nosuchid"}) || !slices.Equal(res.Unchanged, []string{alice}) {
		t.Errorf("release by id: %+v", res)
	}
	res = change(spool.OpDelete, Selection{IDs: []string{bounce, alice}, Filter: Filter{From: "<>"}})
	if res.Messages != 1 || !slices.Equal(res.IDs, []string{bounce}) || !slices.Equal(res.Unchanged, []string{alice}) {
		t.Errorf("delete by id and filter: %+v", res)
	}
	res = change(spool.OpRetry, Selection{All: true})
	if res.Messages != 2 || res.Recipients != 2 {
		t.Errorf("retry all: %+v", res)
	}

	for _, sel := range []Selection{{}, {All: true, IDs: []string{alice}}, {All: true, Filter: Filter{State: "held"}},
		{Filter: Filter{State: "gone"}}} {
		var se *ServerError
		if _, err := f.client.Change(ctx, spool.OpDelete, sel); !errors.As(err, &se) {
			t.Errorf("%+v: %v, want a refusal", sel, err)
		}
	}
}

// A message deleted while it is being delivered: listed active before;
// the deletion counts the attempt in flight; the attempt's permanent
// failure then bounces nothing.
func TestChangeDuringDelivery(t *testing.T) {
	f := newFixture(t)
	f.fail.Store(false)
	ctx := context.Background()
	started, finish := make(chan struct{}), make(chan error)
	const id = "a0000000000000000009"
	gate := func(got string) error {
		if got != id {
			return nil
		}
		started <- struct{}{}
		return <-finish
	}
	f.gate.Store(&gate)
	f.put(t, id, "mallory@evil.example", "x@a.example")
	<-started
	msgs, err := f.client.ListFilter(ctx, Filter{State: "active"})
	if err != nil || picked(msgs) != "9:x@a.example" || !msgs[0].Recipients[0].Active || msgs[0].Recipients[0].Status != "pending" {
		t.Fatalf("active: %+v, %v", msgs, err)
	}
	res, err := f.client.Change(ctx, spool.OpDelete, Selection{Filter: Filter{From: "evil.example"}})
	if err != nil || res.Messages != 1 || res.Active != 1 {
		t.Fatalf("delete during delivery: %+v, %v", res, err)
	}
	finish <- queue.Permanent(errors.New("550 5.1.1 no such user"))
	// Once the deliverer has returned, stopping the runner waits for the
	// end of the pass, its DSN, if any, spooled. (internal/queue's
	// TestDeleteDuringAttemptNoBounce tests the same without a stop.)
	waitUntil(t, "the attempt over", func() bool { return len(f.runner.Active()) == 0 })
	f.stopRunner()
	// A bounce would be in the queue, or delivered already (a 2nd call).
	if msgs := f.spool.List(); len(msgs) != 0 || f.calls.Load() != 1 {
		t.Errorf("after the attempt: %+v in the queue, %d deliveries; want nothing, 1 (no bounce)", msgs, f.calls.Load())
	}
	if it, err := f.spool.Lookup(id); err == nil && it.Recipients[0].State.Status != spool.StatusRemoved {
		t.Errorf("the deleted recipient after its attempt: %+v", it.Recipients[0].State)
	}
}

// GET /queue/{id}/message streams the message as stored, small or in a
// blob; ?header=1 gives the header section.
func TestCat(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const small, large = "a0000000000000000011", "a0000000000000000012"
	f.put(t, small, "alice@example.com", "bob@a.example")
	big := "Subject: big\r\nX-Test: yes\r\n\r\n" + strings.Repeat("a line of the large message\r\n", 40000) // > spool.InlineMax
	env, _, _ := f.spool.Header(small)
	env.ID = large
	if err := f.spool.Put(ctx, env, []byte(big)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{small, large} {
		_, want, err := f.spool.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := f.client.Cat(ctx, id, false, &got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("cat %s: %d bytes, want the %d stored", id, got.Len(), len(want))
		}
		got.Reset()
		if err := f.client.Cat(ctx, id, true, &got); err != nil {
			t.Fatal(err)
		}
		if h := want[:bytes.Index(want, []byte("\r\n\r\n"))+4]; !bytes.Equal(got.Bytes(), h) {
			t.Errorf("cat --header %s: %q, want %q", id, got.Bytes(), h)
		}
	}
	if err := f.client.Cat(ctx, "nosuchid", false, &bytes.Buffer{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("cat of an unknown id: %v", err)
	}
}

// Ids are hostile input: one that cannot be a queue id is refused (400,
// naming it) before anything changes, and cat refuses it too.
func TestChangeRefusesBadIDs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	const id = "a0000000000000000021"
	f.put(t, id, "alice@example.com", "bob@a.example")
	for _, bad := range []string{"../state.db", "a b", "", strings.Repeat("a", 65), "id\r\nX-Injected: 1"} {
		res, err := f.client.Change(ctx, spool.OpDelete, Selection{IDs: []string{id, bad}})
		var se *ServerError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, "not a queue id") {
			t.Errorf("delete of %q: %+v, %v; want a refusal", bad, res, err)
		}
		if err := f.client.Cat(ctx, bad, false, &bytes.Buffer{}); err == nil || errors.Is(err, ErrNotFound) && bad != "" {
			t.Errorf("cat of %q: %v, want a refusal", bad, err)
		}
	}
	if it, err := f.spool.Lookup(id); err != nil || it.Recipients[0].State.Status == spool.StatusRemoved {
		t.Errorf("a refused selection changed %s: %+v, %v", id, it, err)
	}
}

// A server of an older release ignores the filter of GET /queue and
// answers the whole queue: ListFilter filters again, so that `postern
// queue list --domain` never shows more than it says. It knows no GET
// /queue/ID/message: Cat says so, not that the message is gone.
func TestListFilterOldServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/queue" { // as the older ServeMux: a plain 404
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, `{"messages": [
			{"id": "a1", "from": "alice@example.com", "recipients": [{"addr": "bob@a.example", "status": "deferred"},
				{"addr": "carl@b.example", "status": "deferred"}]},
			{"id": "a2", "from": "", "recipients": [{"addr": "alice@example.com", "status": "held"}]}]}`)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := &Client{SocketPath: sock}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Domain: "b.example"}, "1:carl@b.example"},
		{Filter{From: "<>"}, "2:alice@example.com"},
		{Filter{State: "held"}, "2:alice@example.com"},
		{Filter{State: "active"}, ""},
		{Filter{}, "1:bob@a.example,carl@b.example 2:alice@example.com"},
	} {
		msgs, err := c.ListFilter(context.Background(), tc.f)
		if got := picked(msgs); err != nil || got != tc.want {
			t.Errorf("%+v: %q, %v; want %q", tc.f, got, err, tc.want)
		}
	}
	if err := c.Cat(context.Background(), "a1", false, io.Discard); !errors.Is(err, ErrOldServer) {
		t.Errorf("cat on an older server: %v", err)
	}
}
