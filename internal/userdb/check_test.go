package userdb

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/sasl"
)

// Compile-time check: CheckPassword is a sasl.PasswordChecker.
var _ sasl.PasswordChecker = (*DB)(nil).CheckPassword

func TestCheckPassword(t *testing.T) { eachBackend(t, testCheckPassword) }

func testCheckPassword(t *testing.T, open opener) {
	clk := newClock()
	db := open(t, clk, func(o *Options) { o.CacheSize = -1 })
	if err := db.Add("Alice@Example.org", "s3cret"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"Alice@example.org", "alice@example.org", "ALICE@EXAMPLE.ORG"} {
		if user, err := db.CheckPassword(ctx, name, "s3cret"); err != nil || user != "Alice@example.org" {
			t.Errorf("CheckPassword(%s) = %q, %v", name, user, err)
		}
	}
	for _, tc := range []struct{ user, pw string }{
		{"alice@example.org", "S3cret"},
		{"alice@example.org", "s3cret "},
		{"alice@example.org", ""},
		{"alice@example.org", "s3cret\x00"},
		{"bob@example.org", "s3cret"},
		{"", "s3cret"},
		{"alice", "s3cret"},
		{strings.Repeat("a", 300), "s3cret"},
		{"alice@example.org", strings.Repeat("p", 2000)},
	} {
		user, err := db.CheckPassword(ctx, tc.user, tc.pw)
		if user != "" || !errors.Is(err, sasl.ErrInvalidCredentials) {
			t.Errorf("CheckPassword(%q, %q) = %q, %v; want ErrInvalidCredentials", tc.user, tc.pw, user, err)
		}
		if tc.pw != "" && strings.Contains(err.Error(), tc.pw) {
			t.Errorf("error %q repeats the password", err)
		}
	}
}

func TestUnknownUserCostsOneHash(t *testing.T) { eachBackend(t, testUnknownUserCostsOneHash) }

func testUnknownUserCostsOneHash(t *testing.T, open opener) {
	db := open(t, newClock(), nil)
	if err := db.Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct{ user, pw string }{
		{"nobody@example.org", "pw"},
		{"alice@example.org", "wrong"},
		{"alice@example.org", "pw"},
	} {
		before := db.hashCount()
		db.CheckPassword(ctx, tc.user, tc.pw)
		if n := db.hashCount() - before; n != 1 {
			t.Errorf("CheckPassword(%s, %s) computed %d hashes, want 1", tc.user, tc.pw, n)
		}
	}
}

func TestCredentialCache(t *testing.T) { eachBackend(t, testCredentialCache) }

