package queue

import (
	"testing"

	"postern/internal/smtp"
	"postern/internal/spool"
)

// Test helpers for the external test package (queue_test), which may
// import packages that import queue.

func MakeID() string                                               { return testID() }
func MakeEnv(id string, rcpts ...string) *smtp.Envelope            { return testEnv(id, rcpts...) }
func MakeData(id string, size int) []byte                          { return testData(id, size) }
func OpenForTest(t testing.TB, dir string, seg int64) *spool.Spool { return openTest(t, dir, seg) }
func PutForTest(t testing.TB, s *spool.Spool, env *smtp.Envelope, data []byte) {
	t.Helper()
	mustPut(t, s, env, data)
}
