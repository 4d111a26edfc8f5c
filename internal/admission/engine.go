package admission

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"time"

	"postern/internal/addrkey"
)

// AbuseOptions configure the auth-abuse Engine. Every value means what
// it says, 0 included: a count of 0 turns that response off and a
// FailDelay of 0 is no delay, never a default (Postern's configuration
// resolves the defaults, in internal/config). The durations Window,
// BanDuration, MaxBan and GoodIPTTL must be positive for the engine to
// count, ban and remember anything.
type AbuseOptions struct {
	// Trusted addresses are exempt: never delayed, throttled or banned,
	// and their failures are not counted.
	Trusted []netip.Prefix
	// Window is how long failures are counted.
	Window time.Duration
	// IPBanAfter failures from one address within Window ban it.
	IPBanAfter int
	// PrefixBanAfter failures from one IPv4 /24 or IPv6 /64 within Window
	// ban the prefix, and PrefixBanIPs times as many from one IPv6 /48
	// ban the /48.
	PrefixBanAfter int
	// PrefixBanIPs banned addresses of one /24 or /64 within Window ban
	// the prefix; and as many banned /64s of one IPv6 /48 ban the /48.
	PrefixBanIPs int
	// StuffingUsers distinct usernames failing from one address within
	// Window are credential stuffing: the address is banned and an alert
	// logged.
	StuffingUsers int
	// DistributedIPs failing addresses for one username, each in a
	// network of its own (IPv4 /24, IPv6 /48; see NetworkOf), are
	// distributed guessing: the username is put under attack and an
	// alert logged. Many addresses of one network count as one, so one
	// network alone never puts a username under attack. The username
	// stays under attack for Window after the crossing, and again while
	// failures from such networks go on.
	DistributedIPs int
	// UserThrottleAfter is the throttle of a username under attack (see
	// Engine): each network may still have this many passwords checked
	// for it within Window from its addresses that never logged in as
	// it; later attempts from those fail unchecked. 0 turns the throttle
	// off (a username under attack is then only alerted on).
	UserThrottleAfter int

	// FailDelay is the delay before the answer to the first failure;
	// it doubles with each failure from the address within Window, up
	// to MaxFailDelay.
	FailDelay    time.Duration
	MaxFailDelay time.Duration
	// BanDuration is the length of a first ban; each later ban of the
	// same prefix (its strikes, see Ban) doubles it, up to MaxBan.
	BanDuration time.Duration
	MaxBan      time.Duration
	// AlertStrikes is the strike count from which a ban of an address is
	// also an alert (a repeat offender). Prefix bans always alert.
	AlertStrikes int
	// GoodIPTTL is how long an address that logged in as a user is
	// remembered as good for that user (IPv6: its /64); each login
	// renews it.
	GoodIPTTL time.Duration
	// Logger receives ban and alert events; nil means slog.Default().
	Logger *slog.Logger
	// OnBan and OnAlert, when set, are told each ban the Engine puts and
	// each alert it raises, the events it logs, from the goroutine of
	// the failed login: they must not block.
	OnBan   func(BanEvent)
	OnAlert func(Alert)
	// Metrics counts the bans and alerts (NewAbuseMetrics); nil counts
	// into a set registered nowhere.
	Metrics *AbuseMetrics
}

// Engine is the auth-abuse engine. The SMTP session asks it before it
// checks credentials (BeforeAuth) and tells it every outcome
// (AuthResult). It counts failures per address, per prefix (IPv4 /24,
// IPv6 /64), the usernames tried from each address (credential stuffing)
// and the networks trying each username (distributed guessing). Its
// answer grows with the evidence: a delay on each failure, doubling;
// then a ban of the address or of its prefix (and of an IPv6 /48),
// longer for each strike; then an alert in the log ("auth abuse alert",
// kind bruteforce, stuffing or distributed).
//
// A username comes under attack only through distributed guessing:
// failures from DistributedIPs networks (NetworkOf). An address counts
// once, however often it fails; its network counts once, however many
// of its addresses fail; and an address that is banned counts no more.
// So guessing from one address or one network can never throttle the
// real user; it only gets that address or network banned.
//
// While a username is under attack, the addresses that never logged in
// as it (one that did is remembered per user for GoodIPTTL; IPv6: its
// /64) are throttled: their network may still have UserThrottleAfter
// passwords checked for it within Window; past that their attempts are
// refused before the credentials are checked (RFC 4954 §6: 535 5.7.8,
// as for a wrong password). Every failure reply to them, refused or
// checked, waits MaxFailDelay, so neither the reply nor its timing
// tells a refused attempt from a wrong password. The real user, from a
// new network, thus still gets in with the right password; a botnet
// gets UserThrottleAfter guesses a network a Window instead of about
// PrefixBanAfter. Trusted addresses and logins with a client
// certificate are exempt. A ban still shuts out everyone behind the
// banned address or prefix.
//
// An Engine is safe for concurrent use; its state is in the Store.
type Engine struct {
	store Store
	opts  AbuseOptions
	log   *slog.Logger
	m     *AbuseMetrics
}

