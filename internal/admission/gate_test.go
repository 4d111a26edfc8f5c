package admission

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func ip(s string) netip.Addr   { return netip.MustParseAddr(s) }
func pf(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func pfs(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, pf(x))
	}
	return out
}

func admit(t *testing.T, g *Gate, l, a string, now time.Time) Decision {
	t.Helper()
	d, err := g.Admit(context.Background(), l, ip(a), now)
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed && d.Release == nil {
		t.Fatal("allowed without Release")
	}
	return d
}

func TestGateAllowDeny(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{Listeners: map[string]Listener{
		"internal": {Allow: pfs("10.0.0.0/8", "2001:db8::/32"), Deny: pfs("10.9.0.0/16")},
		"mx":       {Deny: pfs("192.0.2.0/24")},
	}})
	cases := []struct {
		l, a   string
		reason string // "" for allowed
	}{
		{"internal", "10.1.2.3", ""},
		{"internal", "2001:db8::5", ""},
		{"internal", "10.9.1.1", ReasonDenied},
		{"internal", "192.168.1.1", ReasonNotAllowed},
		{"internal", "::ffff:10.1.2.3", ""},
		{"mx", "192.0.2.200", ReasonDenied},
		{"mx", "192.0.3.1", ""},
		{"other", "192.0.2.200", ""},
	}
	for _, c := range cases {
		d := admit(t, g, c.l, c.a, t0)
		if d.Allowed != (c.reason == "") || d.Reason != c.reason {
			t.Errorf("%s from %s: allowed=%v reason=%q, want reason %q", c.l, c.a, d.Allowed, d.Reason, c.reason)
		}
		if d.Allowed {
			d.Release()
		}
	}
}

func TestGateBanCheckedFirst(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore()
	m := NewMetrics(nil)
	g := NewGate(s, GateOptions{
		Listeners: map[string]Listener{"sub": {Allow: pfs("192.0.2.0/24")}, "plain": {NoTLS: true}},
		Trusted:   pfs("192.0.2.0/24"),
		Metrics:   m,
	})
	s.PutBan(context.Background(), Ban{Prefix: pf("192.0.2.0/24"), Until: t0.Add(time.Hour), Reason: "test"})
	// Allowed by the list and trusted, but the ban comes first.
	d := admit(t, g, "sub", "192.0.2.7", t0)
	if d.Allowed || d.Reason != ReasonBanned || d.Ban.Reason != "test" {
		t.Fatalf("banned address: %+v", d)
	}
	// The Gate counts into its own metrics: exactly this refusal.
	if got := counterValue(m.HandshakesAvoided.WithLabelValues("sub")); got != 1 {
		t.Errorf("handshakes avoided = %v, want 1", got)
	}
	if got := counterValue(m.Refused.WithLabelValues("sub", ReasonBanned)); got != 1 {
		t.Errorf("refused{banned} = %v, want 1", got)
	}
	// A listener without TLS avoids no handshake.
	admit(t, g, "plain", "192.0.2.7", t0)
	if got := counterValue(m.HandshakesAvoided.WithLabelValues("plain")); got != 0 {
		t.Errorf("handshakes avoided on a plain listener = %v, want 0", got)
	}
	if got := counterValue(m.Refused.WithLabelValues("plain", ReasonBanned)); got != 1 {
		t.Errorf("refused{plain,banned} = %v, want 1", got)
	}
	// The ban ends.
	if d := admit(t, g, "sub", "192.0.2.7", t0.Add(time.Hour)); !d.Allowed {
		t.Errorf("after the ban: %+v", d)
	}
}

