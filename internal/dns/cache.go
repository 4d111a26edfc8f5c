package dns

import (
	"container/list"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// maxCacheTTL caps how long any answer stays in the cache, whatever its
// TTL says, so a mistaken or hostile TTL cannot pin an answer for days.
const maxCacheTTL = time.Hour

// cacheKey names one question: a normalized name and a type.
type cacheKey struct {
	name  string
	qtype uint16
}

// cacheEntry is one remembered answer: records (positive) or the sentinel
// ErrNXDomain or ErrNoData (negative, RFC 2308). Temporary failures are
// never cached.
type cacheEntry struct {
	key       cacheKey
	rrs       []mdns.RR // read only once cached
	authentic bool
	err       error
	expires   time.Time
}

// cache is a bounded, TTL-respecting cache of answers, least recently used
// out first. It is safe for concurrent use.
type cache struct {
	mu    sync.Mutex
	max   int
	items map[cacheKey]*list.Element // values are *cacheEntry
	lru   *list.List                 // front: most recently used
}

// newCache returns a cache holding at most max answers.
func newCache(max int) *cache {
	return &cache{max: max, items: make(map[cacheKey]*list.Element), lru: list.New()}
}

// get returns the answer for key if it is cached and has not expired at now.
func (c *cache) get(key cacheKey, now time.Time) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.items, key)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e, true
}

// put remembers e for ttl from now (capped at maxCacheTTL). A zero TTL
// means "do not cache" (RFC 1035 §3.2.1).
func (c *cache) put(e *cacheEntry, ttl time.Duration, now time.Time) {
	if ttl <= 0 {
		return
	}
	e.expires = now.Add(min(ttl, maxCacheTTL))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.items[e.key] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

// len returns how many answers the cache holds, expired or not.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
