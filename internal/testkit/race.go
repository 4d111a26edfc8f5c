//go:build race

package testkit

// Race is true when the race detector is on: it adds allocations, so
// tests that count them loosen their bounds.
const Race = true
