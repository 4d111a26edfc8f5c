// Package redisstore implements admission.Store on Redis, so that several
// Postern nodes share one view of counters, sets, bans and strikes.
//
// Every key lives under Options.Prefix (Postern's redis.key_prefix,
// "postern:" by default):
//
//	PREFIX c:KEY            counter: hash {v: value, e: expiry}
//	PREFIX s:KEY            set: hash {e: expiry, m<member>: 1 ...}
//	PREFIX ban:HEX/BITS     one ban: hash {prefix, until, reason, created, strikes, manual}
//	PREFIX bans             sorted set of the banned prefixes, scored by Until (Unix ms)
//	PREFIX banlens          set of the prefix lengths in use, "4/24", "6/64", ...
//	PREFIX strikes:HEX/BITS how many times the prefix was banned (a string)
//
// HEX is the masked network address in hexadecimal (8 digits for IPv4,
// 32 for IPv6), so that a Lua script can derive it from an address.
//
// Time is the caller's (admission.Store takes it as an argument, so that
// tests inject it): expiry is decided by comparing the caller's now with
// the expiry stored in the data, never by Redis's clock. Redis's own key
// expiry only collects garbage: each key's TTL is the time it is meant to
// live plus a minute (GCSlack), counted from the write, so a key is
// never dropped before it is logically dead unless the nodes' clocks
// disagree by more than that.
//
// Containment: Banned runs one script that reads the set of prefix
// lengths in use and looks up, for each length of the address's family,
// the one prefix of that length that covers the address. Any prefix
// length works (the engine bans /32, /24 and /128, /64, /48; `postern ban
// add` any CIDR), and a lookup is one round trip whatever the number of
// bans. The scripts touch keys they compute, so the store needs a single
// Redis (or a replicated master), not Redis Cluster.
//
// A flood from a banned address would cost one round trip per
// connection; so each Store also remembers, for Options.BanCacheTTL (1
// second by default), the addresses it found banned. A ban lifted
// through another node is therefore honoured here within that time.
package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"postern/internal/admission"
)

// GCSlack is added to the Redis TTL of every key beyond the time it is
// meant to live: Redis's expiry only reclaims memory, the caller's clock
// decides what is live.
const GCSlack = time.Minute

// Options configure New.
type Options struct {
	// Client, when set, is the Redis client the Store uses: one client
	// shared with the other users of the same server (Postern's TLS
	// ticket keys). The Store then leaves it open on Close; its owner
	// closes it. Without Client, New makes one with NewClient from
	// Addr, Username, Password, DB, DialTimeout and Timeout, and Close
	// closes it.
	Client *redis.Client
	// Addr is host:port of the Redis server; required without Client.
	Addr string
	// Username and Password authenticate (AUTH); empty means none.
	Username string
	Password string
	// DB is the database number (SELECT).
	DB int
	// Prefix starts every key ("postern:" in Postern's configuration);
	// "" means none. Nodes that share state use the same prefix.
	Prefix string
	// DialTimeout bounds a connection attempt; 0 means 2 seconds.
	DialTimeout time.Duration
	// Timeout bounds each command's read and write; 0 means 1 second.
	// The gate asks the store before every session: a slow Redis must
	// not stall them all.
	Timeout time.Duration
	// BanCacheTTL is how long Banned remembers, in this process, that an
	// address is banned, so that a flood from a banned address costs no
	// Redis round trip per connection; 0 means DefaultBanCacheTTL,
	// negative turns the cache off. Only positive answers are kept, and
	// never past the ban's end; a change made through this Store clears
	// the cache at once, one made through another node is seen here
	// within BanCacheTTL.
	BanCacheTTL time.Duration
}

// DefaultBanCacheTTL is Options.BanCacheTTL when it is zero.
const DefaultBanCacheTTL = time.Second

// banCacheMax bounds the addresses the ban cache holds; when it is full
// it starts afresh.
const banCacheMax = 65536

