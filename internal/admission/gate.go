package admission

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Reasons a Gate gives for a refusal; they label the refusal metric.
const (
	ReasonBanned     = "banned"       // the address is in a live Ban
	ReasonDenied     = "denied"       // the address is in the listener's deny list
	ReasonNotAllowed = "not_allowed"  // the listener has an allow list without the address
	ReasonIPConns    = "ip_conns"     // too many concurrent connections from the address
	ReasonPrefixConn = "prefix_conns" // too many concurrent connections from its /24, /64 or /48
	ReasonIPRate     = "ip_rate"      // new connections from the address come too fast
	ReasonPrefixRate = "prefix_rate"  // new connections from its /24 or /64 come too fast
)

// Listener is a listener's own admission policy.
type Listener struct {
	// Allow, when non-empty, admits only addresses in one of its prefixes.
	Allow []netip.Prefix
	// Deny refuses addresses in one of its prefixes (checked before Allow).
	Deny []netip.Prefix
	// NoTLS is set for a listener that never does TLS (an mx listener
	// without a certificate): its refusals save no handshake. The zero
	// value, TLS, fits every other listener: submissions does TLS at
	// once, mx and submission at STARTTLS.
	NoTLS bool
}

// Rate is a token bucket: Burst new connections at once, refilled at
// PerSecond tokens a second. A PerSecond of 0 (the zero Rate) is no
// bucket: every new connection passes.
type Rate struct {
	PerSecond float64
	Burst     int
}

// GateOptions configure a Gate. Every value means what it says, 0
// included: a cap or a rate of 0 is off, never a default (Postern's
// configuration resolves the defaults, in internal/config). The zero
// GateOptions thus admits every connection that is not banned.
type GateOptions struct {
	// Listeners holds the per-listener policies by listener name; a
	// listener not in it has no lists and does TLS.
	Listeners map[string]Listener
	// Trusted addresses skip the caps and rates (not the bans or lists).
	Trusted []netip.Prefix
	// MaxConnsPerIP caps concurrent connections from one address.
	MaxConnsPerIP int
	// MaxConnsPerPrefix caps concurrent connections from one IPv4 /24 or
	// IPv6 /64.
	MaxConnsPerPrefix int
	// MaxConnsPerV6Site caps concurrent connections from one IPv6 /48.
	MaxConnsPerV6Site int
	// IPRate limits new connections per address.
	IPRate Rate
	// PrefixRate limits new connections per IPv4 /24 or IPv6 /64.
	PrefixRate Rate
	// Metrics counts the refusals (NewMetrics); nil counts into a set
	// registered nowhere. NewGate reads it: SetOptions keeps the Gate's.
	Metrics *Metrics
}

// Decision is a Gate's answer for one connection.
type Decision struct {
	// Allowed is true when the connection may go on.
	Allowed bool
	// Reason is one of the Reason constants when not Allowed; for a ban,
	// "banned" (Ban holds which).
	Reason string
	// Ban is the ban that refused the connection, when Reason is
	// ReasonBanned.
	Ban Ban
	// Release must be called once when an allowed connection ends: it
	// gives back its concurrency slots. It is non-nil (a no-op when there
	// is nothing to give back) whenever Allowed is true.
	Release func()
}

// Gate decides, when a TCP connection is accepted and before any TLS
// byte, whether Postern talks to it: bans first, then the listener's
// deny and allow lists, then the concurrency caps per address and prefix,
// then the new-connection rates. A Gate is safe for concurrent use.
//
// Bans and rates live in the Store, so with the Redis store they are
// shared by every node. The concurrency caps are counted in this process
// only (a node that dies must not leave connections counted forever in a
// shared store): with N nodes behind a balancer a client may hold up to N
// times the cap.
type Gate struct {
	store Store
	m     *Metrics
	opts  atomic.Pointer[GateOptions] // SetOptions

	mu    sync.Mutex
	conns map[string]int // "ip|<addr>", "p|<prefix>" -> open connections
}

// NewGate returns a Gate over store with opts.
func NewGate(store Store, opts GateOptions) *Gate {
	g := &Gate{store: store, m: opts.Metrics, conns: make(map[string]int)}
	if g.m == nil {
		g.m = NewMetrics(nil)
	}
	g.SetOptions(opts)
	return g
}

// SetOptions makes opts those of the connections admitted from now on (a
// reload of the configuration). The connections open stay counted
// against the new caps; a connection admitted before keeps its slot
// until it ends. The Gate keeps its metrics (opts.Metrics is ignored).
func (g *Gate) SetOptions(opts GateOptions) { g.opts.Store(&opts) }

// IPv6SitePrefix is the IPv6 prefix length counted as one site (a /48).
const IPv6SitePrefix = 48

// PrefixOf returns the prefix an address is aggregated into: its /24 for
// IPv4 and its /64 for IPv6.
func PrefixOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

// HostPrefix returns a single address as a prefix: a /32 or a /128.
func HostPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

func containsAny(ps []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
}

func noop() {}

