package userdb

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
	"sync"
	"time"

	"postern/internal/sasl"
)

// CheckPassword verifies username (an address, matched ignoring case) and
// password, and returns the user's canonical address. It has the shape of
// sasl.PasswordChecker. A wrong password or an unknown user gives an error
// wrapping sasl.ErrBadPassword or sasl.ErrUnknownUser (both wrap
// sasl.ErrInvalidCredentials: only the log tells them apart); an unknown user still costs one
// Argon2 computation, against a dummy hash, so the time taken does not tell
// whether the user exists. When ctx ends while waiting for a hashing slot
// (Options.MaxConcurrentHashes) the error wraps sasl.ErrTemporary.
//
// A verified pair is remembered (Options.CacheTTL, CacheSize) under an
// HMAC of username and password with a key made for this DB, never the
// password itself; it counts again only while the user's stored hash is
// still the one that verified it, so a new password or a deleted user ends
// it at once. Failures are never remembered. The cache is for PLAIN and
// LOGIN only: it exists to save the Argon2 computation, and SCRAM and
// CRAM-MD5 (see SCRAM, CRAMMD5) compute none.
func (d *DB) CheckPassword(ctx context.Context, username, password string) (string, error) {
	if len(username) > MaxAddressLen || strings.IndexByte(username, 0) >= 0 {
		// Nobody can have these; the lengths are no secret.
		return "", fmt.Errorf("userdb: check password: %w", sasl.ErrUnknownUser)
	}
	if len(password) > MaxPasswordLen || password == "" || strings.IndexByte(password, 0) >= 0 {
		return "", fmt.Errorf("userdb: check password: %w", sasl.ErrBadPassword)
	}
	// The store's current record, read on every check (with PostgreSQL a
	// query), so a password changed on any node counts at once.
	r, err := d.get(ctx, username)
	if err != nil {
		return "", fmt.Errorf("userdb: check password: %w: %w", sasl.ErrTemporary, err)
	}

	var key [sha256.Size]byte
	if d.cache != nil {
		key = d.cache.key(username, password)
		if user, hash, ok := d.cache.get(key, d.now()); ok {
			if r != nil && user == r.user.Address &&
				subtle.ConstantTimeCompare([]byte(hash), []byte(r.hash)) == 1 {
				return user, nil
			}
			d.cache.remove(key)
		}
	}

	if r == nil {
		// No timing oracle: spend what a real check spends.
		if _, err := d.hasher.verify(ctx, d.dummy, password); err != nil {
			return "", err
		}
		return "", fmt.Errorf("userdb: check password: %w", sasl.ErrUnknownUser)
	}
	var ok bool
	if d.cache != nil {
		// Clients that log in with the same credentials at the same
		// moment (a pool of connections opening at once) share one hash.
		ok, err = d.cache.flight.do(ctx, flightKey{key, r.hash}, func() (bool, error) {
			return d.hasher.verify(ctx, r.phc, password)
		})
	} else {
		ok, err = d.hasher.verify(ctx, r.phc, password)
	}
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("userdb: check password: %w", sasl.ErrBadPassword)
	}
	if d.cache != nil {
		d.cache.put(key, r.user.Address, r.hash, d.now())
	}
	return r.user.Address, nil
}

// credCache remembers verified credentials: HMAC(key, lower(username) NUL
// password) -> canonical user, the PHC hash that verified, expiry; least
// recently used evicted first. It is safe for concurrent use.
type credCache struct {
	secret []byte
	max    int
	ttl    time.Duration

	mu  sync.Mutex
	m   map[[sha256.Size]byte]*list.Element
	lru *list.List // of *cacheEntry, most recent first

	flight flights // verifications in progress
}

// flightKey names one verification: the credentials' cache key and the
// hash they are checked against (so a password change is never joined to
// a check against the old hash).
type flightKey struct {
	cred [sha256.Size]byte
	hash string
}

// flights coalesces identical verifications in progress: the first caller
// computes, the others wait for its answer (or for their ctx).
type flights struct {
	mu sync.Mutex
	m  map[flightKey]*flight
}

// flight is one verification in progress.
type flight struct {
	done chan struct{}
	ok   bool
	err  error
}

// do runs fn once for all concurrent callers with the same key. A waiter
// whose ctx ends gets an error wrapping sasl.ErrTemporary; the computing
// caller's own ctx error is shared like any result.
func (f *flights) do(ctx context.Context, k flightKey, fn func() (bool, error)) (bool, error) {
	f.mu.Lock()
	if c, ok := f.m[k]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.ok, c.err
		case <-ctx.Done():
			return false, fmt.Errorf("userdb: check password: %w: %w", sasl.ErrTemporary, ctx.Err())
		}
	}
	if f.m == nil {
		f.m = make(map[flightKey]*flight)
	}
	c := &flight{done: make(chan struct{})}
	f.m[k] = c
	f.mu.Unlock()

	c.ok, c.err = fn()
	f.mu.Lock()
	delete(f.m, k)
	f.mu.Unlock()
	close(c.done)
	return c.ok, c.err
}

// cacheEntry is one remembered credential.
type cacheEntry struct {
	key     [sha256.Size]byte
	user    string
	hash    string
	expires time.Time
}

// newCredCache returns an empty cache with a fresh random HMAC key.
func newCredCache(max int, ttl time.Duration) (*credCache, error) {
	c := &credCache{secret: make([]byte, 32), max: max, ttl: ttl,
		m: make(map[[sha256.Size]byte]*list.Element), lru: list.New()}
	if _, err := rand.Read(c.secret); err != nil {
		return nil, fmt.Errorf("userdb: cache key: %w", err)
	}
	return c, nil
}

// key returns the cache key of a username and password. The username is
// lower-cased because lookups ignore case; NUL separates the two since
// neither may contain it, so no two pairs share a key's input.
func (c *credCache) key(username, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, c.secret)
	m.Write([]byte(userKey(username)))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// get returns the entry under k unless it has expired. The map lookup
// compares keys in variable time, which is harmless: keys are HMACs under
// a secret the client never sees.
func (c *credCache) get(k [sha256.Size]byte, now time.Time) (user, hash string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return "", "", false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.m, k)
		return "", "", false
	}
	c.lru.MoveToFront(el)
	return e.user, e.hash, true
}

// put remembers a verified credential, evicting the least recently used
// entry when full.
func (c *credCache) put(k [sha256.Size]byte, user, hash string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &cacheEntry{key: k, user: user, hash: hash, expires: now.Add(c.ttl)}
	if el, ok := c.m[k]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
	c.m[k] = c.lru.PushFront(e)
}

// remove forgets the entry under k.
func (c *credCache) remove(k [sha256.Size]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		c.lru.Remove(el)
		delete(c.m, k)
	}
}

// clear forgets everything.
func (c *credCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.lru.Init()
}

// len returns the number of entries.
func (c *credCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