// Store is an admission.Store on Redis. It is safe for concurrent use.
// Make one with New and Close it when done.
type Store struct {
	rdb    *redis.Client
	owned  bool // rdb is closed by Close
	prefix string

	// The Lua scripts, loaded once per server (EVALSHA, EVAL when the
	// server does not know them yet).
	incrScript, addScript, putBanScript, bannedScript *redis.Script

	cacheTTL time.Duration
	mu       sync.Mutex
	cache    map[netip.Addr]cachedBan
}

// cachedBan is a positive answer of Banned, good until until.
type cachedBan struct {
	ban   admission.Ban
	until time.Time
}

var _ admission.Store = (*Store)(nil)

// NewClient returns a client for the Redis server opts names (Addr,
// Username, Password, DB, DialTimeout, Timeout), set up as a Store needs
// it: short timeouts, one retry, RESP2. It does not connect: the first
// command does.
func NewClient(opts Options) (*redis.Client, error) {
	if opts.Addr == "" {
		return nil, errors.New("redisstore: Options.Addr is required")
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	return redis.NewClient(&redis.Options{
		Addr:            opts.Addr,
		Username:        opts.Username,
		Password:        opts.Password,
		DB:              opts.DB,
		DialTimeout:     opts.DialTimeout,
		ReadTimeout:     opts.Timeout,
		WriteTimeout:    opts.Timeout,
		Protocol:        2,
		MaxRetries:      1,
		DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}), nil
}

// New returns a Store on opts.Client, or on a client of its own for the
// Redis server opts names. It does not connect: the first command does
// (see Ping).
func New(opts Options) (*Store, error) {
	rdb, owned := opts.Client, false
	if rdb == nil {
		var err error
		if rdb, err = NewClient(opts); err != nil {
			return nil, err
		}
		owned = true
	}
	if opts.BanCacheTTL == 0 {
		opts.BanCacheTTL = DefaultBanCacheTTL
	}
	return &Store{rdb: rdb, owned: owned, prefix: opts.Prefix, cacheTTL: opts.BanCacheTTL,
		cache:      make(map[netip.Addr]cachedBan),
		incrScript: redis.NewScript(incrLua), addScript: redis.NewScript(addLua),
		putBanScript: redis.NewScript(putBanLua), bannedScript: redis.NewScript(bannedLua),
	}, nil
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// Close closes the connections to Redis, unless the client was given in
// Options.Client.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	return s.rdb.Close()
}

// stamp encodes t as fixed-width decimal Unix nanoseconds, so that the
// scripts can compare two stamps as strings (Lua's numbers are doubles
// and would round them).
func stamp(t time.Time) string {
	n := t.UnixNano()
	if t.Before(time.Unix(0, 0)) {
		n = 0
	}
	return fmt.Sprintf("%020d", n)
}

// unstamp decodes a stamp; ok is false for anything else.
func unstamp(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n), true
}

// gcTTL is the Redis TTL, in milliseconds, of a key meant to live d.
func gcTTL(d time.Duration) int64 {
	return (max(d, 0) + GCSlack).Milliseconds()
}

// incrLua starts a fresh window when the counter is absent or
// expired, and adds otherwise. KEYS[1] counter; ARGV n, now, expiry,
// ttl in ms.
const incrLua = `
local e = redis.call('HGET', KEYS[1], 'e')
if (not e) or e <= ARGV[2] then
  redis.call('HSET', KEYS[1], 'v', ARGV[1], 'e', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return tonumber(ARGV[1])
end
return redis.call('HINCRBY', KEYS[1], 'v', ARGV[1])
`

// Incr implements admission.Store.
func (s *Store) Incr(ctx context.Context, key string, n int64, now time.Time, window time.Duration) (int64, error) {
	v, err := s.incrScript.Run(ctx, s.rdb, []string{s.prefix + "c:" + key},
		n, stamp(now), stamp(now.Add(window)), gcTTL(window)).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: incr %s: %w", key, err)
	}
	return v, nil
}

