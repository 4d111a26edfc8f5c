package admission

import (
	"context"
	"net/netip"
	"testing"
)

// TestGateSetOptions: new lists and caps apply to the next connection;
// the connections open stay counted against the new cap, and one
// admitted before gives its slot back once.
func TestGateSetOptions(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{MaxConnsPerIP: 3})
	held := admit(t, g, "mx", "192.0.2.1", t0)
	if !held.Allowed {
		t.Fatalf("first connection: %+v", held)
	}
	g.SetOptions(GateOptions{MaxConnsPerIP: 1, Listeners: map[string]Listener{"mx": {Deny: pfs("198.51.100.0/24")}}})
	if d := admit(t, g, "mx", "192.0.2.1", t0); d.Allowed || d.Reason != ReasonIPConns {
		t.Fatalf("over the new cap: %+v", d)
	}
	if d := admit(t, g, "mx", "198.51.100.9", t0); d.Allowed || d.Reason != ReasonDenied {
		t.Fatalf("newly denied: %+v", d)
	}
	held.Release()
	if d := admit(t, g, "mx", "192.0.2.1", t0); !d.Allowed {
		t.Fatalf("after the release: %+v", d)
	} else {
		d.Release()
	}
	if n := g.Conns(netip.MustParseAddr("192.0.2.1")); n != 0 {
		t.Fatalf("%d connections counted, want 0", n)
	}
}

// TestLimiterSetOptions: new limits apply at once; the sessions open stay
// counted.
func TestLimiterSetOptions(t *testing.T) {
	t.Parallel()
	l := NewLimiter(NewMemoryStore(), LimiterOptions{Default: SendLimits{Sessions: 2}})
	ctx := context.Background()
	release, err := l.BeginSession(ctx, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	l.SetOptions(LimiterOptions{Default: SendLimits{Sessions: 1}, Users: map[string]SendLimits{"B@example.org": {Sessions: 5}}})
	if _, err := l.BeginSession(ctx, "a@example.org"); err == nil {
		t.Fatal("a second session under the new limit of 1")
	}
	if got := l.Limits("b@example.org").Sessions; got != 5 {
		t.Fatalf("b's sessions limit %d, want 5", got)
	}
}
