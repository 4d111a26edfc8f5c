// Package gctune sets the garbage collector's percent (GOGC) after
// every collection from the live heap, so that a server collects after
// a fixed headroom of growth rather than after growth by its live heap:
// less often while the live heap is small, and with less memory held
// between collections while it is large.
package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Headroom is the least the heap may grow between two garbage
// collections while serving. Go's default (GOGC=100) lets it grow by
// the live heap only: a server whose live heap is 10 MB collects every
// 10 MB allocated, and a loaded one allocates that in a few dozen
// sessions (each TLS connection's record buffers, the message, the
// delivery copy). With 64 MB of headroom a small server collects about
// six times less often, for at most 64 MB more of resident memory. A
// live heap larger than the headroom (10,000 idle sessions hold about
// 100 MB) grows by the headroom too, down to MinPercent: Go's default
// would let it grow by itself, memory resident after a burst of
// handshakes that buys nothing while the sessions are idle.
const Headroom = 64 << 20

// MaxPercent caps the GOGC the tuner sets, so that a nearly empty heap
// (just after start) does not make one collection wait for a growth of
// many times the live heap on top of the headroom.
const MaxPercent = 2000

// QuietPeriod is how long the collector must have been idle, after a
// period in which it ran, before the tuner gives the heap's free memory
// back to the operating system (debug.FreeOSMemory: one collection,
// then every free page). A burst of work (10,000 TLS handshakes) leaves
// tens of MB of garbage and free pages that Go would otherwise keep
// resident until the next bursts reuse them; a server under steady load
// collects every few seconds and is never released. The release runs
// once per burst, and only when at least MinRelease would go back:
// about one collection more per quiet spell, and none after the
// runtime's own periodic collection of an idle server.
const QuietPeriod = 5 * time.Second

// MinRelease is the least heap memory beyond the live heap (garbage and
// free pages still resident) that makes the release worth its
// collection.
const MinRelease = 16 << 20

// MinPercent is the least GOGC the tuner sets: a live heap of more than
// twice the headroom grows by half of itself between collections, so
// that the collector's work per allocated byte stays at most twice Go's
// default.
const MinPercent = 50

// gcTuner sets GOGC after every collection so that the next one comes
// after the heap grows by max(headroom, live heap/2). It does nothing when
// the operator set GOGC in the environment (that choice wins), and
// GOMEMLIMIT, when set, still bounds the heap as Go documents.
type gcTuner struct {
	headroom uint64
	mu       sync.Mutex // held by tune and by stop
	stopped  bool
	last     int              // the percent last set
	sample   []metrics.Sample // /gc/heap/live:bytes
	set      func(int) int    // debug.SetGCPercent
	// runs counts the collections the tuner saw (for tests).
	runs atomic.Int64
}

// quietWatch decides, every QuietPeriod, whether the heap's free memory
// should be given back: once after each period with collections that a
// period without follows, when at least MinRelease is spare.
type quietWatch struct {
	last int64 // the collections counted at the last tick or release
	busy bool  // collections ran in the period before the last tick
}

// tick takes the number of completed collections so far and the heap
// memory resident beyond the live heap, and reports whether to release
// now.
func (q *quietWatch) tick(cycles int64, spare uint64) bool {
	ran := cycles != q.last
	q.last = cycles
	release := q.busy && !ran && spare >= MinRelease
	q.busy = ran
	return release
}

// released records the collections counted after a release, whose own
// collection is not a burst.
func (q *quietWatch) released(cycles int64) {
	q.last, q.busy = cycles, false
}

// heapReader returns a function that reads the number of completed
// collections and the heap memory resident beyond the live heap (dead
// objects, unused span space, free pages not yet given back).
func heapReader() func() (cycles int64, spare uint64) {
	sample := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"}, // live and dead objects
		{Name: "/memory/classes/heap/unused:bytes"},  // in spans, unused
		{Name: "/memory/classes/heap/free:bytes"},    // free, still resident
	}
	return func() (cycles int64, spare uint64) {
		metrics.Read(sample)
		var v [5]uint64
		for i := range sample {
			if sample[i].Value.Kind() == metrics.KindUint64 {
				v[i] = sample[i].Value.Uint64()
			}
		}
		if held := v[2] + v[3] + v[4]; held > v[1] {
			spare = held - v[1]
		}
		return int64(v[0]), spare
	}
}

// releaseWhenQuiet gives the heap's free memory back to the operating
// system once after each burst (quietWatch), until done is closed.
func releaseWhenQuiet(done <-chan struct{}) {
	read := heapReader()
	count := func() int64 { c, _ := read(); return c }
	var q quietWatch
	q.released(count())
	tick := time.NewTicker(QuietPeriod)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		if q.tick(read()) {
			debug.FreeOSMemory()
			q.released(count())
		}
	}
}

// gcSentinel is an object that lives until the next collection, whose
// finalizer runs the tuner and makes a new one.
type gcSentinel struct{ t *gcTuner }

// Start starts the tuner unless GOGC is set in the environment: after
// every collection it sets the percent that lets the heap grow by
// max(headroom, live heap/2); Headroom is the server's. It also gives
// the heap's free memory back to the operating system once after each
// burst of work (QuietPeriod). The returned function stops it (and
// restores the percent it found).
func Start(headroom uint64) (stop func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	t := &gcTuner{
		headroom: headroom,
		sample:   []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
		set:      debug.SetGCPercent,
	}
	t.last = t.set(100)
	before := t.last
	t.arm()
	done := make(chan struct{})
	go releaseWhenQuiet(done)
	closeDone := sync.OnceFunc(func() { close(done) })
	return func() {
		closeDone()
		t.mu.Lock()
		defer t.mu.Unlock()
		t.stopped = true
		t.set(before)
	}
}

func (t *gcTuner) arm() {
	runtime.SetFinalizer(&gcSentinel{t: t}, func(s *gcSentinel) { s.t.tune() })
}

// tune runs after a collection (on the finalizer goroutine).
func (t *gcTuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.runs.Add(1)
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		if p := percentFor(t.sample[0].Value.Uint64(), t.headroom); p != t.last {
			t.set(p)
			t.last = p
		}
	}
	t.arm()
}

// percentFor returns the GOGC that lets a heap of live bytes grow by
// headroom before the next collection, between MinPercent and
// MaxPercent. Percents are rounded up to a multiple of 25, so that small
// changes of the live heap do not reset the pacer after every
// collection.
func percentFor(live, headroom uint64) int {
	if live == 0 {
		return MaxPercent
	}
	p := (headroom*100 + live - 1) / live
	p = (p + 24) / 25 * 25
	return int(min(max(p, MinPercent), MaxPercent))
}
