package admission_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/admission/admissiontest"
)

var e0 = time.Now().Truncate(time.Second)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

type engineT struct {
	t     *testing.T
	e     *admission.Engine
	store admission.Store
	log   *logRecorder
}

func newEngine(t *testing.T, s admission.Store, o admission.AbuseOptions) *engineT {
	rec := &logRecorder{}
	o.Logger = slog.New(rec)
	return &engineT{t: t, e: admission.NewEngine(s, o), store: s, log: rec}
}

func (et *engineT) fail(a, user string, now time.Time) (time.Duration, bool) {
	return et.e.AuthResult(context.Background(), admission.AuthOutcome{Remote: addr(a), Username: user, Mech: "PLAIN", Now: now})
}

func (et *engineT) ok(a, user string, now time.Time) {
	o := admission.AuthOutcome{Remote: addr(a), Username: user, Mech: "PLAIN", OK: true, Now: now}
	if d, b := et.e.AuthResult(context.Background(), o); d != 0 || b {
		et.t.Fatalf("success answered delay %v banned %v", d, b)
	}
}

func (et *engineT) before(a, user string, now time.Time) admission.AuthVerdict {
	return et.e.BeforeAuth(context.Background(), addr(a), user, now)
}

// wantNoThrottle checks that user is neither refused nor delayed from
// any of addrs, and that no distributed guessing was alerted.
func (et *engineT) wantNoThrottle(user string, now time.Time, addrs ...string) {
	et.t.Helper()
	for _, a := range addrs {
		if v := et.before(a, user, now); v != (admission.AuthVerdict{}) {
			et.t.Errorf("%s from %s: %+v; want neither refused nor delayed", user, a, v)
		}
	}
	if got := et.log.alerts(); slices.Contains(got, "distributed") {
		et.t.Errorf("alerts = %v: this is not distributed guessing", got)
	}
}

// refused reports whether BeforeAuth refuses a login from a as user.
func (et *engineT) refused(a, user string, now time.Time) bool {
	return et.before(a, user, now).Refuse
}

func (et *engineT) ban(a string, now time.Time) (admission.Ban, bool) {
	b, ok, err := et.store.Banned(context.Background(), addr(a), now)
	if err != nil {
		et.t.Fatal(err)
	}
	return b, ok
}

func TestEngineBruteforce(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		now := e0
		wantDelay := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}
		for i := 1; i <= 9; i++ {
			d, banned := et.fail("192.0.2.1", "alice", now)
			if banned {
				t.Fatalf("banned after %d failures (threshold 10)", i)
			}
			if want := wantDelay[min(i-1, 4)]; d != want {
				t.Errorf("delay after failure %d = %v, want %v", i, d, want)
			}
			now = now.Add(time.Second)
		}
		if et.refused("192.0.2.1", "alice", now) {
			t.Fatal("refused before the ban")
		}
		// The 10th failure, at the threshold, bans the address.
		if _, banned := et.fail("192.0.2.1", "alice", now); !banned {
			t.Fatal("not banned after the 10th failure")
		}
		b, ok := et.ban("192.0.2.1", now)
		if !ok || b.Prefix != netip.MustParsePrefix("192.0.2.1/32") || b.Strikes != 1 || !b.Until.Equal(now.Add(15*time.Minute)) {
			t.Fatalf("ban = %+v, %v; want 192.0.2.1/32 for 15m, strike 1", b, ok)
		}
		if !et.refused("192.0.2.1", "", now) {
			t.Error("BeforeAuth does not refuse a banned address")
		}
		if _, ok := et.ban("192.0.2.2", now); ok {
			t.Error("a neighbour is banned")
		}
		// The second and third bans last 30m and 60m; the third alerts.
		for _, c := range []struct {
			strike int
			d      time.Duration
		}{{2, 30 * time.Minute}, {3, time.Hour}} {
			now = b.Until.Add(time.Minute)
			for i := 0; i < 10; i++ {
				et.fail("192.0.2.1", "alice", now)
			}
			b, ok = et.ban("192.0.2.1", now)
			if !ok || b.Strikes != c.strike || !b.Until.Equal(now.Add(c.d)) {
				t.Fatalf("ban %d = %+v, %v; want %v", c.strike, b, ok, c.d)
			}
		}
		if got := et.log.alerts(); !slices.Equal(got, []string{"bruteforce"}) {
			t.Errorf("alerts = %v, want one bruteforce (third strike)", got)
		}
	})
}

