package redisstore

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"postern/internal/admission"
	"postern/internal/admission/storetest"
	"postern/internal/testkit"
)

// newTestStore returns a Store under a key prefix of its own, whose keys
// are deleted when the test ends.
func newTestStore(t testing.TB) *Store {
	t.Helper()
	return newStoreAt(t, testPrefix(t, ""))
}

// testPrefix is a key prefix of the test's own (with a suffix, for
// several views in one test).
func testPrefix(t testing.TB, suffix string) string {
	return fmt.Sprintf("postern-test:%d:%s:%s", os.Getpid(), t.Name(), suffix)
}

// newStoreAt returns a Store under prefix (several may share one) and
// deletes the prefix's keys when the test ends.
func newStoreAt(t testing.TB, prefix string) *Store {
	t.Helper()
	s, err := New(Options{Addr: testkit.RedisAddr(t), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		iter := s.rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			s.rdb.Del(ctx, iter.Val())
		}
		s.Close()
	})
	return s
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestNewNeedsAddr(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without Addr: no error")
	}
}

func TestPingFailsWithoutServer(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping of a closed port: no error")
	}
	if _, err := s.Incr(context.Background(), "k", 1, t0, time.Minute); err == nil {
		t.Fatal("Incr without a server: no error")
	}
}