// NewEngine returns an Engine over store with opts.
func NewEngine(store Store, opts AbuseOptions) *Engine {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	m := opts.Metrics
	if m == nil {
		m = NewAbuseMetrics(nil)
	}
	return &Engine{store: store, opts: opts, log: log, m: m}
}

// Store keys of the engine.
const (
	keyFailIP     = "auth:fail:ip:"  // + address: failures
	keyFailPrefix = "auth:fail:p:"   // + prefix: failures
	keyUsersOfIP  = "auth:users:"    // + address: usernames that failed from it
	keyNetsOfUser = "auth:nets:"     // + username: networks that failed for it
	keyAttack     = "auth:attack:"   // + username: distributed guessing seen
	keyChecks     = "auth:checks:"   // + network "|" username: checks while under attack
	keyGood       = "auth:good:"     // + username: good addresses (IPv6: /64s)
	keyBannedIn   = "auth:bannedin:" // + prefix: banned addresses or /64s inside
	maxUserKeyLen = 256              // longer claimed usernames are cut in keys
)

// userKey normalizes a username for the store's keys and the send
// limits: addrkey.Key, so that only usernames that are one user share
// counters (strings.ToLower would count "\u212Aate" toward kate's).
func userKey(u string) string {
	u = addrkey.Key(u)
	if len(u) > maxUserKeyLen {
		u = u[:maxUserKeyLen]
	}
	return u
}

// goodKey is what is remembered of an address that logged in: the
// address, or its /64 for IPv6 (privacy addresses change within it).
func goodKey(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	return PrefixOf(a).String()
}

// NetworkOf returns the network an address counts for in a username's
// state: its /24 for IPv4, its /48 for IPv6 (IPv6SitePrefix: one site,
// which may hold many /64s).
func NetworkOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := IPv6SitePrefix
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return p
}

func (e *Engine) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(e.opts.Trusted, func(p netip.Prefix) bool { return p.Contains(a) })
}

// coversTrusted reports whether p overlaps a trusted prefix.
func (e *Engine) coversTrusted(p netip.Prefix) bool {
	return slices.ContainsFunc(e.opts.Trusted, p.Overlaps)
}

// AuthVerdict is BeforeAuth's answer about one login attempt.
type AuthVerdict struct {
	// Refuse is true when the attempt must fail whatever the
	// credentials, which must then not be checked.
	Refuse bool
	// Banned is true (with Refuse) when the address is banned: the
	// session answers 421 4.7.0 and closes.
	Banned bool
	// Delay is the least time, from when BeforeAuth was asked, before
	// the session answers a failure of this attempt, refused or a wrong
	// password alike (AuthResult's delay applies too, whichever is
	// longer); 0 when there is none. A success is answered at once.
	Delay time.Duration
}

