package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/delivery"
	. "postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

func isLocal(addr string) bool { return strings.HasSuffix(addr, "@local.test") }

// startRunner runs a Runner on s until the test ends or stop is called.
func startRunner(t *testing.T, s *spool.Spool, opts RunnerOptions) (stop func()) {
	t.Helper()
	if opts.IsLocal == nil {
		opts.IsLocal = isLocal
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return RunForTest(t, NewRunner(s, opts))
}

func maildirDeliverer(m *delivery.Maildir) Deliverer {
	return DelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
		return m.DeliverMessage(ctx, rcpt, env.From, msg)
	})
}

func states(t *testing.T, s *spool.Spool, id string) map[string]spool.RecipientState {
	t.Helper()
	it, err := s.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]spool.RecipientState{}
	for _, r := range it.Recipients {
		m[r.Addr] = r.State
	}
	return m
}

func maildirFiles(t *testing.T, root, mailbox string) [][]byte {
	t.Helper()
	user, domain, _ := strings.Cut(mailbox, "@")
	paths, _ := filepath.Glob(filepath.Join(root, domain, user, "new", "*"))
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// The message as spooled, after the Return-Path the Maildir adds.
		if bytes.HasPrefix(b, []byte("Return-Path: ")) {
			b = b[bytes.IndexByte(b, '\n')+1:]
		}
		out = append(out, b)
	}
	return out
}

func TestRunnerMixedLocalRemote(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	s := OpenForTest(t, dir, 0)
	md := &delivery.Maildir{Root: root}
	id := spooltest.ID()
	data := spooltest.Data(id, 3000)
	rcpts := []string{"Ann@local.test", "bob@local.test", "carl@remote.example"}
	PutForTest(t, s, spooltest.Env(id, rcpts...), data) // before the runner: found by recovery scan
	stop := startRunner(t, s, RunnerOptions{Local: maildirDeliverer(md)})
	testkit.WaitFor(t, "local deliveries", func() bool {
		st := states(t, s, id)
		return st["Ann@local.test"].Status == spool.StatusDelivered && st["bob@local.test"].Status == spool.StatusDelivered
	})
	for _, mb := range []string{"ann@local.test", "bob@local.test"} {
		got := maildirFiles(t, root, mb)
		if len(got) != 1 || !bytes.Equal(got[0], data) {
			t.Fatalf("%s: %d files, want 1 with the exact bytes", mb, len(got))
		}
	}
	stop()
	if st := states(t, s, id)["carl@remote.example"]; st.Status != spool.StatusPending {
		t.Errorf("remote recipient: %v, want pending", st.Status)
	}
	if n := len(s.List()); n != 1 {
		t.Errorf("List: %d messages, want 1 (remote pending)", n)
	}
	s.Close()

	// After a restart: no local redelivery; the remote recipient is still
	// pending and goes to the Remote deliverer once there is one.
	s = OpenForTest(t, dir, 0)
	defer s.Close()
	st := states(t, s, id)
	if st["Ann@local.test"].Status != spool.StatusDelivered || st["Ann@local.test"].Attempts != 1 ||
		st["carl@remote.example"].Status != spool.StatusPending {
		t.Fatalf("states after reopen: %+v", st)
	}
	var localCalls atomic.Int32
	remote := make(chan string, 1)
	startRunner(t, s, RunnerOptions{
		Local: DelivererFunc(func(context.Context, *smtp.Envelope, string, *smtp.Message) error {
			localCalls.Add(1)
			return nil
		}),
		Remote: DelivererFunc(func(_ context.Context, _ *smtp.Envelope, rcpt string, _ *smtp.Message) error {
			remote <- rcpt
			return nil
		}),
	})
	if got := <-remote; got != "carl@remote.example" {
		t.Errorf("remote delivery to %q", got)
	}
	testkit.WaitFor(t, "message done", func() bool { return len(s.List()) == 0 })
	if n := localCalls.Load(); n != 0 {
		t.Errorf("%d local redeliveries after restart", n)
	}
	if n := len(maildirFiles(t, root, "ann@local.test")); n != 1 {
		t.Errorf("%d copies in ann's Maildir", n)
	}
}

