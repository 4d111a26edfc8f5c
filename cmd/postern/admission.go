package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"postern/internal/admin"
	"postern/internal/admission"
	"postern/internal/admission/redisstore"
	"postern/internal/config"
	"postern/internal/smtpd"
)

// admissionSetup is the admission state of a running server and what
// uses it: the gate at accept, the auth-abuse engine and the send limits.
type admissionSetup struct {
	// store holds counters, bans and good addresses: in memory, or in
	// Redis when [redis] address is set. The admin socket's ban API uses
	// it too.
	store   admission.Store
	gate    *admission.Gate
	guard   smtpd.AuthGuard // nil when [abuse] enabled = false
	limiter *admission.Limiter
	close   func() error
}

// newAdmission builds the admission state from [admission], [abuse],
// [send_limits], [redis] and the listeners' allow and deny lists. With
// [redis], Redis must answer at start: a node that cannot share the ban
// list should not come up silently without it.
// The abuse engine tells obs, when not nil, of its bans and alerts (the
// status page).
func newAdmission(cfg *config.Config, log *slog.Logger, obs *admin.Events) (*admissionSetup, error) {
	a := &admissionSetup{close: func() error { return nil }}
	if r := cfg.Redis; r.Address != "" {
		var password string
		if r.PasswordFile != "" {
			b, err := os.ReadFile(r.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("serve: redis password: %w", err)
			}
			password = strings.TrimRight(string(b), "\r\n")
		}
		s, err := redisstore.New(redisstore.Options{Addr: r.Address, Username: r.Username, Password: password,
			DB: r.DB, Prefix: r.KeyPrefix})
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("serve: [redis] %s: %w", r.Address, err)
		}
		a.store, a.close = s, s.Close
		log.Info("admission state in redis", "address", r.Address, "db", r.DB, "prefix", r.KeyPrefix)
	} else {
		a.store = admission.NewMemoryStore()
	}
	a.gate = admission.NewGate(a.store, gateOptions(cfg))
	if cfg.Abuse.Enabled {
		o := abuseOptions(cfg, log)
		if obs != nil {
			o.OnBan, o.OnAlert = obs.Ban, obs.Alert
		}
		a.guard = admission.NewEngine(a.store, o)
	}
	sl := cfg.SendLimits
	lo := admission.LimiterOptions{Default: sendLimits(sl.UserSendLimits), Logger: log}
	if len(sl.Users) > 0 {
		lo.Users = make(map[string]admission.SendLimits, len(sl.Users))
		for u, l := range sl.Users {
			lo.Users[u] = sendLimits(l)
		}
	}
	a.limiter = admission.NewLimiter(a.store, lo)
	return a, nil
}

// sendLimits converts a user's [send_limits] into the Limiter's.
func sendLimits(l config.UserSendLimits) admission.SendLimits {
	return admission.SendLimits{MessagesPerHour: l.MessagesPerHour, RecipientsPerHour: l.RecipientsPerHour,
		Sessions: l.Sessions, Hold: l.OverLimit == config.OverLimitHold}
}

// Close releases the store's connections.
func (a *admissionSetup) Close() error { return a.close() }

// off turns a config count, where 0 means off, into an admission option,
// where 0 means the default and a negative value means off.
func off(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// rateOf turns a config rate (0: off) into an admission.Rate.
func rateOf(perSecond float64, burst int) admission.Rate {
	if perSecond <= 0 {
		return admission.Rate{PerSecond: -1}
	}
	return admission.Rate{PerSecond: perSecond, Burst: burst}
}

func gateOptions(cfg *config.Config) admission.GateOptions {
	x := cfg.Admission
	o := admission.GateOptions{
		Listeners:         map[string]admission.Listener{},
		Trusted:           x.Trusted,
		MaxConnsPerIP:     off(x.MaxConnsPerIP),
		MaxConnsPerPrefix: off(x.MaxConnsPerPrefix),
		MaxConnsPerV6Site: off(x.MaxConnsPerV6Site),
		IPRate:            rateOf(x.IPRate, x.IPBurst),
		PrefixRate:        rateOf(x.PrefixRate, x.PrefixBurst),
	}
	// Every listener does TLS (mx at STARTTLS): each refusal saves one.
	for _, l := range cfg.Listeners {
		o.Listeners[l.Name] = admission.Listener{Allow: l.Allow, Deny: l.Deny}
	}
	return o
}

func abuseOptions(cfg *config.Config, log *slog.Logger) admission.AbuseOptions {
	x := cfg.Abuse
	o := admission.AbuseOptions{
		Trusted:           cfg.Admission.Trusted,
		Window:            x.Window,
		IPBanAfter:        off(x.IPBanAfter),
		PrefixBanAfter:    off(x.PrefixBanAfter),
		PrefixBanIPs:      off(x.PrefixBanIPs),
		StuffingUsers:     off(x.StuffingUsernames),
		UserThrottleAfter: off(x.UserThrottleAfter),
		DistributedIPs:    off(x.DistributedIPs),
		FailDelay:         x.FailDelay,
		MaxFailDelay:      x.MaxFailDelay,
		BanDuration:       x.BanDuration,
		MaxBan:            x.MaxBan,
		AlertStrikes:      off(x.AlertStrikes),
		GoodIPTTL:         x.GoodIPTTL,
		Logger:            log.With("component", "abuse"),
	}
	if o.FailDelay == 0 {
		o.FailDelay = -1 // no delay
	}
	return o
}