func TestEngineBanCap(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(func(o *admission.AbuseOptions) {
			o.IPBanAfter = 1
			o.BanDuration = time.Hour
			o.MaxBan = 3 * time.Hour
			o.PrefixBanIPs = 0
		}))
		now := e0
		for _, want := range []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour, 3 * time.Hour} {
			et.fail("198.51.100.1", "bob", now)
			b, ok := et.ban("198.51.100.1", now)
			if !ok || !b.Until.Equal(now.Add(want)) {
				t.Fatalf("ban = %+v, want %v", b, want)
			}
			now = b.Until
		}
	})
}

func TestEngineRealUserNotLockedOut(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		now := e0
		et.ok("203.0.113.9", "alice", now) // alice's own address
		// 1000 wrong passwords for alice from an attacker: the address is
		// banned at the 10th, and alice is under attack.
		for i := 0; i < 1000; i++ {
			if et.refused("192.0.2.66", "alice", now) {
				break
			}
			et.fail("192.0.2.66", "alice", now)
		}
		if _, ok := et.ban("192.0.2.66", now); !ok {
			t.Fatal("attacker not banned")
		}
		if et.refused("203.0.113.9", "alice", now) {
			t.Fatal("alice refused from her own address while under attack")
		}
		et.ok("203.0.113.9", "alice", now)
		// A mistake of alice's own does not ban her after one failure,
		// and costs the first delay only.
		if d, banned := et.fail("203.0.113.9", "alice", now); banned || d != time.Second {
			t.Errorf("alice's own failure: delay %v banned %v", d, banned)
		}
	})
}

func TestEngineStuffing(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		now := e0
		// Four usernames, one failure each: below every threshold.
		for i := 1; i <= 4; i++ {
			if _, banned := et.fail("192.0.2.77", fmt.Sprintf("user%d", i), now); banned {
				t.Fatalf("banned after %d usernames", i)
			}
		}
		if got := et.log.alerts(); len(got) != 0 {
			t.Fatalf("alerts before the threshold: %v", got)
		}
		// The fifth distinct username: stuffing. Ban and alert.
		if _, banned := et.fail("192.0.2.77", "user5", now); !banned {
			t.Fatal("not banned at the 5th username")
		}
		b, _ := et.ban("192.0.2.77", now)
		if b.Prefix.Bits() != 32 {
			t.Errorf("ban = %+v; want the address", b)
		}
		if got := et.log.alerts(); !slices.Equal(got, []string{"stuffing"}) {
			t.Errorf("alerts = %v, want [stuffing]", got)
		}
		// The same username again does not count as a new one.
		et2 := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		for i := 0; i < 5; i++ {
			et2.fail("192.0.2.78", "user1", now)
		}
		if got := et2.log.alerts(); len(got) != 0 {
			t.Errorf("one username five times: alerts %v", got)
		}
	})
}

func TestEngineDistributed(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		now := e0
		et.ok("203.0.113.9", "alice", now)
		// Four addresses in four /24s, one failure each.
		for i := 1; i <= 4; i++ {
			et.fail(fmt.Sprintf("198.51.%d.1", i), "alice", now)
		}
		if et.refused("198.51.50.1", "alice", now) {
			t.Fatal("throttled before the threshold")
		}
		// The fifth address: distributed guessing.
		et.fail("198.51.5.1", "alice", now)
		if got := et.log.alerts(); !slices.Equal(got, []string{"distributed"}) {
			t.Fatalf("alerts = %v, want [distributed]", got)
		}
		// An address that never logged in as alice is throttled: every
		// failure waits the longest delay, and its network may have
		// three passwords checked (user_throttle_after), no more. None
		// is banned.
		for i := 1; i <= 4; i++ {
			v := et.before("198.51.50.1", "alice", now)
			if v.Refuse != (i > 3) || v.Banned || v.Delay != 10*time.Second {
				t.Errorf("new address for alice, attempt %d: %+v; want a 10s delay, refused from the 4th", i, v)
			}
		}
		if !et.refused("198.51.50.200", "alice", now) {
			t.Error("another address of the same /24 not refused: the checks are per network")
		}
		if v := et.before("198.51.51.1", "alice", now); v.Refuse || v.Delay != 10*time.Second {
			t.Errorf("an address of another /24: %+v; want checked, after 10s", v)
		}
		if _, ok := et.ban("198.51.1.1", now); ok {
			t.Error("an address with one failure is banned")
		}
		// Alice's own address and other usernames are not affected.
		if et.refused("203.0.113.9", "alice", now) {
			t.Error("alice refused from her good address")
		}
		if et.refused("198.51.50.1", "bob", now) {
			t.Error("bob refused")
		}
		// Usernames compare without case.
		if !et.refused("198.51.50.1", "ALICE", now) {
			t.Error("ALICE not throttled")
		}
		// When the window ends, so does the throttle.
		if v := et.before("198.51.50.1", "alice", now.Add(10*time.Minute)); v != (admission.AuthVerdict{}) {
			t.Errorf("after the window: %+v; want no throttle", v)
		}
	})
}

