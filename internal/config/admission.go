package config

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"time"
)

// Defaults of the [admission], [abuse] and [send_limits] tables.
const (
	DefaultMaxConnsPerIP     = 20
	DefaultMaxConnsPerPrefix = 50
	DefaultMaxConnsPerV6Site = 100
	DefaultIPRate            = 5.0
	DefaultIPBurst           = 20
	DefaultPrefixRate        = 20.0
	DefaultPrefixBurst       = 60

	DefaultAbuseWindow       = 10 * time.Minute
	DefaultIPBanAfter        = 10
	DefaultPrefixBanAfter    = 30
	DefaultPrefixBanIPs      = 3
	DefaultStuffingUsernames = 5
	DefaultUserThrottleAfter = 3
	DefaultDistributedIPs    = 5
	DefaultFailDelay         = time.Second
	DefaultMaxFailDelay      = 10 * time.Second
	DefaultBanDuration       = 15 * time.Minute
	DefaultMaxBan            = 24 * time.Hour
	DefaultAlertStrikes      = 3
	DefaultGoodIPTTL         = 30 * 24 * time.Hour

	DefaultMessagesPerHour   = 200
	DefaultRecipientsPerHour = 1000
	DefaultUserSessions      = 10

	DefaultRedisKeyPrefix = "postern:"
)

// The values of send_limits.over_limit: what happens to a message over a
// user's hourly send limits.
const (
	// OverLimitRefuse answers it 451 4.7.1 naming the limit (the default).
	OverLimitRefuse = "refuse"
	// OverLimitHold takes it and holds it in the queue for review: it is
	// delivered only once an operator releases it (postern queue release).
	OverLimitHold = "hold"
)

// DefaultAdmissionTrusted returns admission.trusted when the file does
// not set it: loopback, whose clients (webmail, sendmail, monitoring) run
// on the host itself.
func DefaultAdmissionTrusted() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// AdmissionTables holds the [admission], [abuse], [send_limits] and
// [redis] tables.
type AdmissionTables struct {
	// Admission configures the gate at accept.
	Admission Admission
	// Abuse configures the auth-abuse engine.
	Abuse Abuse
	// SendLimits caps what authenticated users send.
	SendLimits SendLimits
	// Redis, when its Address is set, holds the admission state
	// (counters, bans, good addresses) so that several nodes share it.
	Redis Redis
}

// Admission is the [admission] table: the gate every connection passes
// when it is accepted, before any TLS byte. A count of 0 turns its cap
// off; a rate of 0 turns its bucket off.
type Admission struct {
	// Trusted addresses skip the caps and rates, and the abuse engine
	// never delays, throttles or bans them; default loopback.
	Trusted []netip.Prefix
	// MaxConnsPerIP caps concurrent connections from one address.
	MaxConnsPerIP int
	// MaxConnsPerPrefix caps them per IPv4 /24 and per IPv6 /64.
	MaxConnsPerPrefix int
	// MaxConnsPerV6Site caps them per IPv6 /48.
	MaxConnsPerV6Site int
	// IPRate and IPBurst are the token bucket of new connections per
	// address: IPBurst at once, IPRate more a second.
	IPRate  float64
	IPBurst int
	// PrefixRate and PrefixBurst are the same per /24 or /64.
	PrefixRate  float64
	PrefixBurst int
}

// ListenerAdmission holds a listener's allow and deny lists.
type ListenerAdmission struct {
	// Allow, when not empty, admits only clients in these prefixes.
	Allow []netip.Prefix
	// Deny refuses clients in these prefixes (before Allow).
	Deny []netip.Prefix
}

