package testkit

import (
	"testing"
	"time"
)

// WaitFor polls cond, every 2 ms for up to 5 seconds, for what another
// goroutine or process does, and fails t (naming what) if cond never
// holds. Prefer a signal (a channel, a callback) where the code under
// test offers one.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