// TestEngineOneAddressCannotLockOut is issue 12 §3 as found: 60 wrong
// passwords for alice from one address (each asked about first, as the
// session does) get the address banned, and nothing else: alice, from
// a neighbour of the guesser or from anywhere else, is not refused nor
// delayed, and the guesser's /24 is not banned.
func TestEngineOneAddressCannotLockOut(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		now := e0
		for i := 0; i < 60; i++ {
			et.before("192.0.2.66", "alice", now)
			et.fail("192.0.2.66", "alice", now)
			now = now.Add(time.Second)
		}
		if v := et.before("192.0.2.66", "alice", now); !v.Banned {
			t.Fatalf("the guesser: %+v; want banned", v)
		}
		if b, ok := et.ban("192.0.2.67", now); ok {
			t.Fatalf("the guesser's neighbour is banned: %+v (a banned address's failures must stop counting)", b)
		}
		et.wantNoThrottle("alice", now, "192.0.2.67", "198.51.100.7", "2001:db8::7")
	})
}

// TestEngineOneNetworkCannotLockOut: guessing from many addresses of one
// IPv4 /24, or from many /64s of one IPv6 /48, gets the network banned
// but never puts the username under attack.
func TestEngineOneNetworkCannotLockOut(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		now := e0
		guess := func(a string) {
			for j := 0; j < 12; j++ {
				et.before(a, "alice", now)
				et.fail(a, "alice", now)
			}
		}
		for i := 1; i <= 254; i++ {
			guess(fmt.Sprintf("192.0.2.%d", i))
		}
		for i := 1; i <= 300; i++ {
			guess(fmt.Sprintf("2001:db8:1:%x::1", i))
		}
		if _, ok := et.ban("192.0.2.200", now); !ok {
			t.Error("the guessing /24 is not banned")
		}
		if _, ok := et.ban("2001:db8:1:ffff::1", now); !ok {
			t.Error("the guessing /48 is not banned")
		}
		et.wantNoThrottle("alice", now, "198.51.100.7", "2001:db8:2::7")
	})
}