func TestGateIPConcurrency(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{MaxConnsPerIP: 3, MaxConnsPerPrefix: 100})
	var rel []func()
	for i := 0; i < 3; i++ { // at the cap
		d := admit(t, g, "l", "127.0.0.5", t0)
		if !d.Allowed {
			t.Fatalf("connection %d refused: %s", i+1, d.Reason)
		}
		rel = append(rel, d.Release)
	}
	if d := admit(t, g, "l", "127.0.0.5", t0); d.Allowed || d.Reason != ReasonIPConns {
		t.Fatalf("4th connection (just past the cap): %+v", d)
	}
	if d := admit(t, g, "l", "127.0.0.6", t0); !d.Allowed {
		t.Fatalf("another address refused: %s", d.Reason)
	} else {
		d.Release()
	}
	rel[0]()
	rel[0]() // Release is idempotent
	if n := g.Conns(ip("127.0.0.5")); n != 2 {
		t.Fatalf("Conns after one release = %d, want 2", n)
	}
	d := admit(t, g, "l", "127.0.0.5", t0)
	if !d.Allowed {
		t.Fatalf("after a release: %s", d.Reason)
	}
	d.Release()
	rel[1]()
	rel[2]()
	if n := g.Conns(ip("127.0.0.5")); n != 0 {
		t.Fatalf("Conns after all released = %d", n)
	}
}

func TestGatePrefixConcurrencyIPv4(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{MaxConnsPerIP: 2, MaxConnsPerPrefix: 4})
	for i, a := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.3"} {
		if d := admit(t, g, "l", a, t0); !d.Allowed {
			t.Fatalf("connection %d from %s refused: %s", i, a, d.Reason)
		}
	}
	if d := admit(t, g, "l", "127.0.0.200", t0); d.Allowed || d.Reason != ReasonPrefixConn {
		t.Fatalf("5th connection from the /24: %+v", d)
	}
	if d := admit(t, g, "l", "127.0.1.1", t0); !d.Allowed {
		t.Fatalf("another /24 refused: %s", d.Reason)
	}
}

func TestGatePrefixConcurrencyIPv6(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{MaxConnsPerIP: 10, MaxConnsPerPrefix: 2, MaxConnsPerV6Site: 3})
	// Two addresses of one /64 fill its cap.
	for _, a := range []string{"2001:db8:1:1::1", "2001:db8:1:1::2"} {
		if d := admit(t, g, "l", a, t0); !d.Allowed {
			t.Fatalf("%s refused: %s", a, d.Reason)
		}
	}
	if d := admit(t, g, "l", "2001:db8:1:1:ffff::9", t0); d.Allowed || d.Reason != ReasonPrefixConn {
		t.Fatalf("3rd from the /64: %+v", d)
	}
	// Another /64 of the same /48: the /48 cap (3) allows one more.
	if d := admit(t, g, "l", "2001:db8:1:2::1", t0); !d.Allowed {
		t.Fatalf("another /64 refused: %s", d.Reason)
	}
	if d := admit(t, g, "l", "2001:db8:1:3::1", t0); d.Allowed || d.Reason != ReasonPrefixConn {
		t.Fatalf("4th from the /48: %+v", d)
	}
	// Another /48 is not affected.
	if d := admit(t, g, "l", "2001:db8:2:1::1", t0); !d.Allowed {
		t.Fatalf("another /48 refused: %s", d.Reason)
	}
}

func TestGateIPRate(t *testing.T) {
	t.Parallel()
	// 2 a second, burst 4.
	g := NewGate(NewMemoryStore(), GateOptions{
		IPRate: Rate{PerSecond: 2, Burst: 4}, PrefixRate: Rate{PerSecond: 1000, Burst: 1000}})
	for i := 0; i < 4; i++ { // the burst, at once
		if d := admit(t, g, "l", "127.0.0.7", t0); !d.Allowed {
			t.Fatalf("connection %d of the burst refused: %s", i+1, d.Reason)
		}
	}
	if d := admit(t, g, "l", "127.0.0.7", t0); d.Allowed || d.Reason != ReasonIPRate {
		t.Fatalf("just past the burst: %+v", d)
	}
	// Refusals take no token: hammering does not push the refill away.
	for i := 0; i < 10; i++ {
		admit(t, g, "l", "127.0.0.7", t0.Add(100*time.Millisecond))
	}
	// One token is back after 1/rate = 500ms, not before.
	if d := admit(t, g, "l", "127.0.0.7", t0.Add(499*time.Millisecond)); d.Allowed {
		t.Fatal("allowed 499ms later")
	}
	if d := admit(t, g, "l", "127.0.0.7", t0.Add(500*time.Millisecond)); !d.Allowed {
		t.Fatalf("refused 500ms later: %s", d.Reason)
	}
	if d := admit(t, g, "l", "127.0.0.7", t0.Add(500*time.Millisecond)); d.Allowed {
		t.Fatal("a second connection allowed 500ms later")
	}
	// After 2s idle the bucket is full again: 4 more, not 5.
	t1 := t0.Add(3 * time.Second)
	for i := 0; i < 4; i++ {
		if d := admit(t, g, "l", "127.0.0.7", t1); !d.Allowed {
			t.Fatalf("refill: connection %d refused", i+1)
		}
	}
	if d := admit(t, g, "l", "127.0.0.7", t1); d.Allowed {
		t.Fatal("refill: 5th allowed")
	}
	// Another address has its own bucket.
	if d := admit(t, g, "l", "127.0.0.8", t1); !d.Allowed {
		t.Fatalf("another address refused: %s", d.Reason)
	}
}

