package queue

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/spool/spooltest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func isLocal(addr string) bool { return strings.HasSuffix(addr, "@local.test") }

// run runs r until the test ends or stop is called. stop returns once Run
// has, and fails t if Run failed or took more than 5 seconds to return.
func run(t testing.TB, r *Runner) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

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

// putNow puts a message of size octets to rcpts, received now, and
// returns its id.
func putNow(t testing.TB, s *spool.Spool, size int, rcpts ...string) (id string) {
	t.Helper()
	id = spooltest.ID()
	env := spooltest.Env(id, rcpts...)
	env.ReceivedAt = time.Now()
	mustPut(t, s, env, spooltest.Data(id, size))
	return id
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