// BeforeAuth is asked before a login's credentials are checked.
// username is the name the client claimed ("" when the session does not
// know it yet: then only a ban refuses). The attempt is refused when the
// address is banned, or when username is under attack, the address
// never logged in as it, and its network has had its UserThrottleAfter
// checks within Window (asking counts as one). Trusted addresses are
// never refused. On a store error BeforeAuth does not refuse (it fails
// open) and logs the error.
func (e *Engine) BeforeAuth(ctx context.Context, remote netip.Addr, username string, now time.Time) AuthVerdict {
	remote = remote.Unmap()
	if e.trusted(remote) {
		return AuthVerdict{}
	}
	if _, banned, err := e.store.Banned(ctx, remote, now); err != nil {
		e.storeError("ban lookup", err)
		return AuthVerdict{}
	} else if banned {
		return AuthVerdict{Refuse: true, Banned: true}
	}
	if username == "" || e.opts.UserThrottleAfter <= 0 {
		return AuthVerdict{}
	}
	user := userKey(username)
	if n, err := e.store.Count(ctx, keyAttack+user, now); err != nil {
		e.storeError("user state", err)
		return AuthVerdict{}
	} else if n == 0 {
		return AuthVerdict{}
	}
	good, err := e.store.HasMember(ctx, keyGood+user, goodKey(remote), now)
	if err != nil {
		e.storeError("good addresses", err)
		return AuthVerdict{}
	}
	if good {
		return AuthVerdict{}
	}
	// Under attack, from an address not known good: a few checks a
	// window for its network, every failure answered after the longest
	// delay.
	v := AuthVerdict{Delay: e.failDelay(math.MaxInt64)}
	n, err := e.store.Incr(ctx, keyChecks+NetworkOf(remote).String()+"|"+user, 1, now, e.opts.Window)
	if err != nil {
		e.storeError("throttle", err)
		return v
	}
	v.Refuse = n > int64(e.opts.UserThrottleAfter)
	return v
}

// AuthOutcome is the outcome of one login attempt, for AuthResult.
type AuthOutcome struct {
	// Remote is the client's address.
	Remote netip.Addr
	// Username is the name the client claimed; "" when none.
	Username string
	// Mech is the SASL mechanism, for logs.
	Mech string
	// OK is true for a login that stands; false for wrong credentials
	// and for an attempt BeforeAuth refused.
	OK bool
	// ViaClientCert is true when a verified TLS client certificate
	// proved the identity (the session's): its failures are not counted.
	ViaClientCert bool
	// Now is when it happened.
	Now time.Time
}

// AuthResult is told the outcome of every login. It returns the delay
// to wait before answering a failure (0 on success), which replaces any
// fixed delay, and banned true when the address is banned now: the
// session then closes with 421 instead of answering 535. A success
// remembers the address (IPv6: its /64) as good for the user.
func (e *Engine) AuthResult(ctx context.Context, o AuthOutcome) (delay time.Duration, banned bool) {
	remote := o.Remote.Unmap()
	user := userKey(o.Username)
	if o.OK {
		if user != "" {
			if _, err := e.store.AddMember(ctx, keyGood+user, goodKey(remote), o.Now, e.opts.GoodIPTTL); err != nil {
				e.storeError("remember good address", err)
			}
		}
		return 0, false
	}
	if e.trusted(remote) {
		return 0, false
	}
	if o.ViaClientCert {
		return e.failDelay(1), false
	}
	n, banned, err := e.fail(ctx, remote, user, o.Mech, o.Now)
	if err != nil {
		e.storeError("count failure", err)
		return e.failDelay(1), false
	}
	return e.failDelay(n), banned
}

// failDelay is the delay after the nth failure from an address.
func (e *Engine) failDelay(n int64) time.Duration {
	if e.opts.FailDelay <= 0 {
		return 0
	}
	return doubled(e.opts.FailDelay, n-1, e.opts.MaxFailDelay)
}

