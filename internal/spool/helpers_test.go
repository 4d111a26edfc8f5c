package spool

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"postern/internal/smtp"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, dir string, segSize int64) *Spool {
	t.Helper()
	s, err := Open(Options{Dir: dir, SegmentSize: segSize, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// reopen closes s, which must close cleanly, and opens the spool in dir
// again, as a restart would; the new Spool is closed when the test ends.
func reopen(t testing.TB, s *Spool, dir string) *Spool {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, 0)
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPut(t testing.TB, s *Spool, env *smtp.Envelope, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), env, data); err != nil {
		t.Fatal(err)
	}
}
