package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, MaxPercent},
		{1 * mb, MaxPercent}, // 6400 %, capped
		{3*mb + mb/2, 1850},  // 1828.6, rounded up to 25
		{8 * mb, 800},        // 64/8
		{10 * mb, 650},       // 640, rounded up
		{30 * mb, 225},       // 213.3, rounded up
		{64*mb - 1, 125},     // just under the headroom
		{64 * mb, 100},       // the live heap is the headroom
		{100 * mb, 75},       // 64, rounded up: the headroom, not the live heap again
		{128*mb - 1, 75},     // 50.0..., rounded up
		{128 * mb, MinPercent},
		{500 * mb, MinPercent}, // half the live heap beyond twice the headroom
	} {
		if got := percentFor(c.live, 64*mb); got != c.want {
			t.Errorf("percentFor(%d) = %d, want %d", c.live, got, c.want)
		}
	}
}

// TestGCTunerFollowsCollections checks that the tuner runs after real
// collections and sets the percent the live heap calls for.
func TestGCTunerFollowsCollections(t *testing.T) {
	var mu sync.Mutex
	var set []int
	tu := &gcTuner{
		headroom: 1 << 40, // far above any live heap: the cap
		sample:   []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
		set:      func(p int) int { mu.Lock(); set = append(set, p); mu.Unlock(); return 100 },
		last:     100,
	}
	tu.arm()
	defer func() { tu.mu.Lock(); tu.stopped = true; tu.mu.Unlock() }()
	deadline := time.Now().Add(10 * time.Second)
	for tu.runs.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the tuner ran %d times after collections, want 3", tu.runs.Load())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	// The percent changes once (100 -> the cap) and is then left alone.
	if len(set) != 1 || set[0] != MaxPercent {
		t.Fatalf("percents set = %v, want [%d] once", set, MaxPercent)
	}
}

// gogc reads the current GOGC percent without setting it.
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func TestGCTunerLeavesGOGCAlone(t *testing.T) {
	t.Setenv("GOGC", "300")
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)
	stop := Start(64 << 20)
	runtime.GC()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	stop()
	if got := gogc(); got != 150 {
		t.Fatalf("with GOGC set, the tuner changed the percent to %d", got)
	}
}

func TestGCTunerStopRestores(t *testing.T) {
	t.Setenv("GOGC", "")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	stop := Start(1 << 40) // far above the live heap: the cap
	deadline := time.Now().Add(10 * time.Second)
	for gogc() != MaxPercent {
		if time.Now().After(deadline) {
			t.Fatalf("percent %d after collections, want %d", gogc(), MaxPercent)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if p := gogc(); p != 100 {
		t.Fatalf("after stop the percent is %d, want 100 restored", p)
	}
}

// The memory is released once after each busy period (collections ran)
// that a quiet period (none ran) follows, and only when at least
// MinRelease would go back: never on a server quiet since it started,
// never twice for one burst, not after the runtime's periodic collection
// of an idle server (little to give back), and again after the next burst.
func TestQuietWatchReleasesOnceAfterABurst(t *testing.T) {
	var q quietWatch
	const much, little = 40 << 20, MinRelease - 1
	for i, c := range []struct {
		cycles int64
		spare  uint64
		want   bool
	}{
		{0, much, false}, // quiet since the start: nothing to give back
		{0, much, false},
		{3, much, false}, // a burst
		{5, much, false}, // still busy
		{5, much, true},  // quiet after it: release
	} {
		if got := q.tick(c.cycles, c.spare); got != c.want {
			t.Fatalf("tick %d (%d cycles) = %v, want %v", i, c.cycles, got, c.want)
		}
	}
	q.released(6) // the release's own collection is no burst
	for i, c := range []struct {
		cycles int64
		spare  uint64
		want   bool
	}{
		{6, much, false},
		{6, much, false},
		{7, little, false}, // the runtime's periodic collection
		{7, little, false}, // quiet, but little would go back
		{7, much, false},
		{9, much, false}, // the next burst
		{9, much, true},
		{9, much, false},
	} {
		if got := q.tick(c.cycles, c.spare); got != c.want {
			t.Fatalf("after the release, tick %d (%d cycles) = %v, want %v", i, c.cycles, got, c.want)
		}
	}
}

// heapReader counts collections and sees garbage and free pages as
// spare memory.
func TestHeapReaderSeesSpareMemory(t *testing.T) {
	read := heapReader()
	runtime.GC()
	c0, _ := read()
	var keep [][]byte
	for range 64 {
		keep = append(keep, make([]byte, 1<<20))
	}
	keep = nil
	runtime.GC() // the 64 MB are now free pages, not live
	c1, spare := read()
	if c1 <= c0 {
		t.Errorf("collections %d then %d, want more", c0, c1)
	}
	if spare < MinRelease {
		t.Errorf("spare %d bytes after 64 MB became garbage, want at least %d", spare, MinRelease)
	}
	runtime.KeepAlive(keep)
}
