package queue

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"postern/internal/smtp"
	"postern/internal/spool"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, dir string, segSize int64) *spool.Spool {
	t.Helper()
	s, err := spool.Open(spool.Options{Dir: dir, SegmentSize: segSize, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPut(t testing.TB, s *spool.Spool, env *smtp.Envelope, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), env, data); err != nil {
		t.Fatal(err)
	}
}

// live reports whether message id has a recipient not yet done.
func live(s *spool.Spool, id string) bool {
	for _, it := range s.List() {
		if it.ID == id {
			return true
		}
	}
	return false
}
