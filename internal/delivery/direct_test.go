package delivery

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
)

// directFixture is a Direct over a real spool and Maildir, with three
// local users (a, b, c), an alias to two of them (team), a forwarding
// alias (fwd) and one remote domain.
type directFixture struct {
	d     *Direct
	sp    *spool.Spool
	root  string
	fails spoolFails
	reps  []queue.Report
}

// spoolFails wraps the spool: when err is set, PutMessage fails with it.
type spoolFails struct {
	*spool.Spool
	err *error
}

func (s spoolFails) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	if *s.err != nil {
		return *s.err
	}
	return s.Spool.PutMessage(ctx, env, msg)
}

func newDirect(t *testing.T) *directFixture {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f := &directFixture{sp: sp, root: t.TempDir()}
	f.fails = spoolFails{Spool: sp, err: new(error)}
	f.d = &Direct{
		Local: &Local{Aliases: testAliases{boxes: map[string][]string{
			"a@x.test": {"a@x.test"}, "b@x.test": {"b@x.test"}, "c@x.test": {"c@x.test"},
			"team@x.test": {"a@x.test", "b@x.test"}, "fwd@x.test": nil,
		}}, Maildir: &Maildir{Root: f.root}},
		Spool:   f.fails,
		IsLocal: func(addr string) bool { return strings.HasSuffix(addr, "@x.test") },
		Observe: func(r queue.Report) { f.reps = append(f.reps, r) },
		Logger:  slog.New(slog.DiscardHandler),
	}
	return f
}

func (f *directFixture) put(t *testing.T, env *smtp.Envelope) error {
	t.Helper()
	if env.ID == "" {
		env.ID = smtp.NewID(time.Now())
	}
	env.Body, env.ReceivedAt = "7BIT", time.Now()
	return f.d.PutMessage(context.Background(), env, localMsg)
}

// boxCount is the number of messages in user's new/.
func (f *directFixture) boxCount(t *testing.T, user string) int {
	return len(newFiles(t, f.root, "x.test", user))
}

// spooled returns the recipients of the spooled message id, nil when
// the spool does not have it.
func (f *directFixture) spooled(t *testing.T, id string) []string {
	t.Helper()
	env, _, err := f.sp.Get(id)
	if errors.Is(err, spool.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return env.Recipients
}

// TestDirectDelivers: a message for local users with one mailbox each
// is in their Maildirs when PutMessage returns, and not in the spool.
func TestDirectDelivers(t *testing.T) {
	f := newDirect(t)
	env := &smtp.Envelope{From: "s@src.test", Recipients: []string{"a@x.test", "b@x.test"}}
	if err := f.put(t, env); err != nil {
		t.Fatal(err)
	}
	if f.boxCount(t, "a") != 1 || f.boxCount(t, "b") != 1 {
		t.Errorf("mailboxes a, b hold %d, %d messages, want 1, 1", f.boxCount(t, "a"), f.boxCount(t, "b"))
	}
	if r := f.spooled(t, env.ID); r != nil {
		t.Errorf("message also spooled for %v", r)
	}
	if len(f.reps) != 2 || f.reps[0].Rcpt != "a@x.test" || f.reps[0].Outcome != queue.OutcomeDelivered || !f.reps[0].Local {
		t.Errorf("reports %+v", f.reps)
	}
	got, err := os.ReadFile(newFiles(t, f.root, "x.test", "a")[0])
	if err != nil || string(got) != "Return-Path: <s@src.test>\r\nSubject: x\r\n\r\nbody\r\n" {
		t.Errorf("stored %q, %v", got, err)
	}
}

// TestDirectSpoolsWhatNeedsMore: a message that needs more than writing
// mailboxes goes to the spool whole, and no mailbox has it.
func TestDirectSpoolsWhatNeedsMore(t *testing.T) {
	looping := strings.Repeat("Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\r\n", smtp.MaxReceived+1)
	for _, c := range []struct {
		name  string
		env   smtp.Envelope
		setup func(f *directFixture)
		msg   *smtp.Message
	}{
		{name: "remote recipient", env: smtp.Envelope{Recipients: []string{"a@x.test", "r@remote.test"}}},
		{name: "alias to two mailboxes", env: smtp.Envelope{Recipients: []string{"a@x.test", "team@x.test"}}},
		{name: "forwarding alias", env: smtp.Envelope{Recipients: []string{"fwd@x.test"}}},
		{name: "unknown recipient", env: smtp.Envelope{Recipients: []string{"nobody@x.test"}}},
		{name: "held", env: smtp.Envelope{Recipients: []string{"a@x.test"}, Hold: true, HoldReason: "send limit"}},
		// RFC 3461: the success notice is the runner's to send.
		{name: "NOTIFY=SUCCESS", env: smtp.Envelope{Recipients: []string{"a@x.test"},
			DSN: map[string]smtp.RcptDSN{"a@x.test": {Notify: smtp.NotifySuccess | smtp.NotifyFailure}}}},
		{name: "LMTP", env: smtp.Envelope{Recipients: []string{"a@x.test"}},
			setup: func(f *directFixture) { f.d.Local.LMTP = &LMTP{Network: "tcp", Address: "127.0.0.1:1"} }},
		{name: "looping", env: smtp.Envelope{Recipients: []string{"a@x.test"}},
			msg: &smtp.Message{Header: []byte(looping + "Subject: x\r\n\r\n"), Body: smtp.BodyBytes([]byte("b\r\n"))}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newDirect(t)
			if c.setup != nil {
				c.setup(f)
			}
			env := c.env
			env.ID, env.Body, env.ReceivedAt = smtp.NewID(time.Now()), "7BIT", time.Now()
			msg := c.msg
			if msg == nil {
				msg = localMsg
			}
			if err := f.d.PutMessage(context.Background(), &env, msg); err != nil {
				t.Fatal(err)
			}
			if r := f.spooled(t, env.ID); !slices.Equal(r, env.Recipients) {
				t.Errorf("spooled for %v, want %v", r, env.Recipients)
			}
			if n := f.boxCount(t, "a"); n != 0 {
				t.Errorf("mailbox a holds %d messages, want 0", n)
			}
		})
	}
}

