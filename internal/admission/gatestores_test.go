package admission_test

import (
	"context"
	"testing"
	"time"

	"postern/internal/admission"
)

// TestGateOnEachStore runs the gate's ban check and token buckets on each
// store: the bucket's state is one Store counter, the bans are the Store's.
func TestGateOnEachStore(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		s := newStore(t)
		g := admission.NewGate(s, admission.GateOptions{
			IPRate: admission.Rate{PerSecond: 2, Burst: 3}, PrefixRate: admission.Rate{PerSecond: 1, Burst: 5}})
		ctx, now := context.Background(), e0
		admit := func(a string, at time.Time) admission.Decision {
			t.Helper()
			d, err := g.Admit(ctx, "l", addr(a), at)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		for i := 0; i < 3; i++ {
			if d := admit("192.0.2.1", now); !d.Allowed {
				t.Fatalf("burst connection %d refused: %s", i+1, d.Reason)
			}
		}
		if d := admit("192.0.2.1", now); d.Reason != admission.ReasonIPRate {
			t.Fatalf("past the burst: %+v", d)
		}
		if d := admit("192.0.2.1", now.Add(499*time.Millisecond)); d.Allowed {
			t.Fatal("allowed before a token is back")
		}
		if d := admit("192.0.2.1", now.Add(500*time.Millisecond)); !d.Allowed {
			t.Fatalf("refused when a token is back: %s", d.Reason)
		}
		// The /24's bucket (burst 5) has 4 tokens taken: one more address
		// gets one, the next is refused for the prefix.
		if d := admit("192.0.2.2", now.Add(500*time.Millisecond)); !d.Allowed {
			t.Fatalf("5th of the /24 refused: %s", d.Reason)
		}
		if d := admit("192.0.2.3", now.Add(500*time.Millisecond)); d.Reason != admission.ReasonPrefixRate {
			t.Fatalf("6th of the /24: %+v", d)
		}
		// A ban comes first.
		s.PutBan(ctx, admission.Ban{Prefix: admission.HostPrefix(addr("198.51.100.9")), Until: now.Add(time.Minute), Created: now})
		if d := admit("198.51.100.9", now); d.Reason != admission.ReasonBanned {
			t.Fatalf("banned address: %+v", d)
		}
	})
}
