package spool

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/spool/spooltest"
)

// atDomain picks the recipients at domain.
func atDomain(domain string) Select {
	return func(_, _, rcpt string, _ RecipientState) bool { return strings.HasSuffix(rcpt, "@"+domain) }
}

// Deleting the recipients at one domain leaves the others of the same
// message to be delivered; deleting the last ones makes the message done.
// Both outlive a restart.
func TestChangeDeleteByRecipient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	a, b := spooltest.ID(), spooltest.ID()
	mustPut(t, s, spooltest.Env(a, "x1@down.example", "y@up.example", "x2@down.example"), []byte("a"))
	mustPut(t, s, spooltest.Env(b, "x3@down.example"), []byte("b"))
	if err := s.MarkRecipientSync(a, "x2@down.example", RecipientState{Status: StatusDeferred, Attempts: 2,
		NextAttempt: time.Now().Add(time.Hour), LastError: "connection refused"}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	got, err := s.Change([]string{a, b, "nosuchid", a}, OpDelete, func(id, from, rcpt string, st RecipientState) bool {
		seen = append(seen, id+" "+from+" "+rcpt+" "+st.Status.String())
		return strings.HasSuffix(rcpt, "@down.example")
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Changed{{ID: a, Recipients: []string{"x1@down.example", "x2@down.example"}}, {ID: b, Recipients: []string{"x3@down.example"}, Done: true}}
	if !slices.EqualFunc(got, want, func(x, y Changed) bool {
		return x.ID == y.ID && slices.Equal(x.Recipients, y.Recipients) && x.Done == y.Done
	}) {
		t.Errorf("Change = %+v, want %+v", got, want)
	}
	wantSeen := []string{a + " alice@example.com x1@down.example pending", a + " alice@example.com y@up.example pending",
		a + " alice@example.com x2@down.example deferred", b + " alice@example.com x3@down.example pending"}
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("Select was asked:\n%q\nwant:\n%q", seen, wantSeen)
	}
	check := func(when string) {
		t.Helper()
		st := states(t, s, a)
		if st["x1@down.example"].Status != StatusRemoved || st["x2@down.example"].Status != StatusRemoved ||
			st["x2@down.example"].Attempts != 2 || st["y@up.example"].Status != StatusPending {
			t.Errorf("%s: states of %s: %+v", when, a, st)
		}
		if l := s.List(); len(l) != 1 || l[0].ID != a {
			t.Errorf("%s: live messages %+v, want only %s", when, l, a)
		}
	}
	check("after Change")
	s = reopen(t, s, dir)
	check("after a restart")
}

// An operator's hold: pending and deferred recipients become held, with
// their attempts and last error kept; the message says why; nothing
// else changes. The hold outlives a restart, and a release makes them
// pending again, attempts still counted.
func TestChangeHoldRelease(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTest(t, dir, 0)
	id, other := spooltest.ID(), spooltest.ID()
	mustPut(t, s, spooltest.Env(id, "a@x", "b@x", "c@x"), []byte("a"))
	mustPut(t, s, spooltest.Env(other, "d@x"), []byte("b"))
	next := time.Now().Add(time.Hour)
	if err := s.MarkRecipientSync(id, "b@x", RecipientState{Status: StatusDeferred, Attempts: 3, NextAttempt: next, LastError: "451 busy"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecipientSync(id, "c@x", RecipientState{Status: StatusDelivered, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Change([]string{id}, OpHold, nil)
	if err != nil || len(got) != 1 || !slices.Equal(got[0].Recipients, []string{"a@x", "b@x"}) {
		t.Fatalf("hold: %+v, %v", got, err)
	}
	check := func(when string) {
		t.Helper()
		it, err := s.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		if !it.Held || it.HoldReason != OperatorHoldReason {
			t.Errorf("%s: Held %v, HoldReason %q", when, it.Held, it.HoldReason)
		}
		st := states(t, s, id)
		if b := st["b@x"]; b.Status != StatusHeld || !b.OperatorHold || b.Attempts != 3 || b.LastError != "451 busy" || !b.NextAttempt.IsZero() {
			t.Errorf("%s: b@x %+v, want held with its 3 attempts", when, b)
		}
		if st["a@x"].Status != StatusHeld || st["c@x"].Status != StatusDelivered {
			t.Errorf("%s: %+v", when, st)
		}
		if s.Held() != 1 {
			t.Errorf("%s: Held() = %d, want 1", when, s.Held())
		}
		if o := states(t, s, other); o["d@x"].Status != StatusPending {
			t.Errorf("%s: the other message: %+v", when, o)
		}
	}
	check("after hold")
	// Holding again changes nothing.
	if got, err := s.Change([]string{id}, OpHold, nil); err != nil || len(got) != 0 {
		t.Errorf("second hold: %+v, %v", got, err)
	}
	s = reopen(t, s, dir)
	check("after a restart")

	got, err = s.Change([]string{id, other}, OpRelease, nil)
	if err != nil || len(got) != 1 || got[0].ID != id || len(got[0].Recipients) != 2 {
		t.Fatalf("release: %+v, %v", got, err)
	}
	it, _ := s.Lookup(id)
	st := states(t, s, id)
	if it.Held || it.HoldReason != "" || st["b@x"].Status != StatusPending || st["b@x"].Attempts != 3 || st["b@x"].OperatorHold {
		t.Errorf("after release: %+v, %+v", it, st)
	}
	if s.Held() != 0 {
		t.Errorf("Held() = %d after release, want 0", s.Held())
	}
}

// An attempt in flight when an operator holds its recipient: a temporary
// failure records the attempt but keeps the hold; a delivery ends it.
func TestHoldDuringAttempt(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	id := spooltest.ID()
	mustPut(t, s, spooltest.Env(id, "a@x", "b@x"), []byte("a"))
	if _, err := s.Change([]string{id}, OpHold, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRecipientAsync(id, "a@x", RecipientState{Status: StatusDeferred, Attempts: 1,
		NextAttempt: time.Now().Add(time.Minute), LastError: "451 busy", Warned: true}); err != nil {
		t.Fatal(err)
	}
	st := states(t, s, id)
	if a := st["a@x"]; a.Status != StatusHeld || !a.OperatorHold || a.Attempts != 1 || a.LastError != "451 busy" || !a.Warned || !a.NextAttempt.IsZero() {
		t.Errorf("a@x after a temporary failure: %+v, want still held, the attempt counted", a)
	}
	if err := s.MarkRecipientAsync(id, "b@x", RecipientState{Status: StatusDelivered, Attempts: 1}); err != nil {
		t.Fatal(err)
	}
	if b := states(t, s, id)["b@x"]; b.Status != StatusDelivered {
		t.Errorf("b@x after its delivery: %+v", b)
	}
	if s.Held() != 1 {
		t.Errorf("Held() = %d, want 1 (a@x)", s.Held())
	}
	if err := s.MarkRecipientAsync(id, "a@x", RecipientState{Status: StatusFailed, Attempts: 2}); err != nil {
		t.Fatal(err)
	}
	if s.Held() != 0 || len(s.List()) != 0 {
		t.Errorf("Held() = %d, %d live after the last recipient failed; want 0, 0", s.Held(), len(s.List()))
	}
}

// Retry makes deferred recipients due now and touches nothing else.
func TestChangeRetry(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	id := spooltest.ID()
	mustPut(t, s, spooltest.Env(id, "a@x", "b@y"), []byte("a"))
	for _, r := range []string{"a@x", "b@y"} {
		if err := s.MarkRecipientSync(id, r, RecipientState{Status: StatusDeferred, Attempts: 1, NextAttempt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Change([]string{id}, OpRetry, atDomain("y"))
	if err != nil || len(got) != 1 || !slices.Equal(got[0].Recipients, []string{"b@y"}) {
		t.Fatalf("retry: %+v, %v", got, err)
	}
	st := states(t, s, id)
	if !st["b@y"].NextAttempt.IsZero() || st["a@x"].NextAttempt.IsZero() || st["b@y"].Status != StatusDeferred {
		t.Errorf("after retry of y: %+v", st)
	}
}

// Change on a closed spool fails; an unknown op too.
func TestChangeErrors(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), 0)
	if _, err := s.Change(nil, Op(99), nil); err == nil {
		t.Error("unknown op accepted")
	}
	s.Close()
	if _, err := s.Change([]string{"x"}, OpDelete, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Change on a closed spool: %v", err)
	}
}

// Each message changes whole while delivery outcomes come in for it:
// after a deletion racing with outcomes, every recipient is either
// removed or has the outcome recorded before the deletion, and a
// message whose recipients are all removed or delivered is done. Run
// with -race.
func TestChangeRacesOutcomes(t *testing.T) {
	t.Parallel()
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	var ids []string
	for range 200 {
		id := spooltest.ID()
		ids = append(ids, id)
		mustPut(t, s, spooltest.Env(id, "a@x", "b@x", "c@x"), []byte("m"))
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, id := range ids {
			for _, r := range []string{"a@x", "b@x", "c@x"} {
				s.MarkRecipientAsync(id, r, RecipientState{Status: StatusDelivered, Attempts: 1})
			}
		}
	})
	var changed []Changed
	wg.Go(func() {
		var err error
		changed, err = s.Change(ids, OpDelete, nil)
		if err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	removed := 0
	for _, c := range changed {
		removed += len(c.Recipients)
	}
	count := 0
	for _, id := range ids {
		it, err := s.Lookup(id)
		if err != nil {
			continue // done, and its segment gone: every state was final
		}
		for _, r := range it.Recipients {
			switch r.State.Status {
			case StatusRemoved:
				count++
			case StatusDelivered:
			default:
				t.Errorf("%s %s: %v after the race", id, r.Addr, r.State.Status)
			}
		}
	}
	if count != removed {
		t.Errorf("%d recipients removed, Change said %d", count, removed)
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("%d messages live after every recipient was delivered or removed", n)
	}
}