// TestDirectFallsBack: when a mailbox write fails, the recipients not
// yet written go to the spool under the message's id, and those written
// are not named again: each recipient's copy is durable exactly once.
// When the spool fails too, PutMessage fails (no 250).
func TestDirectFallsBack(t *testing.T) {
	f := newDirect(t)
	// b's mailbox path is blocked by a file: its write fails.
	if err := os.MkdirAll(filepath.Join(f.root, "x.test"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "x.test", "b"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := &smtp.Envelope{From: "s@src.test", Recipients: []string{"a@x.test", "b@x.test", "c@x.test"}}
	if err := f.put(t, env); err != nil {
		t.Fatal(err)
	}
	if f.boxCount(t, "a") != 1 || f.boxCount(t, "c") != 0 {
		t.Errorf("mailboxes a, c hold %d, %d messages, want 1, 0", f.boxCount(t, "a"), f.boxCount(t, "c"))
	}
	if r := f.spooled(t, env.ID); !slices.Equal(r, []string{"b@x.test", "c@x.test"}) {
		t.Errorf("spooled for %v, want [b@x.test c@x.test]", r)
	}
	if len(env.Recipients) != 3 {
		t.Errorf("the caller's envelope was changed: %v", env.Recipients)
	}

	*f.fails.err = errors.New("disk gone")
	env = &smtp.Envelope{From: "s@src.test", Recipients: []string{"b@x.test"}}
	if err := f.put(t, env); err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("spool failing too: %v, want its error", err)
	}
}

// TestDirectLargeBody: a body in a file (as the session streams large
// messages) is copied intact.
func TestDirectLargeBody(t *testing.T) {
	f := newDirect(t)
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n", 4096)
	file, err := os.Create(filepath.Join(t.TempDir(), "body"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteString("junk" + body); err != nil {
		t.Fatal(err)
	}
	env := &smtp.Envelope{ID: smtp.NewID(time.Now()), From: "", Recipients: []string{"c@x.test"}, Body: "7BIT", ReceivedAt: time.Now()}
	msg := &smtp.Message{Header: []byte("Subject: big\r\n\r\n"), Body: smtp.BodyFile(file, 4, int64(len(body)))}
	if err := f.d.PutMessage(context.Background(), env, msg); err != nil {
		t.Fatal(err)
	}
	files := newFiles(t, f.root, "x.test", "c")
	if len(files) != 1 {
		t.Fatalf("%d messages", len(files))
	}
	got, _ := os.ReadFile(files[0])
	if string(got) != "Return-Path: <>\r\nSubject: big\r\n\r\n"+body {
		t.Errorf("stored %d bytes, want the message intact", len(got))
	}
}

// TestDirectConcurrent: sessions call PutMessage at once (run with
// -race): every copy lands once, the fallback included.
func TestDirectConcurrent(t *testing.T) {
	f := newDirect(t)
	var mu sync.Mutex
	delivered := 0
	f.d.Observe = func(queue.Report) { mu.Lock(); delivered++; mu.Unlock() }
	if err := os.MkdirAll(filepath.Join(f.root, "x.test"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "x.test", "c"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make(chan string, 80)
	for g := range 8 {
		wg.Go(func() {
			for range 10 {
				rcpts := []string{"a@x.test", "b@x.test"}
				if g%2 == 1 {
					rcpts = append(rcpts, "c@x.test") // blocked: spooled
				}
				env := &smtp.Envelope{ID: smtp.NewID(time.Now()), From: "s@src.test", Recipients: rcpts, Body: "7BIT", ReceivedAt: time.Now()}
				if err := f.d.PutMessage(context.Background(), env, localMsg); err != nil {
					t.Error(err)
				}
				if g%2 == 1 {
					ids <- env.ID
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	if f.boxCount(t, "a") != 80 || f.boxCount(t, "b") != 80 || delivered != 160 {
		t.Errorf("a, b hold %d, %d messages, %d reported; want 80, 80, 160", f.boxCount(t, "a"), f.boxCount(t, "b"), delivered)
	}
	for id := range ids {
		if r := f.spooled(t, id); !slices.Equal(r, []string{"c@x.test"}) {
			t.Errorf("%s spooled for %v, want [c@x.test]", id, r)
		}
	}
}

// TestDirectKilledMidway: a session killed (its context cancelled) after
// the first mailbox is written still finishes the message: the client
// is never told to send again a message one mailbox already holds.
func TestDirectKilledMidway(t *testing.T) {
	for after := 1; after < 6; after++ {
		f := newDirect(t)
		ctx := &killedCtx{Context: context.Background(), after: after}
		env := &smtp.Envelope{ID: smtp.NewID(time.Now()), From: "s@src.test",
			Recipients: []string{"a@x.test", "b@x.test"}, Body: "7BIT", ReceivedAt: time.Now()}
		err := f.d.PutMessage(ctx, env, localMsg)
		if err != nil && f.boxCount(t, "a") > 0 {
			t.Fatalf("PutMessage failed (%v): the client sends again, yet a's mailbox holds %d copy", err, f.boxCount(t, "a"))
		}
		if err == nil && (f.boxCount(t, "a") != 1 || f.boxCount(t, "b")+len(f.spooled(t, env.ID)) != 1) {
			t.Fatalf("PutMessage succeeded; a's mailbox holds %d, b's %d, the spool %q",
				f.boxCount(t, "a"), f.boxCount(t, "b"), f.spooled(t, env.ID))
		}
	}
}

// TestDirectSpoolFailsAfterPartial: when a mailbox write fails and the
// spool cannot take the rest either (a full disk), the copies already
// written are taken back: the client's retry is then the only copy.
func TestDirectSpoolFailsAfterPartial(t *testing.T) {
	f := newDirect(t)
	if err := os.MkdirAll(filepath.Join(f.root, "x.test"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "x.test", "b"), nil, 0o600); err != nil { // b's write fails
		t.Fatal(err)
	}
	*f.fails.err = errors.New("no space left on device") // and the spool's
	env := &smtp.Envelope{From: "s@src.test", Recipients: []string{"a@x.test", "b@x.test"}}
	err := f.put(t, env)
	if err == nil {
		t.Fatal("PutMessage succeeded with the spool failing")
	}
	if n := f.boxCount(t, "a"); n != 0 {
		t.Errorf("PutMessage failed (%v) and a's mailbox holds %d copy: the client's retry makes a second", err, n)
	}
	if len(f.reps) != 0 {
		t.Errorf("reported %d deliveries of a message the client was told to send again", len(f.reps))
	}
}

// TestDirectSameMailboxOnce: two recipients that resolve to one mailbox
// (an address in two spellings) get one copy, as Postfix writes one.
func TestDirectSameMailboxOnce(t *testing.T) {
	f := newDirect(t)
	f.d.Local.Aliases = testAliases{boxes: map[string][]string{"a@x.test": {"a@x.test"}, "A@x.test": {"a@x.test"}}}
	f.d.IsLocal = func(string) bool { return true }
	env := &smtp.Envelope{From: "s@src.test", Recipients: []string{"a@x.test", "A@x.test"}}
	if err := f.put(t, env); err != nil {
		t.Fatal(err)
	}
	if n := f.boxCount(t, "a"); n != 1 {
		t.Errorf("a's mailbox holds %d copies, want 1", n)
	}
}

// killedCtx is a context cancelled after its Err has been asked after
// times: a session killed while its message is being written.
type killedCtx struct {
	context.Context
	after, asked int
}

func (c *killedCtx) Err() error {
	c.asked++
	if c.asked > c.after {
		return context.Canceled
	}
	return nil
}

func (c *killedCtx) Done() <-chan struct{} {
	if c.asked > c.after {
		return closedChan
	}
	return nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()
