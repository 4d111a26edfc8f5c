package admission

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// StrikeMemory is how long a prefix's strike count is remembered after its
// last ban ended. Within it, a new ban of the prefix lasts longer (see
// Ban.Strikes); after it, the prefix starts again from no strikes. Stores
// use it to forget strikes, so that their memory stays bounded.
const StrikeMemory = 30 * 24 * time.Hour

// sweepEvery is how far the injected clock must move between two sweeps
// of expired entries in the memory store.
const sweepEvery = time.Minute

// MemoryStore is a Store that keeps its state in the memory of this
// process: the default, for a single node. Expired entries are removed
// lazily, at most once a minute of injected time, during later calls.
// The zero value is not usable; make one with NewMemoryStore.
type MemoryStore struct {
	mu        sync.Mutex
	counters  map[string]memCounter
	sets      map[string]*memSet
	bans      map[netip.Prefix]Ban
	banBits   map[int]int // prefix length -> number of bans of that length
	strikes   map[netip.Prefix]memStrikes
	lastSweep time.Time
}

type memCounter struct {
	value   int64
	expires time.Time
}

type memSet struct {
	members map[string]struct{}
	expires time.Time
}

type memStrikes struct {
	n       int
	forget  time.Time // StrikeMemory after the last ban's end
	lastEnd time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		counters: make(map[string]memCounter),
		sets:     make(map[string]*memSet),
		bans:     make(map[netip.Prefix]Ban),
		banBits:  make(map[int]int),
		strikes:  make(map[netip.Prefix]memStrikes),
	}
}

// sweep drops expired counters, sets, bans and forgotten strikes when the
// clock moved by sweepEvery since the last sweep. Called with mu held.
func (m *MemoryStore) sweep(now time.Time) {
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for k, c := range m.counters {
		if !now.Before(c.expires) {
			delete(m.counters, k)
		}
	}
	for k, s := range m.sets {
		if !now.Before(s.expires) {
			delete(m.sets, k)
		}
	}
	for p, b := range m.bans {
		if !now.Before(b.Until) {
			m.deleteBan(p)
		}
	}
	for p, s := range m.strikes {
		if !now.Before(s.forget) {
			delete(m.strikes, p)
		}
	}
}

// Incr implements Store.
func (m *MemoryStore) Incr(ctx context.Context, key string, n int64, now time.Time, window time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	c, ok := m.counters[key]
	if !ok || !now.Before(c.expires) {
		c = memCounter{expires: now.Add(window)}
	}
	c.value += n
	m.counters[key] = c
	return c.value, nil
}

// Count implements Store.
func (m *MemoryStore) Count(ctx context.Context, key string, now time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counters[key]
	if !ok || !now.Before(c.expires) {
		return 0, nil
	}
	return c.value, nil
}

// AddMember implements Store.
func (m *MemoryStore) AddMember(ctx context.Context, key, member string, now time.Time, ttl time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	s, ok := m.sets[key]
	if !ok || !now.Before(s.expires) {
		s = &memSet{members: make(map[string]struct{})}
		m.sets[key] = s
	}
	s.members[member] = struct{}{}
	s.expires = now.Add(ttl)
	return int64(len(s.members)), nil
}

// HasMember implements Store.
func (m *MemoryStore) HasMember(ctx context.Context, key, member string, now time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sets[key]
	if !ok || !now.Before(s.expires) {
		return false, nil
	}
	_, ok = s.members[member]
	return ok, nil
}

// normPrefix returns p masked, with an IPv4-mapped IPv6 prefix of /96 or
// longer turned into its IPv4 form, so that one range has one key.
func normPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// PutBan implements Store. The prefix is stored masked.
func (m *MemoryStore) PutBan(ctx context.Context, b Ban) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.Prefix = normPrefix(b.Prefix)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.bans[b.Prefix]; !ok {
		m.banBits[b.Prefix.Bits()]++
	}
	m.bans[b.Prefix] = b
	s := m.strikes[b.Prefix]
	s.n = b.Strikes
	if b.Until.After(s.lastEnd) {
		s.lastEnd = b.Until
	}
	s.forget = s.lastEnd.Add(StrikeMemory)
	m.strikes[b.Prefix] = s
	return nil
}

// deleteBan removes the ban of p. Called with mu held.
func (m *MemoryStore) deleteBan(p netip.Prefix) bool {
	if _, ok := m.bans[p]; !ok {
		return false
	}
	delete(m.bans, p)
	if m.banBits[p.Bits()]--; m.banBits[p.Bits()] <= 0 {
		delete(m.banBits, p.Bits())
	}
	return true
}

// DeleteBan implements Store. The prefix's strikes are kept.
func (m *MemoryStore) DeleteBan(ctx context.Context, p netip.Prefix) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.deleteBan(normPrefix(p)), nil
}

// Banned implements Store. It looks up one prefix per ban length in use,
// not every ban.
func (m *MemoryStore) Banned(ctx context.Context, addr netip.Addr, now time.Time) (Ban, bool, error) {
	if err := ctx.Err(); err != nil {
		return Ban{}, false, err
	}
	addr = addr.Unmap()
	m.mu.Lock()
	defer m.mu.Unlock()
	var best Ban
	found := false
	for bits := range m.banBits {
		if bits > addr.BitLen() {
			continue
		}
		p, err := addr.Prefix(bits)
		if err != nil {
			continue
		}
		b, ok := m.bans[p]
		if !ok || !now.Before(b.Until) {
			continue
		}
		if !found || b.Until.After(best.Until) {
			best, found = b, true
		}
	}
	return best, found, nil
}

// Bans implements Store. The list is sorted by prefix.
func (m *MemoryStore) Bans(ctx context.Context, now time.Time) ([]Ban, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Ban
	for _, b := range m.bans {
		if now.Before(b.Until) {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Prefix.Addr().Compare(out[j].Prefix.Addr()); c != 0 {
			return c < 0
		}
		return out[i].Prefix.Bits() < out[j].Prefix.Bits()
	})
	return out, nil
}

// Strikes implements Store. Strikes are forgotten StrikeMemory after the
// end of the prefix's last ban.
func (m *MemoryStore) Strikes(ctx context.Context, p netip.Prefix) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.strikes[normPrefix(p)].n, nil
}