// Admit decides about a connection from remote accepted on listener at
// now. It counts refusals in the refusal and handshakes-avoided metrics.
//
// Admit fails open: when the Store cannot answer it returns an allowing
// Decision (with its Release) together with the error, so that an outage
// of Redis does not take mail down; the caller logs the error.
func (g *Gate) Admit(ctx context.Context, listener string, remote netip.Addr, now time.Time) (Decision, error) {
	remote = remote.Unmap()
	o := g.opts.Load()
	lp := o.Listeners[listener]
	refuse := func(reason string) Decision {
		g.m.Refused.WithLabelValues(listener, reason).Inc()
		if !lp.NoTLS {
			g.m.HandshakesAvoided.WithLabelValues(listener).Inc()
		}
		return Decision{Reason: reason}
	}
	var storeErr error
	b, banned, err := g.store.Banned(ctx, remote, now)
	if err != nil {
		storeErr = fmt.Errorf("admission: ban lookup: %w", err)
	} else if banned {
		d := refuse(ReasonBanned)
		d.Ban = b
		return d, nil
	}
	if containsAny(lp.Deny, remote) {
		return refuse(ReasonDenied), storeErr
	}
	if len(lp.Allow) > 0 && !containsAny(lp.Allow, remote) {
		return refuse(ReasonNotAllowed), storeErr
	}
	if containsAny(o.Trusted, remote) {
		return Decision{Allowed: true, Release: noop}, storeErr
	}
	release, reason := g.acquire(o, remote)
	if reason != "" {
		return refuse(reason), storeErr
	}
	if storeErr == nil {
		reason, err := g.rates(ctx, o, remote, now)
		if err != nil {
			storeErr = err
		} else if reason != "" {
			release()
			return refuse(reason), nil
		}
	}
	return Decision{Allowed: true, Release: release}, storeErr
}

// connKeys returns the concurrency keys of an address with their caps.
func connKeys(o *GateOptions, a netip.Addr) ([3]string, [3]int, int) {
	var keys [3]string
	var caps [3]int
	keys[0], caps[0] = "ip|"+a.String(), o.MaxConnsPerIP
	keys[1], caps[1] = "p|"+PrefixOf(a).String(), o.MaxConnsPerPrefix
	if a.Is4() {
		return keys, caps, 2
	}
	site, _ := a.Prefix(IPv6SitePrefix)
	keys[2], caps[2] = "p|"+site.String(), o.MaxConnsPerV6Site
	return keys, caps, 3
}

// acquire takes a concurrency slot for a on every key, or none.
func (g *Gate) acquire(o *GateOptions, a netip.Addr) (release func(), reason string) {
	keys, caps, n := connKeys(o, a)
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := 0; i < n; i++ {
		if caps[i] > 0 && g.conns[keys[i]] >= caps[i] {
			if i == 0 {
				return nil, ReasonIPConns
			}
			return nil, ReasonPrefixConn
		}
	}
	for i := 0; i < n; i++ {
		g.conns[keys[i]]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			for i := 0; i < n; i++ {
				if g.conns[keys[i]]--; g.conns[keys[i]] <= 0 {
					delete(g.conns, keys[i])
				}
			}
		})
	}, ""
}

// Conns returns the connections open now from a's address (for tests and
// the admin socket).
func (g *Gate) Conns(a netip.Addr) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns["ip|"+a.Unmap().String()]
}

// rates applies the new-connection token buckets of the address and of
// its prefix; a refused connection takes no token.
func (g *Gate) rates(ctx context.Context, o *GateOptions, a netip.Addr, now time.Time) (string, error) {
	ok, undo, err := takeToken(ctx, g.store, "gate:rate:ip:"+a.String(), o.IPRate, now)
	if err != nil {
		return "", err
	}
	if !ok {
		return ReasonIPRate, nil
	}
	ok, _, err = takeToken(ctx, g.store, "gate:rate:p:"+PrefixOf(a).String(), o.PrefixRate, now)
	if err != nil {
		return "", err
	}
	if !ok {
		undo()
		return ReasonPrefixRate, nil
	}
	return "", nil
}

// bucketWindow is the lifetime of a token bucket's counter in the Store.
// When it ends the bucket starts full again, so a client can get at most
// one extra burst per window.
const bucketWindow = time.Hour

// takeToken is a token bucket in GCRA form (the generic cell rate
// algorithm, as in RFC 2475's policers and mox's and redis-cell's
// limiters) over Store.Incr, so that it works the same in memory and in
// Redis. The counter holds the theoretical arrival time (TAT) in
// nanoseconds since the Unix epoch: each admitted connection pushes it
// one interval (1/PerSecond) further, starting from now when the bucket
// is idle; a connection is admitted when TAT - now stays within Burst
// intervals. The push is done first with Incr and undone (Incr of the
// opposite) when the connection is refused, so that refusals take no
// token. Two racing callers can both add the idle credit: the bucket
// then errs on the strict side, never the lenient.
func takeToken(ctx context.Context, s Store, key string, r Rate, now time.Time) (ok bool, undo func(), err error) {
	if r.PerSecond <= 0 {
		return true, noop, nil
	}
	burst := max(r.Burst, 1)
	interval := int64(float64(time.Second) / r.PerSecond)
	tat, err := s.Count(ctx, key, now)
	if err != nil {
		return false, nil, fmt.Errorf("admission: rate %s: %w", key, err)
	}
	nowNS := now.UnixNano()
	delta := interval
	if tat < nowNS {
		delta += nowNS - tat
	}
	tat, err = s.Incr(ctx, key, delta, now, bucketWindow)
	if err != nil {
		return false, nil, fmt.Errorf("admission: rate %s: %w", key, err)
	}
	undo = func() { s.Incr(context.WithoutCancel(ctx), key, -delta, now, bucketWindow) }
	if tat-nowNS > int64(burst)*interval {
		undo()
		return false, nil, nil
	}
	return true, undo, nil
}

// String returns the rate as "5/s burst 20".
func (r Rate) String() string {
	return strconv.FormatFloat(r.PerSecond, 'g', -1, 64) + "/s burst " + strconv.Itoa(r.Burst)
}
