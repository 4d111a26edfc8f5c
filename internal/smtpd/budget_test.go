package smtpd

import (
	"net/netip"
	"sync"
	"testing"
)

// Concurrent takes and gives never pass a bound, and leave nothing held.
func TestDataBudgetConcurrent(t *testing.T) {
	o := DataBudgetOptions{InFlight: 40 * budgetChunk, Memory: 8 * budgetChunk, PerAddress: 6 * budgetChunk, PerNetwork: 15 * budgetChunk}
	b := NewDataBudget(o)
	clients := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("198.51.100.7"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("::ffff:192.0.2.1"), {},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	over := ""
	for g := range 32 {
		wg.Go(func() {
			c := clients[g%len(clients)]
			for i := range 500 {
				n := int64(1+(g*7+i)%5) * budgetChunk
				if b.takeFlight(n, c) {
					if v := b.inFlight.Load(); v > o.InFlight {
						mu.Lock()
						over = "in flight"
						mu.Unlock()
					}
					b.giveFlight(n, c)
				}
				if b.take(budgetChunk, true) {
					b.give(budgetChunk, true)
				}
			}
		})
	}
	wg.Wait()
	if over != "" {
		t.Errorf("%s bound passed", over)
	}
	if b.inFlight.Load() != 0 || b.memory.Load() != 0 || len(b.byAddr) != 0 || len(b.byNet) != 0 {
		t.Errorf("held after all gave back: %d, %d, %v, %v", b.inFlight.Load(), b.memory.Load(), b.byAddr, b.byNet)
	}
	// An IPv4-mapped address counts as its IPv4 address; an IPv6 /64 as
	// one address.
	a4, _ := clientKeys(netip.MustParseAddr("::ffff:192.0.2.1"))
	a6, n6 := clientKeys(netip.MustParseAddr("2001:db8:0:0:1::9"))
	if a4.String() != "192.0.2.1/32" || a6.String() != "2001:db8::/64" || n6.String() != "2001:db8::/48" {
		t.Errorf("keys %v %v %v", a4, a6, n6)
	}
}