func TestRunnerNewMessagesAndSegmentRemoval(t *testing.T) {
	dir, root := t.TempDir(), t.TempDir()
	s := OpenForTest(t, dir, 8<<10)
	defer s.Close()
	md := &delivery.Maildir{Root: root}
	startRunner(t, s, RunnerOptions{Local: maildirDeliverer(md), Workers: 3})
	var ids []string
	for range 30 {
		id := spooltest.ID()
		ids = append(ids, id)
		PutForTest(t, s, spooltest.Env(id, "u1@local.test", "u2@local.test"), spooltest.Data(id, 2000))
	}
	testkit.WaitFor(t, "all delivered", func() bool { return len(s.List()) == 0 })
	if n := len(maildirFiles(t, root, "u2@local.test")); n != 30 {
		t.Errorf("u2 has %d messages, want 30", n)
	}
	// A message is done (off List) before its segment is removed (its
	// states too: spool's TestDoneSegmentsRemoved): wait for that, with
	// only the active segment left.
	testkit.WaitFor(t, "segments of done messages removed", func() bool {
		segs, _ := filepath.Glob(filepath.Join(dir, "segments", "*.seg"))
		return len(segs) == 1
	})
	if _, _, err := s.Get(ids[0]); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("Get of a message in a removed segment: %v", err)
	}
}

func TestRunnerRetryAndFailure(t *testing.T) {
	s := OpenForTest(t, t.TempDir(), 0)
	defer s.Close()
	var calls sync.Map // rcpt -> *atomic.Int32
	local := DelivererFunc(func(_ context.Context, _ *smtp.Envelope, rcpt string, _ *smtp.Message) error {
		v, _ := calls.LoadOrStore(rcpt, new(atomic.Int32))
		n := v.(*atomic.Int32).Add(1)
		switch {
		case strings.HasPrefix(rcpt, "flaky") && n < 3:
			return errors.New("disk full")
		case strings.HasPrefix(rcpt, "gone"):
			return Permanent(errors.New("no such mailbox"))
		case strings.HasPrefix(rcpt, "never"):
			return errors.New("always down")
		}
		return nil
	})
	retry := func(env *smtp.Envelope, st spool.RecipientState, now time.Time) (time.Time, bool) {
		return now.Add(5 * time.Millisecond), st.Attempts < 4
	}
	id := spooltest.ID()
	PutForTest(t, s, spooltest.Env(id, "flaky@local.test", "gone@local.test", "never@local.test"), []byte("x\r\n"))
	startRunner(t, s, RunnerOptions{Local: local, Retry: retry})
	// The failures send a DSN to the (remote) sender, which stays queued.
	testkit.WaitFor(t, "all final", func() bool { return !Live(s, id) })
	st := states(t, s, id)
	if f := st["flaky@local.test"]; f.Status != spool.StatusDelivered || f.Attempts != 3 {
		t.Errorf("flaky: %+v, want delivered after 3 attempts", f)
	}
	if g := st["gone@local.test"]; g.Status != spool.StatusFailed || g.Attempts != 1 || g.LastError != "no such mailbox" {
		t.Errorf("gone: %+v, want failed after 1 attempt", g)
	}
	if n := st["never@local.test"]; n.Status != spool.StatusFailed || n.Attempts != 4 || n.LastError != "always down" {
		t.Errorf("never: %+v, want failed after 4 attempts", n)
	}
}

// BenchmarkRunnerLocal measures spool-to-Maildir throughput: b.N
// messages of 10 KiB, each for one local recipient (8 mailboxes), are
// spooled and then delivered by a Runner with 4 or 16 workers.
func BenchmarkRunnerLocal(b *testing.B) {
	for _, w := range []int{4, 16} {
		b.Run(fmt.Sprintf("workers=%d", w), func(b *testing.B) { benchRunnerLocal(b, w) })
	}
}

func benchRunnerLocal(b *testing.B, workers int) {
	s := OpenForTest(b, b.TempDir(), 0)
	defer s.Close()
	md := &delivery.Maildir{Root: b.TempDir()}
	var ids []string
	for i := range b.N {
		id := spooltest.ID()
		ids = append(ids, id)
		PutForTest(b, s, spooltest.Env(id, fmt.Sprintf("user%d@local.test", i%8)), spooltest.Data(id, 10<<10))
	}
	b.ReportAllocs()
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	r := NewRunner(s, RunnerOptions{Local: maildirDeliverer(md), IsLocal: isLocal, Workers: workers,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() { done <- r.Run(ctx) }()
	for len(s.List()) > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
