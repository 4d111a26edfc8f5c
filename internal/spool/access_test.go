package spool

import (
	"errors"
	"testing"
	"time"

	"postern/internal/spool/spooltest"
)

// states returns the states of message id's recipients by address.
func states(t *testing.T, s *Spool, id string) map[string]RecipientState {
	t.Helper()
	it, err := s.Lookup(id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]RecipientState{}
	for _, r := range it.Recipients {
		m[r.Addr] = r.State
	}
	return m
}

func TestDeleteAndMarkErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	id, keep := spooltest.ID(), spooltest.ID()
	mustPut(t, s, spooltest.Env(id, "a@x", "b@y"), []byte("x"))
	mustPut(t, s, spooltest.Env(keep, "a@x"), []byte("y"))
	if err := s.MarkRecipientSync(id, "a@x", RecipientState{Status: StatusDelivered}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecipientSync(id, "zz@x", RecipientState{}); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("unknown recipient: %v", err)
	}
	if err := s.MarkRecipientSync("nope", "a@x", RecipientState{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown message: %v", err)
	}
	if err := s.Delete(id); err != nil {
		t.Fatal(err)
	}
	if l := s.List(); len(l) != 1 || l[0].ID != keep {
		t.Fatalf("List after Delete = %+v", l)
	}
	s = reopen(t, s, dir)
	st := states(t, s, id)
	if st["a@x"].Status != StatusDelivered || st["b@y"].Status != StatusRemoved {
		t.Errorf("states after reopen: %+v", st)
	}
	if l := s.List(); len(l) != 1 || l[0].ID != keep {
		t.Errorf("List after reopen = %+v", l)
	}
}

// MarkRecipientAsync takes effect in memory at once and is committed
// without the caller waiting: Close commits what is still queued, so the
// states survive a reopen.
func TestMarkRecipientAsyncCommittedByClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = spooltest.ID()
		mustPut(t, s, spooltest.Env(ids[i], "a@x", "b@y"), []byte("x"))
	}
	next := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, id := range ids {
		if err := s.MarkRecipientAsync(id, "a@x", RecipientState{Status: StatusDelivered}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkRecipientAsync(id, "b@y", RecipientState{Status: StatusDeferred, Attempts: 1, NextAttempt: next}); err != nil {
			t.Fatal(err)
		}
		if st := states(t, s, id); st["a@x"].Status != StatusDelivered || st["b@y"].Status != StatusDeferred {
			t.Fatalf("in memory at once: %+v", st)
		}
	}
	if err := s.MarkRecipientAsync("nope", "a@x", RecipientState{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown message: %v", err)
	}
	if err := s.MarkRecipientAsync(ids[0], "zz@x", RecipientState{}); !errors.Is(err, ErrNoRecipient) {
		t.Errorf("unknown recipient: %v", err)
	}
	s = reopen(t, s, dir)
	for _, id := range ids {
		st := states(t, s, id)
		if st["a@x"].Status != StatusDelivered || st["b@y"].Status != StatusDeferred || st["b@y"].Attempts != 1 ||
			!st["b@y"].NextAttempt.Equal(next) {
			t.Fatalf("%s after reopen: %+v", id, st)
		}
	}
}

func TestReleaseNotHeld(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	env := spooltest.Env(spooltest.ID(), "a@x") // no runner: stays pending
	mustPut(t, s, env, spooltest.Data(env.ID, 10))
	if err := s.Release(env.ID); !errors.Is(err, ErrNotHeld) {
		t.Errorf("release of a pending message: %v, want ErrNotHeld", err)
	}
}
