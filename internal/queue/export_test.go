package queue

import (
	"testing"

	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/testkit"
)

// Test helpers for the external test package (queue_test), which may
// import packages that import queue (ids, envelopes and data come from
// spooltest).

func OpenForTest(t testing.TB, dir string, seg int64) *spool.Spool { return openTest(t, dir, seg) }
func PutForTest(t testing.TB, s *spool.Spool, env *smtp.Envelope, data []byte) {
	t.Helper()
	mustPut(t, s, env, data)
}

// Live reports whether message id has a recipient not yet done (live).
func Live(s *spool.Spool, id string) bool { return live(s, id) }

// RunForTest runs r until the test ends or stop is called (run).
func RunForTest(t testing.TB, r *Runner) (stop func()) { return run(t, r) }

// WaitIdleForTest waits until r has no message queued or in a pass.
func WaitIdleForTest(t testing.TB, r *Runner) {
	t.Helper()
	testkit.WaitFor(t, "the runner idle", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.queue) == 0 && len(r.state) == 0
	})
}
