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
	WaitWithin(t, 5*time.Second, 2*time.Millisecond, "timed out waiting for "+what, cond)
}

// WaitWithin polls cond every interval and fails t with msg if cond
// does not hold within d: WaitFor for the longer waits on another
// process (a server started by the binary tests, a peer it delivers
// to), which a coarser interval polls without loading the machine.
func WaitWithin(t testing.TB, d, interval time.Duration, msg string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(interval) {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
	}
}
