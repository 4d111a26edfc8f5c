package admission_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/admission/redisstore"
)

// eachStore runs fn against the memory store and, when POSTERN_TEST_REDIS
// names a Redis server (host:port), against the Redis store: the engine,
// the gate and the limits behave the same on both.
func eachStore(t *testing.T, fn func(t *testing.T, newStore func(t *testing.T) admission.Store)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func(*testing.T) admission.Store { return admission.NewMemoryStore() })
	})
	t.Run("redis", func(t *testing.T) {
		addr := os.Getenv("POSTERN_TEST_REDIS")
		if addr == "" {
			if os.Getenv("POSTERN_INTEGRATION") == "1" {
				t.Fatal("POSTERN_TEST_REDIS is not set")
			}
			t.Skip("POSTERN_TEST_REDIS not set: no Redis to test against")
		}
		fn(t, func(t *testing.T) admission.Store { return newRedisStore(t, addr) })
	})
}

var redisSeq atomic.Int64

// newRedisStore returns a Redis store under a key prefix of its own; its
// keys expire by their garbage-collection TTLs.
func newRedisStore(t *testing.T, addr string) admission.Store {
	t.Helper()
	// The time, too: an earlier run's keys outlive it (they expire by
	// TTL), and its pid may come round again.
	prefix := fmt.Sprintf("postern-test-admission:%d:%d:%d:", os.Getpid(), time.Now().UnixNano(), redisSeq.Add(1))
	s, err := redisstore.New(redisstore.Options{Addr: addr, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logRecorder is a slog.Handler that keeps the records it gets.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

// alerts returns the kinds of the "auth abuse alert" records so far.
func (h *logRecorder) alerts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var kinds []string
	for _, r := range h.recs {
		if r.Message != "auth abuse alert" || r.Level != slog.LevelWarn {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "kind" {
				kinds = append(kinds, a.Value.String())
				return false
			}
			return true
		})
	}
	return kinds
}

// count returns how many records have message msg.
func (h *logRecorder) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Message == msg {
			n++
		}
	}
	return n
}
