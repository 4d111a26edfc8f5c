package queue_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	. "postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

// gate is a local Deliverer whose attempts wait, one by one, until the
// test lets them end with the error it chooses; the recipients of
// other messages (the markers) are delivered at once.
type gate struct {
	block   map[string]bool // message ids whose attempts wait
	started chan string     // the recipient of each attempt that waits
	finish  chan error      // what each waiting attempt returns

	mu  sync.Mutex
	got []string // "id rcpt" of every attempt, in order
}

func newGate(ids ...string) *gate {
	g := &gate{block: map[string]bool{}, started: make(chan string, 16), finish: make(chan error)}
	for _, id := range ids {
		g.block[id] = true
	}
	return g
}

func (g *gate) Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
	g.mu.Lock()
	g.got = append(g.got, env.ID+" "+rcpt)
	g.mu.Unlock()
	if !g.block[env.ID] {
		return nil
	}
	g.started <- rcpt
	return <-g.finish
}

func (g *gate) attempts(id string) (n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range g.got {
		if len(a) > len(id) && a[:len(id)] == id {
			n++
		}
	}
	return n
}

// runGate runs a Runner with one worker over s, delivering to g. One
// worker takes messages one at a time: once it delivers a message put
// after another, it has finished that other's pass, DSN included.
func runGate(t *testing.T, s *spool.Spool, g *gate) *Runner {
	t.Helper()
	r := NewRunner(s, RunnerOptions{Local: g, IsLocal: func(string) bool { return true }, Workers: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	RunForTest(t, r)
	t.Cleanup(func() { close(g.finish) }) // before run's: the blocked attempts return
	return r
}

// passOver waits until the Runner's worker has ended every pass begun
// before: it puts a marker message and waits for its delivery.
func passOver(t *testing.T, s *spool.Spool, g *gate) {
	t.Helper()
	m := spooltest.Env(spooltest.ID(), "marker@local.test")
	PutForTest(t, s, m, spooltest.Data(m.ID, 10))
	testkit.WaitFor(t, "the marker delivered", func() bool { return g.attempts(m.ID) == 1 })
}

// bounces counts the DSNs to sender: those in the queue and those g
// delivered already.
func bounces(s *spool.Spool, g *gate, sender string) (n int) {
	for _, it := range s.List() {
		if it.From == "" {
			n++
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range g.got {
		if strings.HasSuffix(a, " "+sender) {
			n++
		}
	}
	return n
}

// A message deleted while one of its recipients is being delivered: the
// attempt is not interrupted, and its outcome, a permanent failure here,
// changes nothing: the recipient stays removed, and no bounce is sent
// for a message the operator deleted.
func TestDeleteDuringAttemptNoBounce(t *testing.T) {
	s := OpenForTest(t, t.TempDir(), 0)
	defer s.Close()
	env := spooltest.Env(spooltest.ID(), "a@local.test")
	g := newGate(env.ID)
	runGate(t, s, g)
	PutForTest(t, s, env, spooltest.Data(env.ID, 100))
	<-g.started
	if err := s.Delete(env.ID); err != nil {
		t.Fatal(err)
	}
	g.finish <- Permanent(errors.New("550 5.1.1 no such user"))
	passOver(t, s, g)
	if n := bounces(s, g, env.From); n != 0 {
		t.Errorf("%d bounces for a message deleted during its attempt, want none", n)
	}
	it, err := s.Lookup(env.ID)
	if err == nil && it.Recipients[0].State.Status != spool.StatusRemoved {
		t.Errorf("recipient after the attempt: %+v, want removed", it.Recipients[0].State)
	}
}

// A recipient is active from the call to its deliverer until the call
// returns, local or remote; nothing is active otherwise.
func TestActive(t *testing.T) {
	s := OpenForTest(t, t.TempDir(), 0)
	defer s.Close()
	env := spooltest.Env(spooltest.ID(), "a@local.test", "b@remote.test", "c@remote.test")
	g := newGate(env.ID)
	batchStarted, batchFinish := make(chan []string, 1), make(chan struct{})
	r := NewRunner(s, RunnerOptions{Local: g, IsLocal: isLocal,
		RemoteBatch: BatchDelivererFunc(func(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
			batchStarted <- rcpts
			<-batchFinish
			var out []Outcome
			for _, rc := range rcpts {
				out = append(out, Outcome{Rcpt: rc})
			}
			return out
		}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if n := len(r.Active()); n != 0 {
		t.Fatalf("Active() before any delivery: %d messages", n)
	}
	defer RunForTest(t, r)()
	PutForTest(t, s, env, spooltest.Data(env.ID, 100))
	<-g.started
	<-batchStarted
	if got := r.Active(); len(got) != 1 || !slices.Equal(got[env.ID], []string{"a@local.test", "b@remote.test", "c@remote.test"}) {
		t.Errorf("Active() during both attempts = %v", got)
	}
	g.finish <- nil
	testkit.WaitFor(t, "the local attempt over", func() bool { return len(r.Active()[env.ID]) == 2 })
	close(batchFinish)
	testkit.WaitFor(t, "no attempt left", func() bool { return len(r.Active()) == 0 })
	testkit.WaitFor(t, "the message delivered", func() bool { return !Live(s, env.ID) })
}

// An operator holds a recipient while it is being delivered: the attempt
// fails temporarily; the recipient stays held, its attempt counted, and
// nothing more is tried, retry or not, until a release, which the
// Runner acts on at once.
func TestOperatorHoldDuringAttempt(t *testing.T) {
	s := OpenForTest(t, t.TempDir(), 0)
	defer s.Close()
	env := spooltest.Env(spooltest.ID(), "a@local.test")
	g := newGate(env.ID)
	r := runGate(t, s, g)
	PutForTest(t, s, env, spooltest.Data(env.ID, 100))
	<-g.started
	if c, err := r.Change([]string{env.ID}, spool.OpHold, nil); err != nil || len(c) != 1 {
		t.Fatalf("hold: %+v, %v", c, err)
	}
	g.finish <- errors.New("451 4.3.0 busy")
	passOver(t, s, g)
	it, err := s.Lookup(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := it.Recipients[0].State; st.Status != spool.StatusHeld || st.Attempts != 1 || st.LastError != "451 4.3.0 busy" ||
		!it.Held || it.HoldReason != spool.OperatorHoldReason {
		t.Fatalf("after the attempt: %+v, want held with 1 attempt", it)
	}
	if c, err := r.Change([]string{env.ID}, spool.OpRetry, nil); err != nil || len(c) != 0 {
		t.Errorf("retry of a held message: %+v, %v; want nothing changed", c, err)
	}
	passOver(t, s, g)
	if n := g.attempts(env.ID); n != 1 {
		t.Fatalf("%d attempts of a held message, want 1", n)
	}
	if c, err := r.Change([]string{env.ID}, spool.OpRelease, nil); err != nil || len(c) != 1 {
		t.Fatalf("release: %+v, %v", c, err)
	}
	select { // at once, not at the deferred recipient's next attempt
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the released message was not tried")
	}
	g.finish <- nil
	testkit.WaitFor(t, "the released message delivered", func() bool { return !Live(s, env.ID) })
	if it, err := s.Lookup(env.ID); err == nil && it.Recipients[0].State.Attempts != 2 {
		t.Errorf("attempts after release and delivery: %d, want 2", it.Recipients[0].State.Attempts)
	}
}

// A recipient made due by an operator's retry is tried at once, not at
// its next attempt an hour away.
func TestChangeRetryWakes(t *testing.T) {
	s := OpenForTest(t, t.TempDir(), 0)
	defer s.Close()
	env := spooltest.Env(spooltest.ID(), "a@local.test")
	PutForTest(t, s, env, spooltest.Data(env.ID, 100))
	if err := s.MarkRecipientSync(env.ID, "a@local.test", spool.RecipientState{Status: spool.StatusDeferred, Attempts: 1,
		NextAttempt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	g := newGate()
	r := runGate(t, s, g)
	passOver(t, s, g)
	if n := g.attempts(env.ID); n != 0 {
		t.Fatalf("%d attempts before the retry", n)
	}
	if c, err := r.Change([]string{env.ID}, spool.OpRetry, nil); err != nil || len(c) != 1 {
		t.Fatalf("retry: %+v, %v", c, err)
	}
	testkit.WaitFor(t, "the retried message delivered", func() bool { return !Live(s, env.ID) })
}
