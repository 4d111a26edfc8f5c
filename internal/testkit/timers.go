package testkit

import (
	"sync"
	"time"
)

// Timers is a fake clock for code that takes its timeouts as timers
// (an AfterFunc method, as milter.Timers): no timer fires until the test
// advances the clock past it. Its methods are safe for concurrent use.
type Timers struct {
	mu      sync.Mutex
	now     time.Duration
	pending []*fakeTimer
	changed chan struct{} // closed and replaced when a timer is armed
}

type fakeTimer struct {
	at      time.Duration
	f       func()
	stopped bool
}

// AfterFunc arms a timer that calls f in its own goroutine once the
// clock has advanced by d; stop disarms it and reports whether it had
// not fired.
func (t *Timers) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	t.mu.Lock()
	ft := &fakeTimer{at: t.now + d, f: f}
	t.pending = append(t.pending, ft)
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
	t.mu.Unlock()
	return func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		if ft.stopped {
			return false
		}
		ft.stopped = true
		return true
	}
}

// Armed returns the durations of the timers armed and not yet fired or
// stopped, from now.
func (t *Timers) Armed() []time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []time.Duration
	for _, ft := range t.pending {
		if !ft.stopped {
			out = append(out, ft.at-t.now)
		}
	}
	return out
}

// WaitArmed waits until a timer of duration d (from now) is armed, or
// until timeout passes on the real clock; it reports whether it was.
func (t *Timers) WaitArmed(d, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		t.mu.Lock()
		for _, ft := range t.pending {
			if !ft.stopped && ft.at-t.now == d {
				t.mu.Unlock()
				return true
			}
		}
		if t.changed == nil {
			t.changed = make(chan struct{})
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return false
		}
	}
}

// Advance moves the clock forward by d and fires the timers that are
// due.
func (t *Timers) Advance(d time.Duration) {
	t.mu.Lock()
	t.now += d
	var due []func()
	keep := t.pending[:0]
	for _, ft := range t.pending {
		switch {
		case ft.stopped:
		case ft.at <= t.now:
			ft.stopped = true
			due = append(due, ft.f)
		default:
			keep = append(keep, ft)
		}
	}
	t.pending = keep
	t.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// After is time.After on this clock, for the After fields of the types
// under test: the channel receives once the clock has advanced by d.
func (t *Timers) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	t.AfterFunc(d, func() { ch <- time.Time{}.Add(d) })
	return ch
}