// doubled returns d doubled times times, at most limit (without
// overflowing).
func doubled(d time.Duration, times int64, limit time.Duration) time.Duration {
	for ; times > 0 && d < limit; times-- {
		if d > limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}

// fail counts one failure and applies the responses. It returns the
// address's failures in the window and whether it is banned now.
func (e *Engine) fail(ctx context.Context, remote netip.Addr, user, mech string, now time.Time) (int64, bool, error) {
	w := e.opts.Window
	// A banned address's failures count no more: it cannot keep a
	// username under attack, nor get its neighbours banned, by going on.
	if _, banned, err := e.store.Banned(ctx, remote, now); err != nil || banned {
		return math.MaxInt64, banned, err
	}
	nIP, err := e.store.Incr(ctx, keyFailIP+remote.String(), 1, now, w)
	if err != nil {
		return 0, false, err
	}
	banned := false
	banIP := func(reason string) error {
		if banned {
			return nil
		}
		banned = true
		return e.banAddress(ctx, remote, reason, now)
	}

	if user != "" {
		// Credential stuffing: many usernames from one address.
		nUsers, err := e.store.AddMember(ctx, keyUsersOfIP+remote.String(), user, now, w)
		if err != nil {
			return 0, false, err
		}
		if e.opts.StuffingUsers > 0 && nUsers >= int64(e.opts.StuffingUsers) {
			if nUsers == int64(e.opts.StuffingUsers) {
				e.alert(Alert{Time: now, Kind: AlertStuffing, Remote: remote, Count: nUsers, Window: w})
			}
			if err := banIP(fmt.Sprintf("auth: credential stuffing, %d usernames in %v", nUsers, w)); err != nil {
				return 0, false, err
			}
		}
		if err := e.countForUser(ctx, remote, user, now); err != nil {
			return 0, false, err
		}
	}

	if e.opts.IPBanAfter > 0 && nIP >= int64(e.opts.IPBanAfter) {
		if err := banIP(fmt.Sprintf("auth: %d failures in %v (last %s)", nIP, w, mech)); err != nil {
			return 0, false, err
		}
	}
	pb, err := e.prefixFailures(ctx, remote, now)
	if err != nil {
		return 0, false, err
	}
	return nIP, banned || pb, nil
}

// prefixFailures counts a failure toward the address's prefix (IPv4
// /24, IPv6 /64) and, for IPv6, toward its /48, and bans each past its
// threshold: PrefixBanAfter failures, and PrefixBanAfter × PrefixBanIPs
// for a /48 (as many as its banned /64s would take), since a guesser
// with a /48 can use an address of a /64 of its own for every guess.
// It reports whether it banned.
func (e *Engine) prefixFailures(ctx context.Context, remote netip.Addr, now time.Time) (bool, error) {
	if e.opts.PrefixBanAfter <= 0 {
		return false, nil
	}
	type level struct {
		p     netip.Prefix
		limit int64
	}
	levels := []level{{PrefixOf(remote), int64(e.opts.PrefixBanAfter)}}
	if remote.Is6() && e.opts.PrefixBanIPs > 0 {
		site, _ := remote.Prefix(IPv6SitePrefix)
		levels = append(levels, level{site, int64(e.opts.PrefixBanAfter) * int64(e.opts.PrefixBanIPs)})
	}
	banned := false
	for _, l := range levels {
		n, err := e.store.Incr(ctx, keyFailPrefix+l.p.String(), 1, now, e.opts.Window)
		if err != nil {
			return banned, err
		}
		if n >= l.limit {
			if err := e.banPrefix(ctx, l.p, fmt.Sprintf("auth: %d failures from %v in %v", n, l.p, e.opts.Window), now); err != nil {
				return banned, err
			}
			banned = true
		}
	}
	return banned, nil
}

// countForUser counts a failure toward the state of user: the network
// of remote joins the networks failing for it (unless remote logged in
// as user before: the user's own mistakes do not count), and from
// DistributedIPs networks on, the username is under attack.
func (e *Engine) countForUser(ctx context.Context, remote netip.Addr, user string, now time.Time) error {
	good, err := e.store.HasMember(ctx, keyGood+user, goodKey(remote), now)
	if err != nil || good {
		return err
	}
	w := e.opts.Window
	nNets, err := e.store.AddMember(ctx, keyNetsOfUser+user, NetworkOf(remote).String(), now, w)
	if err != nil {
		return err
	}
	if e.opts.DistributedIPs <= 0 || nNets < int64(e.opts.DistributedIPs) {
		return nil
	}
	// Marked for Window from the crossing; later failures mark it again
	// once that ends (the set of networks lives while they go on).
	m, err := e.store.Incr(ctx, keyAttack+user, 1, now, w)
	if err != nil {
		return err
	}
	if m == 1 {
		e.alert(Alert{Time: now, Kind: AlertDistributed, User: user, Count: nNets, Window: w})
	}
	return nil
}

// banAddress bans one address (unless a live ban covers it already) and
// escalates to its prefix when enough
// addresses of the prefix are banned within the window.
func (e *Engine) banAddress(ctx context.Context, a netip.Addr, reason string, now time.Time) error {
	if _, ok, err := e.store.Banned(ctx, a, now); err != nil || ok {
		return err // already banned: no new strike
	}
	host := HostPrefix(a)
	b, err := e.putBan(ctx, host, reason, now)
	if err != nil {
		return err
	}
	e.banned(BanEvent{Time: now, Ban: b, Scope: "ip"})
	if e.opts.AlertStrikes > 0 && b.Strikes >= e.opts.AlertStrikes {
		e.alert(Alert{Time: now, Kind: AlertBruteforce, Prefix: host, Strikes: b.Strikes, Reason: reason})
	}
	if e.opts.PrefixBanIPs <= 0 {
		return nil
	}
	prefix := PrefixOf(a)
	n, err := e.store.AddMember(ctx, keyBannedIn+prefix.String(), a.String(), now, e.opts.Window)
	if err != nil {
		return err
	}
	if n >= int64(e.opts.PrefixBanIPs) {
		return e.banPrefix(ctx, prefix, fmt.Sprintf("auth: %d addresses of %v banned in %v", n, prefix, e.opts.Window), now)
	}
	return nil
}

// banPrefix bans a /24 or /64 (unless a live ban of it lasts longer) and,
// for IPv6, escalates to the /48 when enough of its /64s are banned.
func (e *Engine) banPrefix(ctx context.Context, p netip.Prefix, reason string, now time.Time) error {
	if e.coversTrusted(p) {
		// The gate checks bans before admission.trusted: a ban of p
		// would shut out the trusted addresses in it. The bans of
		// p's own guilty addresses stand.
		return nil
	}
	if b, ok, err := e.store.Banned(ctx, p.Addr(), now); err != nil {
		return err
	} else if ok && b.Prefix.Bits() <= p.Bits() {
		return nil // already banned as a whole
	}
	b, err := e.putBan(ctx, p, reason, now)
	if err != nil {
		return err
	}
	scope := "prefix"
	if p.Bits() == IPv6SitePrefix {
		scope = "site"
	}
	e.banned(BanEvent{Time: now, Ban: b, Scope: scope})
	e.alert(Alert{Time: now, Kind: AlertBruteforce, Prefix: p, Strikes: b.Strikes, Until: b.Until, Reason: reason})
	if !p.Addr().Is6() || p.Bits() != 64 || e.opts.PrefixBanIPs <= 0 {
		return nil
	}
	site, _ := p.Addr().Prefix(IPv6SitePrefix)
	n, err := e.store.AddMember(ctx, keyBannedIn+site.String(), p.String(), now, e.opts.Window)
	if err != nil {
		return err
	}
	if n >= int64(e.opts.PrefixBanIPs) {
		return e.banPrefix(ctx, site, fmt.Sprintf("auth: %d /64s of %v banned in %v", n, site, e.opts.Window), now)
	}
	return nil
}

// putBan bans p for BanDuration * 2^strikes (at most MaxBan).
func (e *Engine) putBan(ctx context.Context, p netip.Prefix, reason string, now time.Time) (Ban, error) {
	strikes, err := e.store.Strikes(ctx, p)
	if err != nil {
		return Ban{}, err
	}
	d := doubled(e.opts.BanDuration, int64(strikes), e.opts.MaxBan)
	b := Ban{Prefix: p, Until: now.Add(d), Reason: reason, Created: now, Strikes: strikes + 1}
	if err := e.store.PutBan(ctx, b); err != nil {
		return Ban{}, err
	}
	return b, nil
}

// banned counts, logs and tells a ban. A prefix ban is logged as its
// alert only, as before.
func (e *Engine) banned(b BanEvent) {
	e.m.Bans.WithLabelValues(b.Scope).Inc()
	if b.Scope == "ip" {
		e.log.LogAttrs(context.Background(), slog.LevelWarn, "auth ban", b.LogAttrs()...)
	}
	if e.opts.OnBan != nil {
		e.opts.OnBan(b)
	}
}

// alert counts, logs and tells an auth abuse alert.
func (e *Engine) alert(a Alert) {
	e.m.Alerts.WithLabelValues(a.Kind).Inc()
	e.log.LogAttrs(context.Background(), slog.LevelWarn, "auth abuse alert", a.LogAttrs()...)
	if e.opts.OnAlert != nil {
		e.opts.OnAlert(a)
	}
}

func (e *Engine) storeError(what string, err error) {
	e.log.Error("auth abuse engine: store failed; failing open", "op", what, "err", err)
}