// TestEngineBotnetSlowedNotLockingOut: a botnet in 50 /24s guesses at
// alice, one attempt per address per round, as fast as it is answered.
// Alice comes under attack at the 5th network. From then on each network
// has three passwords checked for her in the window and no more, each
// failure waits the longest delay whether checked or refused, and the
// real user, from a network new to her, still gets in; that address is
// then good.
func TestEngineBotnetSlowedNotLockingOut(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
		now := e0
		const nets, rounds = 50, 12
		checked := make([]int, nets) // passwords checked for each network
		underAttack := false
		for r := 0; r < rounds; r++ {
			for n := 0; n < nets; n++ {
				a := fmt.Sprintf("198.18.%d.1", n)
				v := et.before(a, "alice", now)
				if v.Banned {
					continue // refused at accept from now on
				}
				if underAttack && (v.Delay != 10*time.Second) {
					t.Fatalf("round %d, network %d: %+v; want the 10s delay while alice is under attack", r, n, v)
				}
				if !v.Refuse {
					checked[n]++
				}
				d, _ := et.fail(a, "alice", now)
				if d > v.Delay && underAttack {
					t.Fatalf("round %d, network %d: failure delay %v past the verdict's %v", r, n, d, v.Delay)
				}
				if n == 4 && r == 0 {
					underAttack = true
				}
			}
			now = now.Add(time.Second)
		}
		if got := et.log.alerts(); !slices.Contains(got, "distributed") {
			t.Fatalf("alerts = %v, want distributed", got)
		}
		for n, c := range checked {
			// Networks 0-4 had one check each before the attack was seen.
			if want := 3 + btoi(n <= 4); c != want {
				t.Errorf("network %d: %d passwords checked, want %d", n, c, want)
			}
		}
		// The real user, from a network new to her: checked, and in.
		v := et.before("203.0.113.50", "alice", now)
		if v.Refuse || v.Delay != 10*time.Second {
			t.Fatalf("alice from a new network: %+v; want checked (10s delay on failure)", v)
		}
		et.ok("203.0.113.50", "alice", now)
		if v := et.before("203.0.113.50", "alice", now); v != (admission.AuthVerdict{}) {
			t.Errorf("alice from her address that succeeded: %+v; want no throttle", v)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestEnginePrefixIPv4(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), ipBansOnly(2))
		now := e0
		for _, a := range []string{"192.0.2.1", "192.0.2.2"} {
			et.fail(a, "x", now)
			et.fail(a, "x", now)
		}
		if _, ok := et.ban("192.0.2.200", now); ok {
			t.Fatal("the /24 is banned after two banned addresses (threshold 3)")
		}
		et.fail("192.0.2.3", "x", now)
		et.fail("192.0.2.3", "x", now)
		b, ok := et.ban("192.0.2.200", now)
		if !ok || b.Prefix != netip.MustParsePrefix("192.0.2.0/24") {
			t.Fatalf("ban of .200 = %+v, %v; want the /24", b, ok)
		}
		if got := et.log.alerts(); !slices.Equal(got, []string{"bruteforce"}) {
			t.Errorf("alerts = %v, want [bruteforce] for the prefix ban", got)
		}
	})
}

// TestEnginePrefixFailures: 30 failures from one /64 ban it; and one
// guesser with a /48, using an address of a /64 of its own for each
// guess so that no address and no /64 ever reaches a threshold, gets the
// /48 banned at PrefixBanAfter × PrefixBanIPs (90) failures. (Username
// guessing from one /48 counts as one network: the /48 ban is what slows
// it.)
func TestEnginePrefixFailures(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, addr      string // addr: a format for the ith address
		n               int
		ban, in, beside string
	}{
		{"ipv6-64", "2001:db8:7:7::%x", 30, "2001:db8:7:7::/64", "2001:db8:7:7:1234::1", "2001:db8:7:8::1"},
		{"ipv6-48", "2001:db8:9:%x::1", 90, "2001:db8:9::/48", "2001:db8:9:1234::77", "2001:db8:a::1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
				et := newEngine(t, newStore(t), admissiontest.Abuse(func(o *admission.AbuseOptions) { o.StuffingUsers = 0; o.DistributedIPs = 0; o.UserThrottleAfter = 0 }))
				for i := 1; i < c.n; i++ {
					if _, banned := et.fail(fmt.Sprintf(c.addr, i), "x", e0); banned {
						t.Fatalf("%s: banned at failure %d (threshold %d)", c.name, i, c.n)
					}
				}
				if _, banned := et.fail(fmt.Sprintf(c.addr, 0xffff), "x", e0); !banned {
					t.Fatalf("%s: failure %d does not ban", c.name, c.n)
				}
				if b, ok := et.ban(c.in, e0); !ok || b.Prefix != netip.MustParsePrefix(c.ban) {
					t.Fatalf("%s: ban = %+v, %v; want %s", c.name, b, ok, c.ban)
				}
				if _, ok := et.ban(c.beside, e0); ok {
					t.Errorf("%s: the next prefix is banned", c.name)
				}
			})
		})
	}
}

func TestEngineIPv6Aggregation(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), ipBansOnly(1))
		now := e0
		// Three addresses of one /64 banned: the /64.
		for _, a := range []string{"2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1::3"} {
			et.fail(a, "x", now)
		}
		if b, ok := et.ban("2001:db8:1:1::99", now); !ok || b.Prefix.Bits() != 64 {
			t.Fatalf("ban = %+v, %v; want the /64", b, ok)
		}
		if _, ok := et.ban("2001:db8:1:2::1", now); ok {
			t.Fatal("the /48 is banned after one /64")
		}
		// Two more /64s of the same /48: the /48.
		for _, p := range []string{"2001:db8:1:2::", "2001:db8:1:3::"} {
			for i := 1; i <= 3; i++ {
				et.fail(fmt.Sprintf("%s%d", p, i), "x", now)
			}
		}
		b, ok := et.ban("2001:db8:1:ffff::1", now)
		if !ok || b.Prefix != netip.MustParsePrefix("2001:db8:1::/48") {
			t.Fatalf("ban = %+v, %v; want 2001:db8:1::/48", b, ok)
		}
		if _, ok := et.ban("2001:db8:2::1", now); ok {
			t.Error("another /48 is banned")
		}
	})
}

