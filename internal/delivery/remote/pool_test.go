package remote

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/delivery/policy"
	"postern/internal/testkit"
)

func TestPoolReuse(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	for range 3 {
		delivered(t, f.one(t, testMsg("b@example.test")))
	}
	conns, rsets, quits, msgs := s.stats()
	if conns != 1 || rsets != 2 || quits != 0 || len(msgs) != 3 {
		t.Errorf("conns %d rsets %d quits %d msgs %d, want 1 2 0 3", conns, rsets, quits, len(msgs))
	}
	if !strings.Contains(f.logs.String(), "reused=true") {
		t.Errorf("no reused=true in logs")
	}
	f.d.Close()
	testkit.WaitFor(t, "the QUIT of Close", func() bool {
		_, _, quits, _ := s.stats()
		return quits == 1
	})
}

func TestPoolBrokenSessionRedialed(t *testing.T) {
	for _, how := range []string{"DROP", "421 4.3.2 closing"} {
		s := newFake(t, "127.0.0.2", func(s *fakeServer) {
			s.Reply = func(cmd string) string {
				if strings.HasPrefix(cmd, "RSET") {
					return how
				}
				return ""
			}
		})
		f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
		delivered(t, f.one(t, testMsg("b@example.test")))
		delivered(t, f.one(t, testMsg("c@example.test")))
		if conns, _, _, msgs := s.stats(); conns != 2 || len(msgs) != 2 {
			t.Errorf("%s: conns %d msgs %d, want 2 2", how, conns, len(msgs))
		}
	}
}

func TestPoolSessionClosedByServer(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	delivered(t, f.one(t, testMsg("b@example.test")))
	// The server ends the pooled session: our half-close makes it close.
	f.dialer.mu.Lock()
	for _, c := range f.dialer.conns {
		c.(interface{ CloseWrite() error }).CloseWrite()
	}
	f.dialer.mu.Unlock()
	delivered(t, f.one(t, testMsg("c@example.test")))
	if conns, _, _, msgs := s.stats(); conns != 2 || len(msgs) != 2 {
		t.Errorf("conns %d msgs %d, want 2 2", conns, len(msgs))
	}
}

func TestPoolIdleTimeout(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	f.d.Pool.IdleTimeout = 100 * time.Millisecond
	clock := &testkit.Timers{}
	f.d.AfterFunc = clock.AfterFunc
	delivered(t, f.one(t, testMsg("b@example.test")))
	if !clock.WaitArmed(100*time.Millisecond, 5*time.Second) {
		t.Fatalf("no 100ms idle timer armed: %v", clock.Armed())
	}
	clock.Advance(99 * time.Millisecond)
	if _, _, quits, _ := s.stats(); quits != 0 {
		t.Errorf("quits %d before the idle timeout, want 0", quits)
	}
	clock.Advance(time.Millisecond)
	testkit.WaitFor(t, "the QUIT after the idle timeout", func() bool {
		_, _, quits, _ := s.stats()
		return quits == 1
	})
	delivered(t, f.one(t, testMsg("b@example.test")))
	if conns, _, _, _ := s.stats(); conns != 2 {
		t.Errorf("conns %d, want 2", conns)
	}
}

// TestPoolMaxMessagesPerConn: a session carries MaxMessagesPerConn
// messages, then QUIT; as many as come when it is 0 (no cap).
func TestPoolMaxMessagesPerConn(t *testing.T) {
	for _, tt := range []struct{ limit, n, conns, quits int }{{2, 5, 3, 2}, {0, 120, 1, 0}} {
		s := newFake(t, "127.0.0.2", nil)
		f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
		f.d.Pool.MaxMessagesPerConn = tt.limit
		for range tt.n {
			delivered(t, f.one(t, testMsg("b@example.test")))
		}
		if conns, _, quits, _ := s.stats(); conns != tt.conns || quits != tt.quits {
			t.Errorf("cap %d: conns %d quits %d, want %d %d", tt.limit, conns, quits, tt.conns, tt.quits)
		}
	}
}

// In PoolOptions 0 is off, never a default (Postern's configuration
// resolves the defaults): MaxIdlePerHost 0 keeps no session idle.
func TestPoolMaxIdleZeroDisablesReuse(t *testing.T) {
	s := newFake(t, "127.0.0.2", nil)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	f.d.Pool = PoolOptions{}
	for range 2 {
		delivered(t, f.one(t, testMsg("b@example.test")))
	}
	if conns, _, quits, _ := s.stats(); conns != 2 || quits != 2 {
		t.Errorf("conns %d quits %d, want 2 2", conns, quits)
	}
}

// slowFake is a fake server that takes d to answer the end of DATA.
func slowFake(t *testing.T, d time.Duration) *fakeServer {
	return newFake(t, "127.0.0.2", func(s *fakeServer) {
		s.Reply = func(cmd string) string {
			if cmd == "." {
				time.Sleep(d)
			}
			return ""
		}
	})
}

// TestPoolMaxConnsPerHost delivers n messages at once to a slow server:
// at most MaxConnsPerHost sessions carry them, or n when it is 0 (no cap).
func TestPoolMaxConnsPerHost(t *testing.T) {
	for _, tt := range []struct{ limit, n, want int }{{2, 6, 2}, {0, 12, 12}} {
		s := slowFake(t, 100*time.Millisecond)
		f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
		f.d.Pool.MaxConnsPerHost = tt.limit
		var wg sync.WaitGroup
		for range tt.n {
			wg.Go(func() { delivered(t, f.d.Deliver(context.Background(), testMsg("b@example.test"))) })
		}
		wg.Wait()
		s.mu.Lock()
		if s.conns != tt.want || s.maxAct != tt.want || len(s.msgs) != tt.n {
			t.Errorf("cap %d: conns %d max concurrent %d msgs %d, want %d %d %d", tt.limit, s.conns, s.maxAct, len(s.msgs), tt.want, tt.want, tt.n)
		}
		s.mu.Unlock()
	}
}

func TestPoolWaitHonoursContext(t *testing.T) {
	s := slowFake(t, 300*time.Millisecond)
	f := newFixture(t, []policy.Host{mx("mx.example.test", policy.Opportunistic, s)}, s)
	f.d.Pool.MaxConnsPerHost = 1
	go f.d.Deliver(context.Background(), testMsg("b@example.test"))
	testkit.WaitFor(t, "the first delivery's session", func() bool {
		conns, _, _, _ := s.stats()
		return conns == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res := f.d.Deliver(ctx, testMsg("c@example.test"))
	failed(t, res, false, "waiting for a session")
}