func testCredentialCache(t *testing.T, open opener) {
	clk := newClock()
	db := open(t, clk, func(o *Options) { o.CacheTTL = time.Minute })
	if err := db.Add("alice@example.org", "old"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	check := func(user, pw string, wantOK bool, wantHashes int64) {
		t.Helper()
		before := db.hashCount()
		got, err := db.CheckPassword(ctx, user, pw)
		if (err == nil) != wantOK {
			t.Errorf("CheckPassword(%s, %s) = %q, %v; want ok=%v", user, pw, got, err, wantOK)
		}
		if n := db.hashCount() - before; n != wantHashes {
			t.Errorf("CheckPassword(%s, %s) computed %d hashes, want %d", user, pw, n, wantHashes)
		}
	}
	check("alice@example.org", "old", true, 1) // miss, verified, remembered
	check("alice@example.org", "old", true, 0) // hit
	check("ALICE@example.org", "old", true, 0) // same key: username case ignored
	check("alice@example.org", "wrong", false, 1)
	check("alice@example.org", "wrong", false, 1) // failures never remembered

	// A new password ends the cached one at once.
	if err := db.SetPassword("alice@example.org", "new"); err != nil {
		t.Fatal(err)
	}
	check("alice@example.org", "old", false, 1)
	check("alice@example.org", "new", true, 1)
	check("alice@example.org", "new", true, 0)

	// Expiry, by the injected clock.
	clk.Advance(59 * time.Second)
	check("alice@example.org", "new", true, 0)
	clk.Advance(time.Second)
	check("alice@example.org", "new", true, 1)
	check("alice@example.org", "new", true, 0)

	// Delete ends it too.
	if err := db.Delete("alice@example.org"); err != nil {
		t.Fatal(err)
	}
	check("alice@example.org", "new", false, 1)

	// Re-adding with the same password: a new salt, so a new hash; the old
	// entry (removed above anyway) could not match.
	if err := db.Add("alice@example.org", "new"); err != nil {
		t.Fatal(err)
	}
	check("alice@example.org", "new", true, 1)
}

func TestCacheDroppedByOtherProcessChange(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "users.json")
	server := openTest(t, path, clk, nil)
	cli := openTest(t, path, clk, nil)
	if err := cli.Add("alice@example.org", "old"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(reloadCheckInterval)
	ctx := context.Background()
	if _, err := server.CheckPassword(ctx, "alice@example.org", "old"); err != nil {
		t.Fatal(err)
	}
	if err := cli.SetPassword("alice@example.org", "new"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(reloadCheckInterval)
	before := server.hashCount()
	if _, err := server.CheckPassword(ctx, "alice@example.org", "old"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("old password after change in another DB: %v", err)
	}
	if server.hashCount() == before {
		t.Error("old password answered from the cache")
	}
	if _, err := server.CheckPassword(ctx, "alice@example.org", "new"); err != nil {
		t.Errorf("new password: %v", err)
	}
}

func TestCacheBounded(t *testing.T) { eachBackend(t, testCacheBounded) }

func testCacheBounded(t *testing.T, open opener) {
	db := open(t, newClock(), func(o *Options) { o.CacheSize = 3 })
	ctx := context.Background()
	for i := range 5 {
		addr := fmt.Sprintf("u%d@example.org", i)
		if err := db.Add(addr, "pw"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CheckPassword(ctx, addr, "pw"); err != nil {
			t.Fatal(err)
		}
		if n := db.cache.len(); n > 3 {
			t.Fatalf("cache holds %d entries, bound 3", n)
		}
	}
	// The most recent are kept, the oldest evicted.
	before := db.hashCount()
	db.CheckPassword(ctx, "u4@example.org", "pw")
	if db.hashCount() != before {
		t.Error("most recent entry evicted")
	}
	db.CheckPassword(ctx, "u0@example.org", "pw")
	if db.hashCount() != before+1 {
		t.Error("oldest entry not evicted")
	}
}

func TestHashSemaphore(t *testing.T) { eachBackend(t, testHashSemaphore) }

func testHashSemaphore(t *testing.T, open opener) {
	db := open(t, newClock(), func(o *Options) { o.MaxConcurrentHashes = 1 })
	if err := db.Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	// Take the only slot; a login must wait, and give up with its context.
	db.hasher.sem <- struct{}{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := db.CheckPassword(ctx, "alice@example.org", "pw"); !errors.Is(err, sasl.ErrTemporary) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CheckPassword with no slot = %v, want ErrTemporary", err)
	}
	if _, err := db.CheckPassword(ctx, "nobody@example.org", "pw"); !errors.Is(err, sasl.ErrTemporary) {
		t.Errorf("unknown user with no slot = %v, want ErrTemporary", err)
	}
	<-db.hasher.sem

	// Many concurrent logins never run more hashes than the bound.
	var mu sync.Mutex
	inFlight, peak := 0, 0
	h := &hasher{params: fastArgon2, sem: make(chan struct{}, 2), count: func() {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
	}}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { h.hash(context.Background(), "pw") })
	}
	wg.Wait()
	if peak > 2 {
		t.Errorf("%d hashes in flight, bound 2", peak)
	}
}

// TestOptions: the values a configuration key sets mean what they say.
// The Argon2 parameters and SCRAMIterations are required (they have no
// default here: Postern's configuration resolves them), and a CacheTTL
// of 0 is no cache. CacheSize, which no key sets, has its default.
func TestOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	good := Options{Argon2: fastArgon2, SCRAMIterations: MinSCRAMIterations}
	db, err := Open(path, good)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.hasher.params != fastArgon2 || db.scramIter != MinSCRAMIterations {
		t.Errorf("params %+v, SCRAM iterations %d", db.hasher.params, db.scramIter)
	}
	if db.cache != nil {
		t.Error("a cache with CacheTTL 0")
	}
	if cap(db.hasher.sem) < 1 {
		t.Error("semaphore")
	}
	withTTL := good
	withTTL.CacheTTL = time.Minute
	db2, err := Open(path, withTTL)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if db2.cache == nil || db2.cache.ttl != time.Minute || db2.cache.max != DefaultCacheSize {
		t.Error("cache of CacheTTL 1m and the default size")
	}
	for _, p := range []Argon2Params{{}, {Time: 0, MemoryKiB: 64, Threads: 1}, {Time: 1, MemoryKiB: 4, Threads: 1}, {Time: 1, MemoryKiB: 1 << 21, Threads: 1}} {
		if _, err := Open(path, Options{Argon2: p, SCRAMIterations: MinSCRAMIterations}); err == nil {
			t.Errorf("Open accepted %+v", p)
		}
	}
	if _, err := Open(path, Options{Argon2: fastArgon2}); err == nil {
		t.Error("Open accepted no SCRAMIterations")
	}
}