// Count implements admission.Store.
func (s *Store) Count(ctx context.Context, key string, now time.Time) (int64, error) {
	vals, err := s.rdb.HMGet(ctx, s.prefix+"c:"+key, "v", "e").Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: count %s: %w", key, err)
	}
	v, _ := vals[0].(string)
	e, _ := vals[1].(string)
	exp, ok := unstamp(e)
	if !ok || !now.Before(exp) {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redisstore: count %s: bad value %q", key, v)
	}
	return n, nil
}

// addLua adds a member to a set, starting afresh when the set has
// expired, and pushes the expiry forward. Members are fields "m"+member;
// field "e" is the expiry. KEYS[1] set; ARGV member, now, expiry, ttl.
const addLua = `
local e = redis.call('HGET', KEYS[1], 'e')
if e and e <= ARGV[2] then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'm' .. ARGV[1], '1', 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('HLEN', KEYS[1]) - 1
`

// AddMember implements admission.Store.
func (s *Store) AddMember(ctx context.Context, key, member string, now time.Time, ttl time.Duration) (int64, error) {
	n, err := s.addScript.Run(ctx, s.rdb, []string{s.prefix + "s:" + key},
		member, stamp(now), stamp(now.Add(ttl)), gcTTL(ttl)).Int64()
	if err != nil {
		return 0, fmt.Errorf("redisstore: add member to %s: %w", key, err)
	}
	return n, nil
}

// HasMember implements admission.Store.
func (s *Store) HasMember(ctx context.Context, key, member string, now time.Time) (bool, error) {
	vals, err := s.rdb.HMGet(ctx, s.prefix+"s:"+key, "e", "m"+member).Result()
	if err != nil {
		return false, fmt.Errorf("redisstore: has member %s: %w", key, err)
	}
	e, _ := vals[0].(string)
	exp, ok := unstamp(e)
	return ok && now.Before(exp) && vals[1] != nil, nil
}

// normPrefix returns p masked, with an IPv4-mapped IPv6 prefix of /96 or
// longer turned into its IPv4 form, so that one range has one key (as
// the memory store does).
func normPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// family is "4" or "6".
func family(a netip.Addr) string {
	if a.Is4() {
		return "4"
	}
	return "6"
}

// addrHex is the address in hexadecimal: 8 digits for IPv4, 32 for IPv6.
func addrHex(a netip.Addr) string {
	if a.Is4() {
		b := a.As4()
		return hex.EncodeToString(b[:])
	}
	b := a.As16()
	return hex.EncodeToString(b[:])
}

// banID is the part of a ban's keys that names its (normalized) prefix.
func banID(p netip.Prefix) string {
	return addrHex(p.Addr()) + "/" + strconv.Itoa(p.Bits())
}

// errBadPrefix is returned for an invalid prefix.
var errBadPrefix = errors.New("invalid prefix")

// putBanLua records a ban, its index entries and its strikes; the
// strikes' TTL only grows. KEYS ban, index, lengths, strikes; ARGV
// prefix, until, reason, created, strikes, manual, score, length,
// ban ttl, strikes ttl.
const putBanLua = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'prefix', ARGV[1], 'until', ARGV[2], 'reason', ARGV[3],
  'created', ARGV[4], 'strikes', ARGV[5], 'manual', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[9])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[8])
local t = redis.call('PTTL', KEYS[4])
redis.call('SET', KEYS[4], ARGV[5])
if t > tonumber(ARGV[10]) then
  redis.call('PEXPIRE', KEYS[4], t)