// Abuse is the [abuse] table: the auth-abuse engine. Thresholds count
// within Window; a threshold of 0 turns that response off.
type Abuse struct {
	// Enabled turns the engine on (the default).
	Enabled bool
	// Window is how long failures are counted.
	Window time.Duration
	// IPBanAfter failures from one address ban it.
	IPBanAfter int
	// PrefixBanAfter failures from one /24 or /64 ban the prefix;
	// PrefixBanIPs times as many from one IPv6 /48 ban the /48.
	PrefixBanAfter int
	// PrefixBanIPs banned addresses of one /24 or /64 (and banned /64s
	// of one /48) ban the prefix.
	PrefixBanIPs int
	// StuffingUsernames usernames failing from one address ban it, with
	// an alert (credential stuffing).
	StuffingUsernames int
	// UserThrottleAfter is the throttle of a username under attack:
	// the password checks each network may still have for it within
	// Window from its addresses that never logged in as it; later
	// attempts from those fail unchecked.
	UserThrottleAfter int
	// DistributedIPs failing addresses for one username, each in a
	// network of its own (IPv4 /24, IPv6 /48), put it under attack, with
	// an alert (distributed guessing).
	DistributedIPs int
	// FailDelay is the delay before answering the first failure; it
	// doubles with each failure of the address up to MaxFailDelay. It
	// replaces limits.auth_fail_delay when the engine is enabled.
	FailDelay    time.Duration
	MaxFailDelay time.Duration
	// BanDuration is the first ban's length; each strike doubles it up
	// to MaxBan.
	BanDuration time.Duration
	MaxBan      time.Duration
	// AlertStrikes is the strike from which an address ban alerts.
	AlertStrikes int
	// GoodIPTTL is how long an address that logged in as a user stays
	// exempt from the throttle of that username.
	GoodIPTTL time.Duration
}

// SendLimits is the [send_limits] table. A limit of 0 means none.
type SendLimits struct {
	// UserSendLimits are the defaults for every user.
	UserSendLimits
	// Users holds complete limits for some users (lower case), each
	// [send_limits.users."NAME"] table merged over the defaults.
	Users map[string]UserSendLimits
}

// UserSendLimits are the send limits of one user.
type UserSendLimits struct {
	// MessagesPerHour caps the user's messages in an hour.
	MessagesPerHour int
	// RecipientsPerHour caps their recipients in an hour.
	RecipientsPerHour int
	// Sessions caps the user's concurrent sessions (per node).
	Sessions int
	// OverLimit is OverLimitRefuse or OverLimitHold: what happens to a
	// message over MessagesPerHour or RecipientsPerHour.
	OverLimit string
}

// Redis is the [redis] table.
type Redis struct {
	// Address is host:port of the Redis server; "" keeps the admission
	// state in memory (one node).
	Address string
	// Username and PasswordFile (a file holding the password) are for
	// Redis AUTH; empty means none.
	Username     string
	PasswordFile string
	// DB is the database number.
	DB int
	// KeyPrefix starts every key; nodes that share state use the same.
	KeyPrefix string
}

func defaultAdmissionTables() AdmissionTables {
	return AdmissionTables{
		Admission: Admission{
			Trusted:           DefaultAdmissionTrusted(),
			MaxConnsPerIP:     DefaultMaxConnsPerIP,
			MaxConnsPerPrefix: DefaultMaxConnsPerPrefix,
			MaxConnsPerV6Site: DefaultMaxConnsPerV6Site,
			IPRate:            DefaultIPRate,
			IPBurst:           DefaultIPBurst,
			PrefixRate:        DefaultPrefixRate,
			PrefixBurst:       DefaultPrefixBurst,
		},
		Abuse: Abuse{
			Enabled:           true,
			Window:            DefaultAbuseWindow,
			IPBanAfter:        DefaultIPBanAfter,
			PrefixBanAfter:    DefaultPrefixBanAfter,
			PrefixBanIPs:      DefaultPrefixBanIPs,
			StuffingUsernames: DefaultStuffingUsernames,
			UserThrottleAfter: DefaultUserThrottleAfter,
			DistributedIPs:    DefaultDistributedIPs,
			FailDelay:         DefaultFailDelay,
			MaxFailDelay:      DefaultMaxFailDelay,
			BanDuration:       DefaultBanDuration,
			MaxBan:            DefaultMaxBan,
			AlertStrikes:      DefaultAlertStrikes,
			GoodIPTTL:         DefaultGoodIPTTL,
		},
		SendLimits: SendLimits{UserSendLimits: UserSendLimits{
			MessagesPerHour:   DefaultMessagesPerHour,
			RecipientsPerHour: DefaultRecipientsPerHour,
			Sessions:          DefaultUserSessions,
			OverLimit:         OverLimitRefuse,
		}},
		Redis: Redis{KeyPrefix: DefaultRedisKeyPrefix},
	}
}

