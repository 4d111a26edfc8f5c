package queue

import (
	"testing"

	"postern/internal/smtp"
)

// Test helpers for the external test package (queue_test), which may
// import packages that import queue.

func MakeID() string                                         { return testID() }
func MakeEnv(id string, rcpts ...string) *smtp.Envelope      { return testEnv(id, rcpts...) }
func MakeData(id string, size int) []byte                    { return testData(id, size) }
func OpenForTest(t testing.TB, dir string, seg int64) *Spool { return openTest(t, dir, seg) }
func PutForTest(t testing.TB, s *Spool, env *smtp.Envelope, data []byte) {
	t.Helper()
	mustPut(t, s, env, data)
}

// StoredStateIDs returns the ids with a stored state in the spool's
// state store; the spool must be open.
func StoredStateIDs(s *Spool) ([]string, error) {
	m, err := loadStates(s.db)
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	return ids, err
}