func TestEngineGoodIPv6Prefix(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(func(o *admission.AbuseOptions) { o.DistributedIPs = 1; o.UserThrottleAfter = 1 }))
		now := e0
		et.ok("2001:db8:5:5::1", "dave", now)
		et.fail("192.0.2.1", "dave", now) // under attack (distributed_ips = 1)
		// A privacy address in the same /64 is good too; another /64 is not.
		if v := et.before("2001:db8:5:5:abcd::7", "dave", now); v != (admission.AuthVerdict{}) {
			t.Errorf("from dave's /64: %+v; want no throttle", v)
		}
		if v := et.before("2001:db8:5:6::1", "dave", now); v.Refuse || v.Delay == 0 {
			t.Errorf("from another /64, first attempt: %+v; want checked with a delay", v)
		}
		if !et.refused("2001:db8:5:6::2", "dave", now) {
			t.Error("another /64, past its /48's one check: not refused")
		}
		// The good address is forgotten after GoodIPTTL (30 days).
		later := now.Add(31 * 24 * time.Hour)
		et.fail("192.0.2.1", "dave", later)
		if v := et.before("2001:db8:5:5::1", "dave", later); v.Delay == 0 {
			t.Error("a good address is remembered past 30 days")
		}
	})
}

func TestEngineTrustedAndClientCertExempt(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(func(o *admission.AbuseOptions) { o.Trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} }))
		now := e0
		for i := 0; i < 50; i++ {
			if d, banned := et.fail("10.1.1.1", "erin", now); d != 0 || banned {
				t.Fatalf("trusted failure %d: delay %v banned %v", i, d, banned)
			}
			if d, banned := et.e.AuthResult(context.Background(), admission.AuthOutcome{Remote: addr("192.0.2.5"), Username: "erin",
				Mech: "EXTERNAL", ViaClientCert: true, Now: now}); banned || d != time.Second {
				t.Fatalf("client-cert failure %d: delay %v banned %v", i, d, banned)
			}
		}
		if _, ok := et.ban("192.0.2.5", now); ok {
			t.Error("client-cert failures banned the address")
		}
		// Make erin under attack; the trusted network is not throttled.
		for i := 1; i <= 5; i++ {
			et.fail(fmt.Sprintf("198.51.%d.1", i), "erin", now)
		}
		if v := et.before("10.2.2.2", "erin", now); v != (admission.AuthVerdict{}) {
			t.Errorf("trusted address throttled: %+v", v)
		}
		if v := et.before("192.0.2.99", "erin", now); v.Delay == 0 {
			t.Error("untrusted address not throttled (the test proves nothing)")
		}
	})
}

func TestEngineHugeLimitsDoNotOverflow(t *testing.T) {
	t.Parallel()
	et := newEngine(t, admission.NewMemoryStore(), admissiontest.Abuse(func(o *admission.AbuseOptions) {
		o.IPBanAfter = 1
		o.MaxFailDelay = time.Duration(1<<63 - 1)
		o.MaxBan = time.Duration(1<<63 - 1)
		o.PrefixBanIPs = 0
	}))
	for i := 0; i < 70; i++ {
		if d, _ := et.fail(fmt.Sprintf("198.18.%d.1", i%7), "x", e0); d <= 0 {
			t.Fatalf("failure %d: delay %v", i+1, d)
		}
	}
	if v := et.before("192.0.2.2", "x", e0); v.Delay <= 0 {
		t.Fatalf("x not under attack: %+v", v)
	}
}

