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

func mustPut(t testing.TB, s *Spool, env *smtp.Envelope, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), env, data); err != nil {
		t.Fatal(err)
	}
}
