// Package admission decides who may talk to Postern and how much: the gate
// at accept (before any TLS byte: allow and deny lists, bans, connection
// caps and rates), the auth-abuse engine (failures per IP, prefix and
// username; delays, bans that grow, alerts; good IPs remembered per user)
// and the send limits of authenticated users. Its state lives in a Store:
// in memory on one node, or in Redis so several nodes share one view.
package admission

// THIS FILE IS A CONTRACT between the engine (memory Store, gate, abuse
// engine, limits) and the Redis Store / ban CLI, which are written in
// parallel. Keep the names and meaning; add what you need.

import (
	"context"
	"net/netip"
	"time"
)

// Ban is one banned address range.
type Ban struct {
	Prefix  netip.Prefix // a single address is a /32 or /128
	Until   time.Time    // the ban ends then
	Reason  string       // why, for `postern ban list` and logs
	Created time.Time
	// Strikes counts the bans of this prefix so far (the next ban lasts
	// longer: exponential growth); it outlives the ban itself.
	Strikes int
	// Manual is true for bans added with `postern ban add`.
	Manual bool
}

// Store holds the state the gate and the abuse engine share. All methods
// are safe for concurrent use; times come from the caller (inject time,
// so tests never sleep). Implementations: the memory store (one node)
// and the Redis store (several nodes, one view). One conformance suite
// runs against both.
type Store interface {
	// Incr adds n to the counter named key and returns the new value. A
	// counter that did not exist starts at 0 and expires at now+window
	// (a fixed window: later increments do not extend it).
	Incr(ctx context.Context, key string, n int64, now time.Time, window time.Duration) (int64, error)
	// Count returns the value of a live counter; 0 when absent or expired.
	Count(ctx context.Context, key string, now time.Time) (int64, error)

	// AddMember adds member to the set named key, which expires at
	// now+ttl (each add pushes the set's expiry forward), and returns the
	// number of members (for "how many usernames from this IP").
	AddMember(ctx context.Context, key, member string, now time.Time, ttl time.Duration) (int64, error)
	// HasMember reports whether member is in the live set named key.
	HasMember(ctx context.Context, key, member string, now time.Time) (bool, error)

	// PutBan records b (replacing any ban of the same prefix).
	PutBan(ctx context.Context, b Ban) error
	// DeleteBan removes the ban of exactly p; ok is false when none.
	DeleteBan(ctx context.Context, p netip.Prefix) (ok bool, err error)
	// Banned returns the longest-lasting live ban whose prefix contains
	// addr.
	Banned(ctx context.Context, addr netip.Addr, now time.Time) (b Ban, ok bool, err error)
	// Bans lists the live bans (and, for Strikes, may keep expired ones
	// internally).
	Bans(ctx context.Context, now time.Time) ([]Ban, error)
	// Strikes returns how many times p was banned before (0 when never).
	Strikes(ctx context.Context, p netip.Prefix) (int, error)
}
