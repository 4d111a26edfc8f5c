// Package storetest is the conformance suite for admission.Store: every
// implementation (the memory store, the Redis store) runs Run from its
// tests, so that the gate and the abuse engine behave the same on both.
//
// The suite injects time. Its clock starts at the wall clock truncated to
// the second and only moves forward, so a store that also sets real
// expiries (for garbage collection) keeps entries at least as long as the
// suite needs them; liveness must be decided against the injected time.
// Entries are live while now is strictly before their expiry; stores keep
// times to the millisecond at least.
package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/admission"
)

// Run runs the conformance suite against stores made by newStore, one
// fresh (empty) store per subtest.
func Run(t *testing.T, newStore func(t *testing.T) admission.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s admission.Store, now time.Time)
	}{
		{"IncrFixedWindow", testIncrFixedWindow},
		{"IncrKeysIndependent", testIncrKeysIndependent},
		{"CountAbsentLiveExpired", testCount},
		{"SetMembers", testSetMembers},
		{"SetExpiryPushedByAdd", testSetExpiry},
		{"BanSingleAddress", testBanSingle},
		{"BanPrefixContainment", testBanPrefix},
		{"BanIPv6Prefix", testBanIPv6},
		{"BanLongestLasting", testBanLongest},
		{"BanExpiry", testBanExpiry},
		{"BanReplaceAndDelete", testBanReplaceDelete},
		{"BanFieldsRoundTrip", testBanFields},
		{"StrikesOutliveBans", testStrikes},
		{"ConcurrentIncr", testConcurrentIncr},
		{"KeysAnyText", testKeysAnyText},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, s, time.Now().Truncate(time.Second))
		})
	}
}

