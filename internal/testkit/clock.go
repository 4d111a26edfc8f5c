// Package testkit holds helpers that tests of several packages share,
// one copy of each (DESIGN.md). It is imported by tests only.
package testkit

import (
	"sync"
	"time"
)

// Clock is a time source a test sets and advances, for the Now fields
// of the types under test (DESIGN.md: inject time). Its methods are safe
// for concurrent use; the zero Clock starts at the zero time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock that reads t until it is advanced.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