// prefixes decodes tbl[name], an array of addresses and CIDR prefixes.
func (d *decoder) prefixes(tbl map[string]any, name, key string) []netip.Prefix {
	var ss []string
	if !d.strs(tbl, name, key, &ss) {
		return nil
	}
	var out []netip.Prefix
	for i, s := range ss {
		p, err := parsePrefixOrAddr(s)
		if err != nil {
			d.fail(fmt.Sprintf("%s[%d]", key, i), "%v", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// count sets *dst to tbl[name] when it is an integer from 0 to 1e9.
func (d *decoder) count(tbl map[string]any, name, key string, dst *int) {
	if n, ok := d.integer(tbl, name, key, 0, 1e9); ok {
		*dst = int(n)
	}
}

// rate sets *dst to tbl[name] when it is a number from 0 to 1e6.
func (d *decoder) rate(tbl map[string]any, name, key string, dst *float64) {
	v, ok := tbl[name]
	if !ok {
		return
	}
	var f float64
	switch v := v.(type) {
	case int64:
		f = float64(v)
	case float64:
		f = v
	default:
		d.fail(key, "expected a number of connections a second, got %s", describe(v))
		return
	}
	if f < 0 || f > 1e6 || math.IsNaN(f) {
		d.fail(key, "%v is out of range (0 to 1000000)", f)
		return
	}
	*dst = f
}

// listenerAdmission decodes a listener's allow and deny; k is the
// listener's key ("listener[0]").
func (d *decoder) listenerAdmission(t map[string]any, k string, l *ListenerAdmission) {
	l.Allow = d.prefixes(t, "allow", k+".allow")
	l.Deny = d.prefixes(t, "deny", k+".deny")
}

// admissionTables decodes [admission], [abuse], [send_limits] and
// [redis]; dir resolves redis.password_file.
func (d *decoder) admissionTables(tree map[string]any, dir string, a *AdmissionTables) {
	if t := d.table(tree, "admission", "admission"); t != nil {
		d.unknown(t, []string{"admission"}, "trusted", "max_conns_per_ip", "max_conns_per_prefix",
			"max_conns_per_v6_site", "ip_rate", "ip_burst", "prefix_rate", "prefix_burst")
		x := &a.Admission
		if _, set := t["trusted"]; set {
			x.Trusted = d.prefixes(t, "trusted", "admission.trusted")
		}
		d.count(t, "max_conns_per_ip", "admission.max_conns_per_ip", &x.MaxConnsPerIP)
		d.count(t, "max_conns_per_prefix", "admission.max_conns_per_prefix", &x.MaxConnsPerPrefix)
		d.count(t, "max_conns_per_v6_site", "admission.max_conns_per_v6_site", &x.MaxConnsPerV6Site)
		d.rate(t, "ip_rate", "admission.ip_rate", &x.IPRate)
		d.count(t, "ip_burst", "admission.ip_burst", &x.IPBurst)
		d.rate(t, "prefix_rate", "admission.prefix_rate", &x.PrefixRate)
		d.count(t, "prefix_burst", "admission.prefix_burst", &x.PrefixBurst)
	}
	if t := d.table(tree, "abuse", "abuse"); t != nil {
		d.unknown(t, []string{"abuse"}, "enabled", "window", "ip_ban_after", "prefix_ban_after", "prefix_ban_ips",
			"stuffing_usernames", "user_throttle_after", "distributed_ips", "fail_delay", "max_fail_delay",
			"ban_duration", "max_ban", "alert_strikes", "good_ip_ttl")
		x := &a.Abuse
		d.boolean(t, "enabled", "abuse.enabled", &x.Enabled)
		d.ints(t, "abuse.", 0, 1e9, []field[int]{
			{"ip_ban_after", &x.IPBanAfter}, {"prefix_ban_after", &x.PrefixBanAfter},
			{"prefix_ban_ips", &x.PrefixBanIPs}, {"stuffing_usernames", &x.StuffingUsernames},
			{"user_throttle_after", &x.UserThrottleAfter}, {"distributed_ips", &x.DistributedIPs},
			{"alert_strikes", &x.AlertStrikes},
		})
		d.durations(t, "abuse.", []field[time.Duration]{
			{"window", &x.Window}, {"fail_delay", &x.FailDelay}, {"max_fail_delay", &x.MaxFailDelay},
			{"ban_duration", &x.BanDuration}, {"max_ban", &x.MaxBan}, {"good_ip_ttl", &x.GoodIPTTL},
		})
	}
	if t := d.table(tree, "send_limits", "send_limits"); t != nil {
		d.unknown(t, []string{"send_limits"}, "messages_per_hour", "recipients_per_hour", "sessions", "over_limit", "users")
		d.userSendLimits(t, "send_limits", &a.SendLimits.UserSendLimits)
		if users := d.table(t, "users", "send_limits.users"); users != nil {
			a.SendLimits.Users = map[string]UserSendLimits{}
			names := make([]string, 0, len(users))
			for n := range users {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				k := keyOf("send_limits", "users", n)
				u := d.table(users, n, k)
				if u == nil {
					continue
				}
				d.unknown(u, []string{"send_limits", "users", n}, "messages_per_hour", "recipients_per_hour", "sessions", "over_limit")
				l := a.SendLimits.UserSendLimits
				d.userSendLimits(u, k, &l)
				a.SendLimits.Users[lower(n)] = l
			}
		}
	}
	if t := d.table(tree, "redis", "redis"); t != nil {
		d.unknown(t, []string{"redis"}, "address", "username", "password_file", "db", "key_prefix")
		x := &a.Redis
		d.str(t, "address", "redis.address", &x.Address)
		d.str(t, "username", "redis.username", &x.Username)
		d.path(t, "password_file", "redis.password_file", dir, &x.PasswordFile)
		if n, ok := d.integer(t, "db", "redis.db", 0, 1<<16); ok {
			x.DB = int(n)
		}
		d.str(t, "key_prefix", "redis.key_prefix", &x.KeyPrefix)
	}
}

func (d *decoder) userSendLimits(t map[string]any, k string, l *UserSendLimits) {
	d.count(t, "messages_per_hour", k+".messages_per_hour", &l.MessagesPerHour)
	d.count(t, "recipients_per_hour", k+".recipients_per_hour", &l.RecipientsPerHour)
	d.count(t, "sessions", k+".sessions", &l.Sessions)
	var ol string
	if d.str(t, "over_limit", k+".over_limit", &ol) {
		switch ol {
		case OverLimitRefuse, OverLimitHold:
			l.OverLimit = ol
		default:
			d.fail(k+".over_limit", "%q is not %q or %q", ol, OverLimitRefuse, OverLimitHold)
		}
	}
}

// validateAdmission checks the admission tables and the listeners'
// allow and deny lists.
func (c *Config) validateAdmission(p *problems) {
	a := &c.AdmissionTables
	if a.Admission.IPRate > 0 && a.Admission.IPBurst < 1 {
		p.addf("admission.ip_burst", "must be at least 1 when admission.ip_rate is set")
	}
	if a.Admission.PrefixRate > 0 && a.Admission.PrefixBurst < 1 {
		p.addf("admission.prefix_burst", "must be at least 1 when admission.prefix_rate is set")
	}
	if x := a.Abuse; x.Enabled {
		for _, f := range []struct {
			key string
			d   time.Duration
		}{
			{"abuse.window", x.Window}, {"abuse.ban_duration", x.BanDuration},
			{"abuse.max_ban", x.MaxBan}, {"abuse.good_ip_ttl", x.GoodIPTTL},
		} {
			if f.d <= 0 {
				p.addf(f.key, "must be positive")
			}
		}
		if x.FailDelay < 0 || x.MaxFailDelay < 0 {
			p.addf("abuse.fail_delay", "must not be negative")
		}
		if x.MaxFailDelay < x.FailDelay {
			p.addf("abuse.max_fail_delay", "is less than abuse.fail_delay")
		}
		if x.MaxBan < x.BanDuration {
			p.addf("abuse.max_ban", "is less than abuse.ban_duration")
		}
	}
	if a.Redis.Address != "" && !hasPort(a.Redis.Address) {
		p.addf("redis.address", "%q is not host:port", a.Redis.Address)
	}
	for i, l := range c.Listeners {
		for j, al := range l.Allow {
			for _, dn := range l.Deny {
				if dn.Bits() <= al.Bits() && dn.Contains(al.Addr()) {
					p.addf(fmt.Sprintf("listener[%d].allow[%d]", i, j), "%v is wholly inside deny %v", al, dn)
				}
			}
		}
	}
}

// hasPort reports whether s looks like host:port with a numeric port.
func hasPort(s string) bool {
	i := len(s) - 1
	for i >= 0 && s[i] >= '0' && s[i] <= '9' {
		i--
	}
	return i >= 0 && i < len(s)-1 && s[i] == ':'
}