// A prefix ban covering a trusted address would shut it out (the gate
// checks bans first): the engine bans the guilty addresses, not the
// prefix (found by scripts/soak: failures from 127.0.0.2-9 banned
// 127.0.0.0/24 and with it the trusted 127.0.0.1).
func TestEngineNoPrefixBanOverTrusted(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		et := newEngine(t, newStore(t), admissiontest.Abuse(func(o *admission.AbuseOptions) {
			o.IPBanAfter = 2
			o.StuffingUsers = 0
			o.DistributedIPs = 0
			o.UserThrottleAfter = 0
			o.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
		}))
		now := e0
		for i := 2; i <= 40; i++ {
			a := fmt.Sprintf("192.0.2.%d", i)
			et.fail(a, "x", now)
			et.fail(a, "x", now)
		}
		if b, ok := et.ban("192.0.2.1", now); ok {
			t.Fatalf("the trusted address is banned: %+v", b)
		}
		if b, ok := et.ban("192.0.2.7", now); !ok || b.Prefix != netip.MustParsePrefix("192.0.2.7/32") {
			t.Errorf("ban of .7 = %+v, %v; want the address", b, ok)
		}
		if _, ok := et.ban("192.0.2.200", now); ok {
			t.Error("an innocent address of the /24 is banned")
		}
	})
}

// In AbuseOptions a count of 0 is off and a FailDelay of 0 is no delay,
// never a default (the configuration resolves every value): failures are
// answered at once and nothing is banned, throttled or alerted.
func TestEngineZeroIsOff(t *testing.T) {
	t.Parallel()
	et := newEngine(t, admission.NewMemoryStore(), admission.AbuseOptions{Window: time.Hour,
		MaxFailDelay: 10 * time.Second, BanDuration: time.Hour, MaxBan: time.Hour, GoodIPTTL: time.Hour})
	for i := range 200 {
		a := fmt.Sprintf("2001:db8:%x::1", i%50)
		if d, banned := et.fail(a, fmt.Sprintf("user%d", i%7), e0); d != 0 || banned {
			t.Fatalf("failure %d from %s: delay %v, banned %v; want none", i+1, a, d, banned)
		}
	}
	et.wantNoThrottle("user1", e0, "2001:db8:1::1", "192.0.2.1")
	if _, banned := et.ban("2001:db8:1::1", e0); banned {
		t.Error("banned")
	}
	if got := et.log.alerts(); len(got) > 0 {
		t.Errorf("alerts %v", got)
	}
}

// A username with a KELVIN SIGN (U+212A, which strings.ToLower folds to
// "k") in its domain is another user than the one with a "k" (addrkey,
// issue 12 §8): failures claimed for "kate@wor\u212A.test" do not
// throttle kate@work.test. Nor does "\u00c9lise" stand for "\u00e9lise": only
// ASCII case is folded.
func TestEngineKelvinSignIsAnotherUser(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, newStore func(*testing.T) admission.Store) {
		for _, u := range []struct{ guessed, victim, upper string }{
			{"kate@wor\u212A.test", "kate@work.test", "KATE@WOR\u212A.TEST"},
			{"\u00c9lise@example.org", "\u00e9lise@example.org", "\u00c9LISE@example.ORG"},
		} {
			et := newEngine(t, newStore(t), admissiontest.Abuse(nil))
			now := e0
			et.ok("203.0.113.9", u.victim, now)
			for i := 1; i <= 5; i++ {
				et.fail(fmt.Sprintf("198.51.%d.1", i), u.guessed, now)
			}
			if v := et.before("198.51.50.1", u.guessed, now); v.Delay == 0 {
				t.Fatalf("%s: the guessed username is not throttled (%+v): the test does not test", u.guessed, v)
			}
			if v := et.before("198.51.50.1", u.victim, now); v != (admission.AuthVerdict{}) {
				t.Errorf("%s throttled by the failures of %s: %+v", u.victim, u.guessed, v)
			}
			// ASCII case still folds, in the domain as in the local part.
			if v := et.before("198.51.50.1", u.upper, now); v.Delay == 0 {
				t.Errorf("%s: the guessed username in upper case is not throttled: %+v", u.upper, v)
			}
		}
	})
}

// ipBansOnly are the abuse options with only the per-address bans on,
// after n failures; the user, stuffing and distributed rules are off.
func ipBansOnly(n int) admission.AbuseOptions {
	return admissiontest.Abuse(func(o *admission.AbuseOptions) {
		o.IPBanAfter = n
		o.StuffingUsers = 0
		o.DistributedIPs = 0
		o.UserThrottleAfter = 0
	})
}