// A Store on a shared client uses it, with its prefix as given ("" is
// none, not a default), and leaves it open on Close for its owner.
func TestSharedClient(t *testing.T) {
	rdb, err := NewClient(Options{Addr: testkit.RedisAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	prefix := testPrefix(t, "")
	s, err := New(Options{Client: rdb, Prefix: prefix, Addr: "127.0.0.1:1"}) // Addr ignored
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Del(ctx, prefix+"c:k")
	if _, err := s.Incr(ctx, "k", 1, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.HGet(ctx, prefix+"c:k", "v").Result(); err != nil || v != "1" {
		t.Fatalf("after the Store's Close, the shared client reads %q, %v; want the counter, 1", v, err)
	}
	bare, err := New(Options{Client: rdb})
	if err != nil {
		t.Fatal(err)
	}
	key := fmt.Sprintf("postern-test-bare-%d", os.Getpid())
	defer rdb.Del(ctx, "c:"+key)
	if _, err := bare.Incr(ctx, key, 1, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, "c:"+key).Result(); err != nil || n != 1 {
		t.Fatalf("with Prefix \"\", the key is not c:%s (%d, %v)", key, n, err)
	}
}

func TestCounterWindow(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	for i, want := range []int64{1, 3, 6} {
		got, err := s.Incr(ctx, "fail:1.2.3.4", int64(i+1), t0.Add(time.Duration(i)*time.Second), time.Minute)
		if err != nil || got != want {
			t.Fatalf("Incr #%d = %d, %v; want %d", i, got, err, want)
		}
	}
	if n, _ := s.Count(ctx, "fail:1.2.3.4", t0.Add(time.Minute-time.Nanosecond)); n != 6 {
		t.Fatalf("Count just before the window ends = %d, want 6", n)
	}
	// A fixed window: it ends a minute after the first increment.
	if n, _ := s.Count(ctx, "fail:1.2.3.4", t0.Add(time.Minute)); n != 0 {
		t.Fatalf("Count at the window's end = %d, want 0", n)
	}
	if n, _ := s.Incr(ctx, "fail:1.2.3.4", 5, t0.Add(time.Minute), time.Minute); n != 5 {
		t.Fatalf("Incr after the window = %d, want a fresh 5", n)
	}
	ttl := s.rdb.PTTL(ctx, s.prefix+"c:fail:1.2.3.4").Val()
	if ttl <= time.Minute || ttl > time.Minute+GCSlack {
		t.Fatalf("Redis TTL = %v, want the window plus GCSlack", ttl)
	}
}

func TestSetExpiry(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	if n, _ := s.AddMember(ctx, "users:1.2.3.4", "a", t0, time.Hour); n != 1 {
		t.Fatalf("first AddMember = %d", n)
	}
	if n, _ := s.AddMember(ctx, "users:1.2.3.4", "a", t0, time.Hour); n != 1 {
		t.Fatalf("same member again = %d", n)
	}
	// A member named like the expiry field is still a member.
	if n, _ := s.AddMember(ctx, "users:1.2.3.4", "e", t0.Add(30*time.Minute), time.Hour); n != 2 {
		t.Fatalf("second member = %d", n)
	}
	if ok, _ := s.HasMember(ctx, "users:1.2.3.4", "a", t0.Add(89*time.Minute)); !ok {
		t.Fatal("the add pushed the expiry forward: a is still there")
	}
	if ok, _ := s.HasMember(ctx, "users:1.2.3.4", "b", t0); ok {
		t.Fatal("b was never added")
	}
	if ok, _ := s.HasMember(ctx, "users:1.2.3.4", "a", t0.Add(90*time.Minute)); ok {
		t.Fatal("the set expired")
	}
	if n, _ := s.AddMember(ctx, "users:1.2.3.4", "c", t0.Add(2*time.Hour), time.Hour); n != 1 {
		t.Fatalf("an expired set starts afresh: %d", n)
	}
}

func TestBanContainmentAnyLength(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	bans := []admission.Ban{
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Until: t0.Add(time.Hour), Reason: "manual /8", Manual: true},
		{Prefix: netip.MustParsePrefix("192.0.2.77/27"), Until: t0.Add(2 * time.Hour), Reason: "odd /27"},
		{Prefix: netip.MustParsePrefix("2001:db8:1234::/45"), Until: t0.Add(time.Hour), Reason: "v6 /45"},
		{Prefix: netip.MustParsePrefix("::ffff:198.51.100.9/128"), Until: t0.Add(time.Hour), Reason: "mapped"},
	}
	for _, b := range bans {
		b.Created = t0
		if err := s.PutBan(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		addr   string
		reason string
	}{
		{"10.200.3.4", "manual /8"},
		{"11.0.0.1", ""},
		{"192.0.2.64", "odd /27"},
		{"192.0.2.95", "odd /27"},
		{"192.0.2.96", ""},
		{"192.0.2.63", ""},
		{"2001:db8:1237:ffff::1", "v6 /45"},
		{"2001:db8:1238::1", ""},
		{"198.51.100.9", "mapped"},
		{"::ffff:198.51.100.9", "mapped"},
		{"::ffff:10.0.0.1", "manual /8"},
	} {
		b, ok, err := s.Banned(ctx, netip.MustParseAddr(c.addr), t0)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (c.reason != "") || b.Reason != c.reason {
			t.Errorf("Banned(%s) = %q, %v; want %q", c.addr, b.Reason, ok, c.reason)
		}
	}
	b, _, _ := s.Banned(ctx, netip.MustParseAddr("192.0.2.70"), t0)
	if b.Prefix != netip.MustParsePrefix("192.0.2.64/27") || !b.Until.Equal(t0.Add(2*time.Hour)) || !b.Created.Equal(t0) {
		t.Errorf("stored ban = %+v", b)
	}
	if _, ok, _ := s.Banned(ctx, netip.MustParseAddr("10.1.1.1"), t0.Add(time.Hour)); ok {
		t.Error("the /8 ban ended at Until")
	}
	list, err := s.Bans(ctx, t0)
	if err != nil || len(list) != 4 {
		t.Fatalf("Bans = %v, %v", list, err)
	}
	if list[0].Prefix.String() != "10.0.0.0/8" || list[3].Prefix.String() != "2001:db8:1230::/45" {
		t.Errorf("Bans order: %v", list)
	}
	if list, _ := s.Bans(ctx, t0.Add(90*time.Minute)); len(list) != 1 || list[0].Reason != "odd /27" {
		t.Errorf("Bans later = %v", list)
	}
}

func TestBanLongestWins(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	s.PutBan(ctx, admission.Ban{Prefix: netip.MustParsePrefix("203.0.113.5/32"), Until: t0.Add(time.Hour), Reason: "ip"})
	s.PutBan(ctx, admission.Ban{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Until: t0.Add(3 * time.Hour), Reason: "net"})
	b, ok, _ := s.Banned(ctx, netip.MustParseAddr("203.0.113.5"), t0)
	if !ok || b.Reason != "net" {
		t.Fatalf("Banned = %+v %v, want the longest-lasting", b, ok)
	}
	if ok, _ := s.DeleteBan(ctx, netip.MustParsePrefix("203.0.113.9/24")); !ok {
		t.Fatal("DeleteBan of the /24 (unmasked spelling) found nothing")
	}
	if ok, _ := s.DeleteBan(ctx, netip.MustParsePrefix("203.0.113.0/24")); ok {
		t.Fatal("second DeleteBan found a ban")
	}
	b, ok, _ = s.Banned(ctx, netip.MustParseAddr("203.0.113.5"), t0)
	if !ok || b.Reason != "ip" {
		t.Fatalf("after delete: %+v %v", b, ok)
	}
	if list, _ := s.Bans(ctx, t0); len(list) != 1 {
		t.Fatalf("Bans after delete = %v", list)
	}
}

func TestStrikesOutliveBans(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	p := netip.MustParsePrefix("198.51.100.0/24")
	if n, _ := s.Strikes(ctx, p); n != 0 {
		t.Fatalf("Strikes of a new prefix = %d", n)
	}
	s.PutBan(ctx, admission.Ban{Prefix: p, Created: t0, Until: t0.Add(10 * time.Minute), Strikes: 3})
	s.DeleteBan(ctx, p)
	if n, _ := s.Strikes(ctx, p); n != 3 {
		t.Fatalf("Strikes after delete = %d, want 3", n)
	}
	ttl := s.rdb.PTTL(ctx, s.prefix+"strikes:"+banID(p)).Val()
	if ttl < admission.StrikeMemory {
		t.Fatalf("strikes TTL = %v, want at least StrikeMemory", ttl)
	}
	banTTL := time.Duration(0)
	s.PutBan(ctx, admission.Ban{Prefix: p, Created: t0, Until: t0.Add(20 * time.Minute), Strikes: 4})
	banTTL = s.rdb.PTTL(ctx, s.prefix+"ban:"+banID(p)).Val()
	if banTTL <= 20*time.Minute || banTTL > 20*time.Minute+GCSlack {
		t.Fatalf("ban TTL = %v", banTTL)
	}
	if n, _ := s.Strikes(ctx, netip.MustParsePrefix("198.51.100.1/24")); n != 4 {
		t.Fatalf("Strikes = %d, want 4", n)
	}
}

// Two nodes with the same prefix share one view.
func TestNodesShareState(t *testing.T) {
	prefix := testPrefix(t, "shared:")
	a, b := newStoreAt(t, prefix), newStoreAt(t, prefix)
	ctx := context.Background()
	a.Incr(ctx, "conn:127.0.0.9", 2, t0, time.Minute)
	if n, _ := b.Incr(ctx, "conn:127.0.0.9", 1, t0, time.Minute); n != 3 {
		t.Fatalf("node b sees %d, want 3", n)
	}
	a.PutBan(ctx, admission.Ban{Prefix: netip.MustParsePrefix("127.0.0.9/32"), Until: t0.Add(time.Hour), Reason: "flood"})
	if ban, ok, _ := b.Banned(ctx, netip.MustParseAddr("127.0.0.9"), t0); !ok || ban.Reason != "flood" {
		t.Fatalf("node b: %+v %v", ban, ok)
	}
	a.AddMember(ctx, "good:alice", "127.0.0.9", t0, time.Hour)
	if ok, _ := b.HasMember(ctx, "good:alice", "127.0.0.9", t0); !ok {
		t.Fatal("node b does not see the member")
	}
	// Another prefix is another view.
	other := newTestStore(t)
	if _, ok, _ := other.Banned(ctx, netip.MustParseAddr("127.0.0.9"), t0); ok {
		t.Fatal("a store under another prefix sees the ban")
	}
}

func TestConcurrentIncr(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	const workers, each = 8, 50
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for range each {
				if _, err := s.Incr(ctx, "k", 1, t0, time.Minute); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range workers {
		<-done
	}
	if n, _ := s.Count(ctx, "k", t0); n != workers*each {
		t.Fatalf("Count = %d, want %d", n, workers*each)
	}
}

func BenchmarkBanned(b *testing.B) {
	s := newTestStore(b)
	ctx := context.Background()
	for i := range 100 {
		s.PutBan(ctx, admission.Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 32), Until: t0.Add(time.Hour)})
	}
	s.PutBan(ctx, admission.Ban{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Until: t0.Add(time.Hour)})
	addr := netip.MustParseAddr("10.0.5.1")
	b.ResetTimer()
	for b.Loop() {
		if _, ok, err := s.Banned(ctx, addr, t0); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// The Store conformance suite, against a real redis-server: the memory
// store runs the same one.
func TestConformance(t *testing.T) {
	testkit.RedisAddr(t)
	storetest.Run(t, func(t *testing.T) admission.Store { return newTestStore(t) })
}

// A node remembers a positive ban answer for BanCacheTTL: a lift made
// through another node shows here within it; one made through this node
// at once.
func TestBanCache(t *testing.T) {
	prefix := testPrefix(t, "cache:")
	a, b := newStoreAt(t, prefix), newStoreAt(t, prefix)
	ctx := context.Background()
	p := netip.MustParsePrefix("192.0.2.0/24")
	addr := netip.MustParseAddr("192.0.2.1")
	a.PutBan(ctx, admission.Ban{Prefix: p, Until: t0.Add(time.Hour), Reason: "flood"})
	if _, ok, _ := b.Banned(ctx, addr, t0); !ok {
		t.Fatal("node b: not banned")
	}
	a.DeleteBan(ctx, p)
	if _, ok, _ := b.Banned(ctx, addr, t0.Add(500*time.Millisecond)); !ok {
		t.Fatal("node b forgot its cached answer before BanCacheTTL")
	}
	if _, ok, _ := b.Banned(ctx, addr, t0.Add(DefaultBanCacheTTL)); ok {
		t.Fatal("node b still refuses after BanCacheTTL")
	}
	// Through the same node, a lift is seen at once.
	a.PutBan(ctx, admission.Ban{Prefix: p, Until: t0.Add(time.Hour), Reason: "flood"})
	if _, ok, _ := a.Banned(ctx, addr, t0); !ok {
		t.Fatal("node a: not banned")
	}
	a.DeleteBan(ctx, p)
	if _, ok, _ := a.Banned(ctx, addr, t0); ok {
		t.Fatal("node a: still banned after its own DeleteBan")
	}
	// Never past the ban's end.
	a.PutBan(ctx, admission.Ban{Prefix: p, Until: t0.Add(100 * time.Millisecond)})
	a.Banned(ctx, addr, t0)
	if _, ok, _ := a.Banned(ctx, addr, t0.Add(100*time.Millisecond)); ok {
		t.Fatal("the cache outlived the ban")
	}
}
