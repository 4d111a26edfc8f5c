package queue_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	. "postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
	"postern/internal/testkit"
)

// recorder is a local Deliverer that records what it delivered.
type recorder struct {
	mu  sync.Mutex
	got map[string]int // message id -> deliveries
}

func (r *recorder) Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string]int{}
	}
	r.got[env.ID]++
	return nil
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[id]
}

// runHold runs a Runner on s that delivers every recipient to rec, until
// the test ends.
func runHold(t *testing.T, s *spool.Spool, rec *recorder) *Runner {
	t.Helper()
	r := NewRunner(s, RunnerOptions{Local: rec, IsLocal: func(string) bool { return true },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	RunForTest(t, r)
	return r
}

func heldEnv(rcpts ...string) *smtp.Envelope {
	env := spooltest.Env(spooltest.ID(), rcpts...)
	env.Hold, env.HoldReason = true, "send limit: messages per hour"
	return env
}

func TestHeldNotDeliveredUntilReleased(t *testing.T) {
	s := OpenForTest(t, t.TempDir(), 0)
	defer s.Close()
	rec := &recorder{}
	r := runHold(t, s, rec)

	held := heldEnv("a@local.test", "b@local.test")
	PutForTest(t, s, held, spooltest.Data(held.ID, 100))
	plain := spooltest.Env(spooltest.ID(), "c@local.test")
	PutForTest(t, s, plain, spooltest.Data(plain.ID, 100))
	testkit.WaitFor(t, "the message not held", func() bool { return rec.count(plain.ID) == 1 })
	WaitIdleForTest(t, r) // the pass over the held one is done
	if n := rec.count(held.ID); n != 0 {
		t.Fatalf("held message delivered %d times", n)
	}
	it, err := s.Lookup(held.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !it.Held || it.HoldReason != held.HoldReason {
		t.Errorf("item: Held %v, HoldReason %q", it.Held, it.HoldReason)
	}
	for _, rc := range it.Recipients {
		if rc.State.Status != spool.StatusHeld || rc.State.Attempts != 0 || !rc.State.NextAttempt.IsZero() {
			t.Errorf("recipient %s: %+v, want held, untried", rc.Addr, rc.State)
		}
	}
	if s.Held() != 1 {
		t.Errorf("Held() = %d, want 1", s.Held())
	}
	if err := r.Retry(held.ID); err != nil {
		t.Fatal(err)
	}
	WaitIdleForTest(t, r)
	if rec.count(held.ID) != 0 {
		t.Fatal("retry delivered a held message")
	}

	if err := r.Release(plain.ID); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("release of a done message: %v, want ErrNotFound", err)
	}
	if err := r.Release("nosuchid000000000000"); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("release of an unknown id: %v, want ErrNotFound", err)
	}
	if err := r.Release(held.ID); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the released message", func() bool { return rec.count(held.ID) == 2 })
	if s.Held() != 0 {
		t.Errorf("Held() = %d after release, want 0", s.Held())
	}
	testkit.WaitFor(t, "the released message done", func() bool { return !Live(s, held.ID) })
}

func TestHoldSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := OpenForTest(t, dir, 0)
	a, b := heldEnv("a@x"), heldEnv("b@y")
	PutForTest(t, s, a, spooltest.Data(a.ID, 10))
	PutForTest(t, s, b, spooltest.Data(b.ID, 10))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = OpenForTest(t, dir, 0)
	for _, id := range []string{a.ID, b.ID} {
		it, err := s.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		if !it.Held || it.Recipients[0].State.Status != spool.StatusHeld {
			t.Fatalf("%s after restart: %+v, want held", id, it)
		}
	}
	if s.Held() != 2 {
		t.Errorf("Held() = %d after restart, want 2", s.Held())
	}
	// Release one, delete the other; both outlive the next restart.
	if err := s.Release(a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(b.ID); err != nil {
		t.Fatal(err)
	}
	if s.Held() != 0 {
		t.Errorf("Held() = %d, want 0", s.Held())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = OpenForTest(t, dir, 0)
	defer s.Close()
	it, err := s.Lookup(a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if it.Held || it.Recipients[0].State.Status != spool.StatusPending {
		t.Errorf("released message after restart: %+v, want pending", it)
	}
	if Live(s, b.ID) {
		t.Error("deleted held message is live after restart")
	}
	if s.Held() != 0 {
		t.Errorf("Held() = %d after restart, want 0", s.Held())
	}
	// The released message is delivered by the next Runner.
	rec := &recorder{}
	runHold(t, s, rec)
	testkit.WaitFor(t, "the released message", func() bool { return rec.count(a.ID) == 1 })
	if rec.count(b.ID) != 0 {
		t.Error("deleted held message delivered")
	}
}
