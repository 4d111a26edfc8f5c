package queue

import (
	"testing"
	"time"

	"postern/internal/spool"
	"postern/internal/testkit"
)

// TestSetPolicy: a retry schedule set while the runner runs (a reload)
// decides the next attempt of the next deferral.
func TestSetPolicy(t *testing.T) {
	s := openTest(t, t.TempDir(), 0)
	defer s.Close()
	id := putNow(t, s, 100, "r@x.example")
	set := make(chan struct{}) // the attempt fails once the new policy is set
	remote := &fakeRemote{answer: func(r string, try int) Outcome { <-set; return tempFail(r) }}
	r, stop := runFor(t, s, RunnerOptions{RemoteBatch: remote, Policy: RetryPolicy{First: time.Hour, Max: time.Hour, GiveUp: 48 * time.Hour}})
	defer stop()
	r.SetPolicy(RetryPolicy{First: 2 * time.Minute, Max: 2 * time.Minute, GiveUp: 48 * time.Hour})
	close(set)
	testkit.WaitFor(t, "deferred", func() bool { return stateOf(t, s, id, "r@x.example").Status == spool.StatusDeferred })
	next := stateOf(t, s, id, "r@x.example").NextAttempt
	if d := time.Until(next); d > 5*time.Minute || d < time.Minute {
		t.Fatalf("next attempt in %v, want about 2m (the new policy)", d)
	}
}