// must(f())(t) returns f's value, failing t on f's error.
func must[T any](v T, err error) func(t *testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func incr(t *testing.T, s admission.Store, key string, n int64, now time.Time, w time.Duration) int64 {
	t.Helper()
	return must(s.Incr(context.Background(), key, n, now, w))(t)
}

func count(t *testing.T, s admission.Store, key string, now time.Time) int64 {
	t.Helper()
	return must(s.Count(context.Background(), key, now))(t)
}

func testIncrFixedWindow(t *testing.T, s admission.Store, t0 time.Time) {
	const w = 10 * time.Second
	if got := incr(t, s, "k", 1, t0, w); got != 1 {
		t.Fatalf("first Incr = %d, want 1", got)
	}
	if got := incr(t, s, "k", 2, t0.Add(5*time.Second), w); got != 3 {
		t.Fatalf("second Incr = %d, want 3", got)
	}
	// The window is fixed at the first increment: the one at t0+5s did not
	// extend it, so it ends at t0+10s.
	if got := incr(t, s, "k", 1, t0.Add(w-time.Millisecond), w); got != 4 {
		t.Fatalf("Incr just before the window ends = %d, want 4", got)
	}
	if got := count(t, s, "k", t0.Add(w-time.Millisecond)); got != 4 {
		t.Fatalf("Count just before the window ends = %d, want 4", got)
	}
	if got := count(t, s, "k", t0.Add(w)); got != 0 {
		t.Fatalf("Count when the window ends = %d, want 0", got)
	}
	// A new window starts at the next increment.
	t1 := t0.Add(w + 3*time.Second)
	if got := incr(t, s, "k", 5, t1, w); got != 5 {
		t.Fatalf("Incr in a new window = %d, want 5", got)
	}
	if got := count(t, s, "k", t1.Add(w-time.Millisecond)); got != 5 {
		t.Fatalf("Count at the new window's end - 1ms = %d, want 5", got)
	}
	if got := count(t, s, "k", t1.Add(w)); got != 0 {
		t.Fatalf("Count at the new window's end = %d, want 0", got)
	}
}

func testIncrKeysIndependent(t *testing.T, s admission.Store, t0 time.Time) {
	incr(t, s, "a", 3, t0, time.Minute)
	incr(t, s, "b", 1, t0, time.Second)
	if got := count(t, s, "a", t0); got != 3 {
		t.Errorf("Count(a) = %d, want 3", got)
	}
	if got := count(t, s, "b", t0); got != 1 {
		t.Errorf("Count(b) = %d, want 1", got)
	}
	// b's short window ends; a's does not.
	if got := count(t, s, "b", t0.Add(2*time.Second)); got != 0 {
		t.Errorf("Count(b) after its window = %d, want 0", got)
	}
	if got := count(t, s, "a", t0.Add(2*time.Second)); got != 3 {
		t.Errorf("Count(a) within its window = %d, want 3", got)
	}
}

func testCount(t *testing.T, s admission.Store, t0 time.Time) {
	if got := count(t, s, "absent", t0); got != 0 {
		t.Errorf("Count(absent) = %d, want 0", got)
	}
	incr(t, s, "c", 7, t0, time.Hour)
	if got := count(t, s, "c", t0.Add(59*time.Minute)); got != 7 {
		t.Errorf("Count(live) = %d, want 7", got)
	}
	if got := count(t, s, "c", t0.Add(61*time.Minute)); got != 0 {
		t.Errorf("Count(expired) = %d, want 0", got)
	}
	// Count does not create or change the counter.
	if got := incr(t, s, "absent", 1, t0, time.Hour); got != 1 {
		t.Errorf("Incr after Count on an absent key = %d, want 1", got)
	}
}

func testSetMembers(t *testing.T, s admission.Store, t0 time.Time) {
	ctx := context.Background()
	add := func(m string) int64 {
		t.Helper()
		return must(s.AddMember(ctx, "set", m, t0, time.Hour))(t)
	}
	if got := add("alice"); got != 1 {
		t.Fatalf("AddMember(alice) = %d, want 1", got)
	}
	if got := add("bob"); got != 2 {
		t.Fatalf("AddMember(bob) = %d, want 2", got)
	}
	if got := add("alice"); got != 2 {
		t.Fatalf("AddMember(alice) again = %d, want 2 (no duplicates)", got)
	}
	for m, want := range map[string]bool{"alice": true, "bob": true, "carol": false} {
		if got := must(s.HasMember(ctx, "set", m, t0))(t); got != want {
			t.Errorf("HasMember(%s) = %v, want %v", m, got, want)
		}
	}
	if got := must(s.HasMember(ctx, "other", "alice", t0))(t); got {
		t.Error("HasMember on another set = true")
	}
	if got := must(s.AddMember(ctx, "set-2", "alice", t0, time.Hour))(t); got != 1 {
		t.Errorf("AddMember(another set) = %d, want 1", got)
	}
}

func testSetExpiry(t *testing.T, s admission.Store, t0 time.Time) {
	ctx := context.Background()
	const ttl = 10 * time.Second
	must(s.AddMember(ctx, "set", "a", t0, ttl))(t)
	must(s.AddMember(ctx, "set", "b", t0.Add(8*time.Second), ttl))(t)
	// The second add pushed the expiry to t0+18s, for every member.
	at := t0.Add(18*time.Second - time.Millisecond)
	for _, m := range []string{"a", "b"} {
		if !must(s.HasMember(ctx, "set", m, at))(t) {
			t.Errorf("HasMember(%s) just before the pushed expiry = false", m)
		}
	}
	if must(s.HasMember(ctx, "set", "a", t0.Add(18*time.Second)))(t) {
		t.Error("HasMember(a) at the expiry = true")
	}
	// After expiry the set starts empty.
	if got := must(s.AddMember(ctx, "set", "c", t0.Add(20*time.Second), ttl))(t); got != 1 {
		t.Errorf("AddMember after expiry = %d, want 1", got)
	}
	if must(s.HasMember(ctx, "set", "a", t0.Add(20*time.Second)))(t) {
		t.Error("HasMember(a) in the new set = true")
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func banned(t *testing.T, s admission.Store, a string, now time.Time) (admission.Ban, bool) {
	t.Helper()
	b, ok, err := s.Banned(context.Background(), addr(a), now)
	if err != nil {
		t.Fatal(err)
	}
	return b, ok
}

func put(t *testing.T, s admission.Store, b admission.Ban) {
	t.Helper()
	if err := s.PutBan(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func testBanSingle(t *testing.T, s admission.Store, t0 time.Time) {
	if _, ok := banned(t, s, "192.0.2.1", t0); ok {
		t.Fatal("Banned on an empty store")
	}
	put(t, s, admission.Ban{Prefix: pfx("192.0.2.1/32"), Until: t0.Add(time.Hour), Reason: "test", Created: t0})
	if b, ok := banned(t, s, "192.0.2.1", t0); !ok || b.Prefix != pfx("192.0.2.1/32") {
		t.Errorf("Banned(192.0.2.1) = %v, %v; want the /32 ban", b, ok)
	}
	for _, a := range []string{"192.0.2.2", "192.0.2.0", "2001:db8::1"} {
		if b, ok := banned(t, s, a, t0); ok {
			t.Errorf("Banned(%s) = %v; want no ban", a, b)
		}
	}
}

func testBanPrefix(t *testing.T, s admission.Store, t0 time.Time) {
	put(t, s, admission.Ban{Prefix: pfx("198.51.100.0/24"), Until: t0.Add(time.Hour), Reason: "prefix", Created: t0})
	for _, a := range []string{"198.51.100.0", "198.51.100.77", "198.51.100.255"} {
		if b, ok := banned(t, s, a, t0); !ok || b.Prefix != pfx("198.51.100.0/24") {
			t.Errorf("Banned(%s) = %v, %v; want the /24 ban", a, b, ok)
		}
	}
	for _, a := range []string{"198.51.101.1", "198.51.99.255"} {
		if _, ok := banned(t, s, a, t0); ok {
			t.Errorf("Banned(%s) = true outside the /24", a)
		}
	}
}

func testBanIPv6(t *testing.T, s admission.Store, t0 time.Time) {
	put(t, s, admission.Ban{Prefix: pfx("2001:db8:1:2::/64"), Until: t0.Add(time.Hour), Created: t0})
	put(t, s, admission.Ban{Prefix: pfx("2001:db8:aa::/48"), Until: t0.Add(time.Hour), Created: t0})
	cases := map[string]string{
		"2001:db8:1:2::1":         "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:1:2:3": "2001:db8:1:2::/64",
		"2001:db8:aa:ffff::9":     "2001:db8:aa::/48",
		"2001:db8:1:3::1":         "",
		"2001:db8:ab::1":          "",
		"192.0.2.1":               "",
		"2001:db8:aa:0:0:0:0:0":   "2001:db8:aa::/48",
	}
	for a, want := range cases {
		b, ok, err := s.Banned(context.Background(), addr(a), t0)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if ok {
				t.Errorf("Banned(%s) = %v; want no ban", a, b.Prefix)
			}
			continue
		}
		if !ok || b.Prefix != pfx(want) {
			t.Errorf("Banned(%s) = %v, %v; want %s", a, b.Prefix, ok, want)
		}
	}
}

func testBanLongest(t *testing.T, s admission.Store, t0 time.Time) {
	put(t, s, admission.Ban{Prefix: pfx("203.0.113.5/32"), Until: t0.Add(2 * time.Hour), Reason: "address", Created: t0})
	put(t, s, admission.Ban{Prefix: pfx("203.0.113.0/24"), Until: t0.Add(time.Hour), Reason: "prefix", Created: t0})
	if b, _ := banned(t, s, "203.0.113.5", t0); b.Reason != "address" {
		t.Errorf("Banned = %q; want the longest-lasting ban (address, 2h)", b.Reason)
	}
	if b, _ := banned(t, s, "203.0.113.6", t0); b.Reason != "prefix" {
		t.Errorf("Banned(.6) = %q; want the prefix ban", b.Reason)
	}
	// A longer prefix ban now outlasts the address ban.
	put(t, s, admission.Ban{Prefix: pfx("203.0.113.0/24"), Until: t0.Add(3 * time.Hour), Reason: "prefix2", Created: t0})
	if b, _ := banned(t, s, "203.0.113.5", t0); b.Reason != "prefix2" {
		t.Errorf("Banned = %q; want prefix2 (3h)", b.Reason)
	}
	// Among several overlapping bans, the longest-lasting wins every time.
	put(t, s, admission.Ban{Prefix: pfx("203.0.0.0/16"), Until: t0.Add(4 * time.Hour), Reason: "/16", Created: t0})
	put(t, s, admission.Ban{Prefix: pfx("203.0.0.0/8"), Until: t0.Add(90 * time.Minute), Reason: "/8", Created: t0})
	put(t, s, admission.Ban{Prefix: pfx("203.0.113.0/28"), Until: t0.Add(time.Minute), Reason: "/28", Created: t0})
	for i := 0; i < 20; i++ {
		if b, _ := banned(t, s, "203.0.113.5", t0); b.Reason != "/16" {
			t.Fatalf("Banned among 5 overlapping bans = %q; want /16 (4h)", b.Reason)
		}
	}
	if err := s.PutBan(context.Background(), admission.Ban{Prefix: pfx("203.0.0.0/16"), Until: t0.Add(time.Minute), Reason: "/16", Created: t0}); err != nil {
		t.Fatal(err)
	}
	// At 2h30 the address ban and the /8 have ended; the /24 still holds.
	if b, ok := banned(t, s, "203.0.113.5", t0.Add(150*time.Minute)); !ok || b.Reason != "prefix2" {
		t.Errorf("Banned at 2h30 = %q, %v; want prefix2", b.Reason, ok)
	}
}

func testBanExpiry(t *testing.T, s admission.Store, t0 time.Time) {
	until := t0.Add(10 * time.Minute)
	put(t, s, admission.Ban{Prefix: pfx("192.0.2.9/32"), Until: until, Created: t0})
	if _, ok := banned(t, s, "192.0.2.9", until.Add(-time.Millisecond)); !ok {
		t.Error("not banned just before Until")
	}
	if _, ok := banned(t, s, "192.0.2.9", until); ok {
		t.Error("banned at Until")
	}
	bans := must(s.Bans(context.Background(), until.Add(-time.Millisecond)))(t)
	if len(bans) != 1 {
		t.Errorf("Bans before Until = %d bans, want 1", len(bans))
	}
	bans = must(s.Bans(context.Background(), until))(t)
	if len(bans) != 0 {
		t.Errorf("Bans at Until = %v, want none", bans)
	}
}

func testBanReplaceDelete(t *testing.T, s admission.Store, t0 time.Time) {
	ctx := context.Background()
	put(t, s, admission.Ban{Prefix: pfx("192.0.2.0/24"), Until: t0.Add(time.Hour), Reason: "one", Created: t0})
	put(t, s, admission.Ban{Prefix: pfx("192.0.2.0/24"), Until: t0.Add(30 * time.Minute), Reason: "two", Created: t0})
	bans := must(s.Bans(ctx, t0))(t)
	if len(bans) != 1 || bans[0].Reason != "two" || !bans[0].Until.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("Bans after replace = %+v; want the one ban \"two\" until +30m", bans)
	}
	put(t, s, admission.Ban{Prefix: pfx("192.0.2.7/32"), Until: t0.Add(time.Hour), Created: t0})
	// DeleteBan removes exactly the prefix given.
	if ok := must(s.DeleteBan(ctx, pfx("192.0.2.8/32")))(t); ok {
		t.Error("DeleteBan of an address only covered by a prefix ban = true")
	}
	if ok := must(s.DeleteBan(ctx, pfx("192.0.2.0/24")))(t); !ok {
		t.Error("DeleteBan(/24) = false")
	}
	if ok := must(s.DeleteBan(ctx, pfx("192.0.2.0/24")))(t); ok {
		t.Error("DeleteBan(/24) twice = true")
	}
	if _, ok := banned(t, s, "192.0.2.8", t0); ok {
		t.Error("192.0.2.8 still banned after DeleteBan(/24)")
	}
	if _, ok := banned(t, s, "192.0.2.7", t0); !ok {
		t.Error("192.0.2.7 not banned: DeleteBan(/24) removed its /32 ban")
	}
	bans = must(s.Bans(ctx, t0))(t)
	if len(bans) != 1 || bans[0].Prefix != pfx("192.0.2.7/32") {
		t.Errorf("Bans = %+v; want only 192.0.2.7/32", bans)
	}
}

func testBanFields(t *testing.T, s admission.Store, t0 time.Time) {
	want := []admission.Ban{
		{Prefix: pfx("192.0.2.44/32"), Until: t0.Add(40 * time.Minute), Reason: "auth: 10 failures in 10m0s", Created: t0.Add(-time.Minute), Strikes: 2},
		{Prefix: pfx("2001:db8:5::/48"), Until: t0.Add(24 * time.Hour), Reason: "manual: spam run", Created: t0, Strikes: 1, Manual: true},
	}
	for _, b := range want {
		put(t, s, b)
	}
	got := must(s.Bans(context.Background(), t0))(t)
	if len(got) != len(want) {
		t.Fatalf("Bans = %d bans, want %d", len(got), len(want))
	}
	byPrefix := map[netip.Prefix]admission.Ban{}
	for _, b := range got {
		byPrefix[b.Prefix] = b
	}
	for _, w := range want {
		g, ok := byPrefix[w.Prefix]
		if !ok {
			t.Errorf("Bans misses %v", w.Prefix)
			continue
		}
		if err := sameBan(g, w); err != nil {
			t.Errorf("Bans: %v", err)
		}
		b, ok := banned(t, s, w.Prefix.Addr().String(), t0)
		if !ok {
			t.Errorf("Banned(%v) = false", w.Prefix.Addr())
		} else if err := sameBan(b, w); err != nil {
			t.Errorf("Banned: %v", err)
		}
	}
}

func sameBan(g, w admission.Ban) error {
	if g.Prefix != w.Prefix || !g.Until.Equal(w.Until) || g.Reason != w.Reason ||
		!g.Created.Equal(w.Created) || g.Strikes != w.Strikes || g.Manual != w.Manual {
		return fmt.Errorf("got %+v, want %+v", g, w)
	}
	return nil
}

func testStrikes(t *testing.T, s admission.Store, t0 time.Time) {
	ctx := context.Background()
	p := pfx("192.0.2.50/32")
	if n := must(s.Strikes(ctx, p))(t); n != 0 {
		t.Fatalf("Strikes of a never-banned prefix = %d", n)
	}
	put(t, s, admission.Ban{Prefix: p, Until: t0.Add(time.Minute), Created: t0, Strikes: 1})
	if n := must(s.Strikes(ctx, p))(t); n != 1 {
		t.Errorf("Strikes after the first ban = %d, want 1", n)
	}
	put(t, s, admission.Ban{Prefix: p, Until: t0.Add(3 * time.Minute), Created: t0.Add(2 * time.Minute), Strikes: 2})
	// The ban has ended (and the store may have swept it); the strikes
	// remain so the next ban can last longer.
	later := t0.Add(2 * time.Hour)
	if _, ok := banned(t, s, "192.0.2.50", later); ok {
		t.Error("still banned after Until")
	}
	if bans := must(s.Bans(ctx, later))(t); len(bans) != 0 {
		t.Errorf("Bans after Until = %v", bans)
	}
	// An unrelated write moves the store's clock (a lazy sweep may run).
	incr(t, s, "tick", 1, later, time.Second)
	if n := must(s.Strikes(ctx, p))(t); n != 2 {
		t.Errorf("Strikes after the ban ended = %d, want 2", n)
	}
	if n := must(s.Strikes(ctx, pfx("192.0.2.0/24")))(t); n != 0 {
		t.Errorf("Strikes of the enclosing /24 = %d, want 0 (strikes are per exact prefix)", n)
	}
}

func testConcurrentIncr(t *testing.T, s admission.Store, t0 time.Time) {
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				if _, err := s.Incr(context.Background(), "par", 1, t0, time.Minute); err != nil {
					errs <- err
					return
				}
				if _, err := s.AddMember(context.Background(), "parset", fmt.Sprint(j), t0, time.Minute); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := count(t, s, "par", t0); got != workers*each {
		t.Errorf("Count after %d concurrent Incr = %d", workers*each, got)
	}
	if got := must(s.AddMember(context.Background(), "parset", "0", t0, time.Minute))(t); got != each {
		t.Errorf("set size after concurrent adds = %d, want %d", got, each)
	}
}

// testKeysAnyText: the abuse engine builds keys and members from what
// clients claim (usernames of up to 256 octets, in any script, with any
// punctuation) joined with networks ("auth:checks:192.0.2.0/24|alice").
// Keys and members that differ in any octet are distinct; none is
// changed, cut or merged with another.
func testKeysAnyText(t *testing.T, s admission.Store, t0 time.Time) {
	ctx := context.Background()
	long := strings.Repeat("é|:/ *?[]{}", 30) // 330 octets and more
	keys := []string{
		"auth:checks:192.0.2.0/24|alice", "auth:checks:192.0.2.0/24|alice ", "auth:checks:192.0.2.0/24|Alice",
		"auth:checks:192.0.2.0/24|ali|ce", "auth:checks:2001:db8::/48|alice", "auth:nets:" + long, "auth:nets:" + long + "x",
		"auth:nets:e\u0301", "auth:nets:é", "auth:nets:\x00", "auth:nets:\r\n",
	}
	for i, k := range keys {
		if got := incr(t, s, k, int64(i+1), t0, time.Minute); got != int64(i+1) {
			t.Errorf("Incr(%q) = %d, want %d: the key collides with another", k, got, i+1)
		}
		if got := must(s.AddMember(ctx, k, k, t0, time.Minute))(t); got != 1 {
			t.Errorf("AddMember(%q) = %d, want 1: the set collides with another", k, got)
		}
	}
	for i, k := range keys {
		if got := count(t, s, k, t0); got != int64(i+1) {
			t.Errorf("Count(%q) = %d, want %d", k, got, i+1)
		}
		for j, m := range keys {
			if got := must(s.HasMember(ctx, k, m, t0))(t); got != (i == j) {
				t.Errorf("HasMember(%q, %q) = %v, want %v", k, m, got, i == j)
			}
		}
	}
}
