package admission

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// BanEvent is a ban the Engine put: logged as "auth ban" (at WARN) and
// told to AbuseOptions.OnBan.
type BanEvent struct {
	// Time is when the ban was put.
	Time time.Time
	// Ban is the ban: prefix, until, reason, strikes.
	Ban Ban
	// Scope is "ip" (one address), "prefix" (an IPv4 /24 or IPv6 /64)
	// or "site" (an IPv6 /48).
	Scope string
}

// LogAttrs returns the attributes of the event's log line.
func (b BanEvent) LogAttrs() []slog.Attr {
	return []slog.Attr{slog.String("prefix", b.Ban.Prefix.String()), slog.String("scope", b.Scope),
		slog.Time("until", b.Ban.Until), slog.Int("strikes", b.Ban.Strikes), slog.String("reason", b.Ban.Reason)}
}

// Alert kinds.
const (
	// AlertBruteforce is a repeat offender's ban (AlertStrikes) or a
	// ban of a prefix.
	AlertBruteforce = "bruteforce"
	// AlertStuffing is credential stuffing: StuffingUsers usernames
	// failing from one address.
	AlertStuffing = "stuffing"
	// AlertDistributed is distributed guessing: DistributedIPs networks
	// failing for one username.
	AlertDistributed = "distributed"
)

// Alert is an auth-abuse alert: logged as "auth abuse alert" (at WARN)
// and told to AbuseOptions.OnAlert.
type Alert struct {
	// Time is when it was raised.
	Time time.Time
	// Kind is AlertBruteforce, AlertStuffing or AlertDistributed.
	Kind string
	// Prefix is the banned prefix (bruteforce).
	Prefix netip.Prefix
	// Remote is the address trying many usernames (stuffing).
	Remote netip.Addr
	// User is the username under attack (distributed).
	User string
	// Count is the usernames tried (stuffing) or the networks trying
	// (distributed) within Window.
	Count  int64
	Window time.Duration
	// Strikes and Until are those of the ban (bruteforce); Until is zero
	// for a repeat offender's alert, whose ban was logged already.
	Strikes int
	Until   time.Time
	// Reason is the ban's reason (bruteforce).
	Reason string
}

// Subject returns what the alert is about: the prefix, the address or
// the username.
func (a Alert) Subject() string {
	switch {
	case a.Prefix.IsValid():
		return a.Prefix.String()
	case a.Remote.IsValid():
		return a.Remote.String()
	}
	return a.User
}

// Describe says in words why the alert was raised.
func (a Alert) Describe() string {
	switch a.Kind {
	case AlertStuffing:
		return fmt.Sprintf("%d usernames tried within %v", a.Count, a.Window)
	case AlertDistributed:
		return fmt.Sprintf("%d networks tried it within %v", a.Count, a.Window)
	}
	return a.Reason
}

// LogAttrs returns the attributes of the alert's log line: kind, then
// prefix, strikes, until and reason (bruteforce); remote, usernames and
// window (stuffing); user, networks and window (distributed).
func (a Alert) LogAttrs() []slog.Attr {
	at := []slog.Attr{slog.String("kind", a.Kind)}
	switch a.Kind {
	case AlertStuffing:
		return append(at, slog.String("remote", a.Remote.String()), slog.Int64("usernames", a.Count),
			slog.Duration("window", a.Window))
	case AlertDistributed:
		return append(at, slog.String("user", a.User), slog.Int64("networks", a.Count),
			slog.Duration("window", a.Window))
	}
	at = append(at, slog.String("prefix", a.Prefix.String()), slog.Int("strikes", a.Strikes))
	if !a.Until.IsZero() {
		at = append(at, slog.Time("until", a.Until))
	}
	return append(at, slog.String("reason", a.Reason))
}