else
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
end
return 1
`

// PutBan implements admission.Store. The prefix is stored masked. The
// ban's keys live in Redis for the ban's length (Until-Created, or
// Until-time.Now() when Created is zero) plus GCSlack, and its strikes
// admission.StrikeMemory longer.
func (s *Store) PutBan(ctx context.Context, b admission.Ban) error {
	if !b.Prefix.IsValid() {
		return fmt.Errorf("redisstore: put ban: %w", errBadPrefix)
	}
	p := normPrefix(b.Prefix)
	id := banID(p)
	defer s.forget()
	from := b.Created
	if from.IsZero() {
		from = time.Now()
	}
	life := b.Until.Sub(from)
	manual := "0"
	if b.Manual {
		manual = "1"
	}
	err := s.putBanScript.Run(ctx, s.rdb,
		[]string{s.prefix + "ban:" + id, s.prefix + "bans", s.prefix + "banlens", s.prefix + "strikes:" + id},
		p.String(), stamp(b.Until), b.Reason, timeText(b.Created), b.Strikes, manual,
		b.Until.UnixMilli(), family(p.Addr())+"/"+strconv.Itoa(p.Bits()),
		gcTTL(life), gcTTL(life+admission.StrikeMemory)).Err()
	if err != nil {
		return fmt.Errorf("redisstore: put ban %s: %w", p, err)
	}
	return nil
}

// timeText encodes a time exactly; "" for the zero time.
func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// parseTimeText decodes timeText.
func parseTimeText(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// DeleteBan implements admission.Store. The prefix's strikes are kept.
func (s *Store) DeleteBan(ctx context.Context, p netip.Prefix) (bool, error) {
	if !p.IsValid() {
		return false, fmt.Errorf("redisstore: delete ban: %w", errBadPrefix)
	}
	p = normPrefix(p)
	defer s.forget()
	pipe := s.rdb.TxPipeline()
	del := pipe.Del(ctx, s.prefix+"ban:"+banID(p))
	pipe.ZRem(ctx, s.prefix+"bans", p.String())
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("redisstore: delete ban %s: %w", p, err)
	}
	return del.Val() > 0, nil
}

// banFields returns the fields of a ban's hash, in the order the
// scripts and HMGET return them.
func banFields() []string {
	return []string{"prefix", "until", "reason", "created", "strikes", "manual"}
}

// bannedLua returns the bans, live or not, whose prefix covers an
// address: for each prefix length in use in the address's family, the
// address masked to that length. ARGV key prefix, family, address in hex.
const bannedLua = `
local base, fam, addr = ARGV[1], ARGV[2], ARGV[3]
local lens = redis.call('SMEMBERS', base .. 'banlens')
local out = {}
for _, l in ipairs(lens) do
  local f, bits = string.match(l, '^(%d)/(%d+)$')
  if f == fam then
    bits = tonumber(bits)
    if bits <= 4 * #addr then
      local full = math.floor(bits / 4)
      local rem = bits % 4
      local h = string.sub(addr, 1, full)
      if rem > 0 then
        local d = tonumber(string.sub(addr, full + 1, full + 1), 16)
        local unit = 2 ^ (4 - rem)
        h = h .. string.format('%x', d - d % unit)
      end
      h = h .. string.rep('0', #addr - #h)
      local v = redis.call('HMGET', base .. 'ban:' .. h .. '/' .. bits,
        'prefix', 'until', 'reason', 'created', 'strikes', 'manual')
      if v[1] then
        table.insert(out, v)
      end
    end
  end
end
return out
`

// Banned implements admission.Store in one round trip (see the package
// documentation).
func (s *Store) Banned(ctx context.Context, addr netip.Addr, now time.Time) (admission.Ban, bool, error) {
	if !addr.IsValid() {
		return admission.Ban{}, false, fmt.Errorf("redisstore: banned: invalid address")
	}
	addr = addr.Unmap()
	if b, ok := s.cached(addr, now); ok {
		return b, true, nil
	}
	res, err := s.bannedScript.Run(ctx, s.rdb, nil, s.prefix, family(addr), addrHex(addr)).Slice()
	if err != nil {
		return admission.Ban{}, false, fmt.Errorf("redisstore: banned %s: %w", addr, err)
	}
	var best admission.Ban
	found := false
	for _, r := range res {
		vals, _ := r.([]any)
		b, ok := decodeBan(vals)
		if !ok || !now.Before(b.Until) {
			continue
		}
		if !found || b.Until.After(best.Until) {
			best, found = b, true
		}
	}
	if found {
		s.remember(addr, best, now)
	}
	return best, found, nil
}

// cached returns the ban remembered for addr, if still good at now.
func (s *Store) cached(addr netip.Addr, now time.Time) (admission.Ban, bool) {
	if s.cacheTTL < 0 {
		return admission.Ban{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cache[addr]
	if !ok || !now.Before(c.until) {
		return admission.Ban{}, false
	}
	return c.ban, true
}

// remember keeps b as addr's answer until the ban ends or the cache's
// TTL runs out, whichever comes first.
func (s *Store) remember(addr netip.Addr, b admission.Ban, now time.Time) {
	if s.cacheTTL < 0 {
		return
	}
	until := now.Add(s.cacheTTL)
	if b.Until.Before(until) {
		until = b.Until
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= banCacheMax {
		clear(s.cache)
	}
	s.cache[addr] = cachedBan{ban: b, until: until}
}

// forget clears the ban cache: a ban changed through this Store.
func (s *Store) forget() {
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
}

// decodeBan decodes a ban's fields, in banFields order.
func decodeBan(vals []any) (admission.Ban, bool) {
	if len(vals) != len(banFields()) {
		return admission.Ban{}, false
	}
	str := make([]string, len(vals))
	for i, v := range vals {
		str[i], _ = v.(string)
	}
	p, err := netip.ParsePrefix(str[0])
	if err != nil {
		return admission.Ban{}, false
	}
	until, ok := unstamp(str[1])
	if !ok {
		return admission.Ban{}, false
	}
	strikes, _ := strconv.Atoi(str[4])
	return admission.Ban{
		Prefix:  p,
		Until:   until,
		Reason:  str[2],
		Created: parseTimeText(str[3]),
		Strikes: strikes,
		Manual:  str[5] == "1",
	}, true
}

// Bans implements admission.Store: the live bans, sorted by prefix. It
// also drops index entries of bans that ended or were deleted.
func (s *Store) Bans(ctx context.Context, now time.Time) ([]admission.Ban, error) {
	idx := s.prefix + "bans"
	// The score is in ms; the exact comparison is made below.
	min := strconv.FormatInt(now.UnixMilli()-1, 10)
	members, err := s.rdb.ZRangeByScore(ctx, idx, &redis.ZRangeBy{Min: min, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: list bans: %w", err)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(members))
	for i, m := range members {
		p, err := netip.ParsePrefix(m)
		if err != nil {
			continue
		}
		cmds[i] = pipe.HMGet(ctx, s.prefix+"ban:"+banID(p), banFields()...)
	}
	pipe.ZRemRangeByScore(ctx, idx, "-inf", "("+min)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: list bans: %w", err)
	}
	var out []admission.Ban
	var gone []any
	for i, c := range cmds {
		if c == nil {
			gone = append(gone, members[i])
			continue
		}
		b, ok := decodeBan(c.Val())
		if !ok {
			gone = append(gone, members[i])
			continue
		}
		if now.Before(b.Until) {
			out = append(out, b)
		}
	}
	if len(gone) > 0 {
		// Deleted or collected bans; best effort.
		s.rdb.ZRem(ctx, idx, gone...)
	}
	slices.SortFunc(out, func(a, b admission.Ban) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out, nil
}

// Strikes implements admission.Store.
func (s *Store) Strikes(ctx context.Context, p netip.Prefix) (int, error) {
	if !p.IsValid() {
		return 0, fmt.Errorf("redisstore: strikes: %w", errBadPrefix)
	}
	p = normPrefix(p)
	v, err := s.rdb.Get(ctx, s.prefix+"strikes:"+banID(p)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redisstore: strikes %s: %w", p, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("redisstore: strikes %s: bad value %q", p, v)
	}
	return n, nil
}