func TestGatePrefixRateIPv6(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{
		IPRate: Rate{PerSecond: 100, Burst: 100}, PrefixRate: Rate{PerSecond: 1, Burst: 3}})
	// Rotating addresses within one /64 share its bucket.
	for i, a := range []string{"2001:db8:0:1::1", "2001:db8:0:1::2", "2001:db8:0:1:abcd::3"} {
		if d := admit(t, g, "l", a, t0); !d.Allowed {
			t.Fatalf("connection %d refused: %s", i+1, d.Reason)
		}
	}
	if d := admit(t, g, "l", "2001:db8:0:1::4", t0); d.Allowed || d.Reason != ReasonPrefixRate {
		t.Fatalf("4th from the /64: %+v", d)
	}
	if d := admit(t, g, "l", "2001:db8:0:2::1", t0); !d.Allowed {
		t.Fatalf("another /64 refused: %s", d.Reason)
	}
	// A prefix refusal gives back the address's token: ::4 is not
	// charged for the refused attempt.
	if n, _ := g.store.Count(context.Background(), "gate:rate:ip:2001:db8:0:1::4", t0); n != 0 {
		t.Errorf("refused address's bucket holds %d, want 0 (no token taken)", n)
	}
}

func TestGateTrustedSkipsCaps(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{MaxConnsPerIP: 1, IPRate: Rate{PerSecond: 1, Burst: 1},
		Trusted: pfs("127.0.0.0/30")})
	for i := 0; i < 5; i++ {
		if d := admit(t, g, "l", "127.0.0.2", t0); !d.Allowed {
			t.Fatalf("trusted connection %d refused: %s", i+1, d.Reason)
		}
	}
	admit(t, g, "l", "127.0.0.9", t0)
	if d := admit(t, g, "l", "127.0.0.9", t0); d.Allowed {
		t.Fatal("untrusted 2nd connection allowed past a cap of 1")
	}
}

// failStore fails every call.
type failStore struct{ Store }

func (failStore) Banned(context.Context, netip.Addr, time.Time) (Ban, bool, error) {
	return Ban{}, false, context.DeadlineExceeded
}

func TestGateFailsOpen(t *testing.T) {
	t.Parallel()
	g := NewGate(failStore{NewMemoryStore()}, GateOptions{Listeners: map[string]Listener{"l": {Deny: pfs("192.0.2.0/24")}}})
	d, err := g.Admit(context.Background(), "l", ip("127.0.0.1"), t0)
	if err == nil || !d.Allowed || d.Release == nil {
		t.Fatalf("store failure: %+v, %v; want allowed with an error", d, err)
	}
	d, _ = g.Admit(context.Background(), "l", ip("192.0.2.1"), t0)
	if d.Allowed {
		t.Fatal("deny list ignored when the store fails")
	}
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// The zero GateOptions caps nothing and rates nothing: 0 is off, never a
// default (the configuration resolves every value; see GateOptions).
func TestGateZeroIsOff(t *testing.T) {
	t.Parallel()
	g := NewGate(NewMemoryStore(), GateOptions{})
	for i := range 500 {
		if d := admit(t, g, "mx", "2001:db8::1", t0); !d.Allowed {
			t.Fatalf("connection %d refused: %s", i+1, d.Reason)
		}
		if d := admit(t, g, "mx", "192.0.2.1", t0); !d.Allowed {
			t.Fatalf("connection %d refused: %s", i+1, d.Reason)
		}
	}
}