// benchDB opens a DB with the Argon2 parameters of Postern's default
// configuration, a cache of cacheSize and one user.
func benchDB(b *testing.B, cacheSize int) *DB {
	db, err := Open(filepath.Join(b.TempDir(), "users.json"), Options{CacheSize: cacheSize, CacheTTL: 5 * time.Minute,
		Argon2: Argon2Params{Time: 2, MemoryKiB: 64 * 1024, Threads: 1}, SCRAMIterations: 10000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if err := db.Add("alice@example.org", "correct horse battery staple"); err != nil {
		b.Fatal(err)
	}
	return db
}

func BenchmarkCheckPasswordCached(b *testing.B) {
	db := benchDB(b, 0)
	ctx := context.Background()
	if _, err := db.CheckPassword(ctx, "alice@example.org", "correct horse battery staple"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.CheckPassword(ctx, "alice@example.org", "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPasswordUncached(b *testing.B) {
	db := benchDB(b, -1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.CheckPassword(ctx, "alice@example.org", "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPasswordUnknownUser(b *testing.B) {
	db := benchDB(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		db.CheckPassword(ctx, "mallory@example.org", "guess")
	}
}

func TestWithSASL(t *testing.T) { eachBackend(t, testWithSASL) }

func testWithSASL(t *testing.T, open opener) {
	db := open(t, newClock(), nil)
	if err := db.Add("Alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := sasl.NewPlain(ctx, db.CheckPassword)
	if _, done, err := s.Next([]byte("alice@example.org\x00ALICE@example.org\x00pw")); !done || err != nil || s.Identity() != "Alice@example.org" {
		t.Errorf("PLAIN: done=%v err=%v identity=%q", done, err, s.Identity())
	}
	s = sasl.NewLogin(ctx, db.CheckPassword)
	s.Next(nil)
	s.Next([]byte("alice@example.org"))
	if _, done, err := s.Next([]byte("nope")); done || !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("LOGIN wrong password: done=%v err=%v", done, err)
	}
}

// TestConcurrentLoginsShareOneHash: a pool of clients logging in with the
// same credentials at once costs one Argon2 computation, not one each;
// different credentials are never joined.
func TestConcurrentLoginsShareOneHash(t *testing.T) { eachBackend(t, testConcurrentLoginsShareOneHash) }

func testConcurrentLoginsShareOneHash(t *testing.T, open opener) {
	db := open(t, newClock(), func(o *Options) { o.MaxConcurrentHashes = 1 })
	if err := db.Add("alice@example.org", "pw"); err != nil {
		t.Fatal(err)
	}
	db.hasher.sem <- struct{}{} // hold the only slot until every login is waiting
	before := db.hashCount()
	var wg sync.WaitGroup
	var good, bad atomic.Int32
	for i := range 16 {
		pw := "pw"
		if i%4 == 3 {
			pw = "wrong"
		}
		wg.Go(func() {
			if _, err := db.CheckPassword(context.Background(), "alice@example.org", pw); err == nil {
				good.Add(1)
			} else if errors.Is(err, sasl.ErrInvalidCredentials) {
				bad.Add(1)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	<-db.hasher.sem
	wg.Wait()
	if good.Load() != 12 || bad.Load() != 4 {
		t.Fatalf("%d accepted and %d refused, want 12 and 4", good.Load(), bad.Load())
	}
	// One hash for "pw"; "wrong" is never cached, so its four checks share
	// a hash only while they overlap: between 1 and 4.
	if n := db.hashCount() - before; n < 2 || n > 5 {
		t.Errorf("16 concurrent logins computed %d hashes, want 2 to 5", n)
	}
}
