package smtpd

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// DataBudget bounds the message data that the sessions sharing it hold
// at once, between the start of DATA and the spool's answer (see
// DataBudgetOptions). A session that would pass a bound reads its
// message to the end and answers 452 4.3.1 (insufficient system storage,
// RFC 3463), as it does at DATA when nothing is left for it; one that
// would pass the memory bound writes its message to the spool's file
// from then on. Share one DataBudget among the Servers of a process; a
// nil *DataBudget sets no bound. Its methods are safe for concurrent
// use.
type DataBudget struct {
	o                DataBudgetOptions
	inFlight, memory atomic.Int64
	mInFlight, mMem  prometheus.Gauge // metrics.DataBytes

	mu     sync.Mutex
	byAddr map[netip.Prefix]int64 // bytes in flight per client address
	byNet  map[netip.Prefix]int64 // per client network
}

// DataBudgetOptions are the bounds of a DataBudget, in bytes; 0 or less
// means no bound.
type DataBudgetOptions struct {
	// InFlight bounds the message data of all sessions, in memory and
	// in the spool's files.
	InFlight int64
	// Memory bounds the part of it in memory (past each session's
	// first memoryFree bytes).
	Memory int64
	// PerAddress and PerNetwork bound the share of InFlight that the
	// sessions of clients that did not log in hold, from one address
	// (an IPv6 /64 counts as one) and from one network (an IPv4 /24, an
	// IPv6 /48): a few addresses cannot take the whole budget, and with
	// it every other client's mail.
	PerAddress, PerNetwork int64
}

// NewDataBudget returns a DataBudget with the bounds of o.
func NewDataBudget(o DataBudgetOptions) *DataBudget {
	return &DataBudget{o: o, byAddr: map[netip.Prefix]int64{}, byNet: map[netip.Prefix]int64{},
		mInFlight: metrics.DataBytes.WithLabelValues("in_flight"), mMem: metrics.DataBytes.WithLabelValues("memory")}
}

// budgetChunk is the step in which a session takes its share of the
// in-flight budget: a few operations per 64 KiB of message.
const budgetChunk = 64 << 10

// clientKeys returns the address and the network a client counts under.
func clientKeys(a netip.Addr) (addr, network netip.Prefix) {
	a = a.Unmap()
	if a.Is4() {
		addr, _ = a.Prefix(32)
		network, _ = a.Prefix(24)
		return addr, network
	}
	addr, _ = a.Prefix(64)
	network, _ = a.Prefix(48)
	return addr, network
}

// takeFlight takes n bytes of the in-flight budget, and of the shares of
// client when it is valid, unless that passes a bound.
func (b *DataBudget) takeFlight(n int64, client netip.Addr) bool {
	if b == nil || n == 0 {
		return true
	}
	if client.IsValid() && (b.o.PerAddress > 0 || b.o.PerNetwork > 0) {
		ak, nk := clientKeys(client)
		b.mu.Lock()
		if b.o.PerAddress > 0 && b.byAddr[ak]+n > b.o.PerAddress || b.o.PerNetwork > 0 && b.byNet[nk]+n > b.o.PerNetwork {
			b.mu.Unlock()
			return false
		}
		b.byAddr[ak] += n
		b.byNet[nk] += n
		b.mu.Unlock()
		if !b.take(n, false) {
			b.giveShares(n, ak, nk)
			return false
		}
		return true
	}
	return b.take(n, false)
}

// giveFlight gives back n bytes taken with takeFlight for client.
func (b *DataBudget) giveFlight(n int64, client netip.Addr) {
	if b == nil || n == 0 {
		return
	}
	if client.IsValid() && (b.o.PerAddress > 0 || b.o.PerNetwork > 0) {
		ak, nk := clientKeys(client)
		b.giveShares(n, ak, nk)
	}
	b.give(n, false)
}

// giveShares gives n bytes back to the shares of an address and a
// network, forgetting those that drop to nothing.
func (b *DataBudget) giveShares(n int64, ak, nk netip.Prefix) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byAddr[ak] -= n; b.byAddr[ak] <= 0 {
		delete(b.byAddr, ak)
	}
	if b.byNet[nk] -= n; b.byNet[nk] <= 0 {
		delete(b.byNet, nk)
	}
}

// take takes n bytes of the in-flight budget (memory set: of the memory
// budget) unless that passes its bound.
func (b *DataBudget) take(n int64, memory bool) bool {
	if b == nil || n == 0 {
		return true
	}
	c, max, g := &b.inFlight, b.o.InFlight, b.mInFlight
	if memory {
		c, max, g = &b.memory, b.o.Memory, b.mMem
	}
	if v := c.Add(n); max > 0 && v > max {
		c.Add(-n)
		return false
	}
	g.Add(float64(n))
	return true
}

// give gives back n bytes taken with take.
func (b *DataBudget) give(n int64, memory bool) {
	if b == nil || n == 0 {
		return
	}
	c, g := &b.inFlight, b.mInFlight
	if memory {
		c, g = &b.memory, b.mMem
	}
	c.Add(-n)
	g.Sub(float64(n))
}

// exhausted reports whether the in-flight budget, or the share of
// client when it is valid, lacks room for the first chunk of a message.
func (b *DataBudget) exhausted(client netip.Addr) bool {
	if b == nil {
		return false
	}
	if b.o.InFlight > 0 && b.inFlight.Load()+budgetChunk > b.o.InFlight {
		return true
	}
	if !client.IsValid() || b.o.PerAddress <= 0 && b.o.PerNetwork <= 0 {
		return false
	}
	ak, nk := clientKeys(client)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.o.PerAddress > 0 && b.byAddr[ak]+budgetChunk > b.o.PerAddress ||
		b.o.PerNetwork > 0 && b.byNet[nk]+budgetChunk > b.o.PerNetwork
}
