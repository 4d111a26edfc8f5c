package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

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
	store admission.Store
	// redis is the one client of [redis]'s server, shared by the store
	// and the TLS session ticket keys (tlsserve.go); nil without [redis].
	redis   *redis.Client
	gate    *admission.Gate
	guard   smtpd.AuthGuard // nil when [abuse] enabled = false
	limiter *admission.Limiter
}

// newAdmission builds the admission state from [admission], [abuse],
// [send_limits], [redis] (with its password in sec) and the listeners'
// allow and deny lists. With [redis], Redis must answer at start: a node
// that cannot share the ban list should not come up silently without it.
// The abuse engine tells obs, when not nil, of its bans and alerts (the
// status page). Each part counts into its metrics in met.
func newAdmission(cfg *config.Config, sec config.Secrets, log *slog.Logger, obs *admin.Events, met partMetrics) (*admissionSetup, error) {
	a := &admissionSetup{}
	if r := cfg.Redis; r.Address != "" {
		opts := redisOptions(cfg, sec)
		rdb, err := redisstore.NewClient(opts)
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		opts.Client = rdb
		s, err := redisstore.New(opts)
		if err != nil {
			rdb.Close()
			return nil, fmt.Errorf("serve: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			rdb.Close()
			return nil, fmt.Errorf("serve: [redis] %s: %w", r.Address, err)
		}
		a.store, a.redis = s, rdb
		log.Info("admission state in redis", "address", r.Address, "db", r.DB, "prefix", r.KeyPrefix)
	} else {
		a.store = admission.NewMemoryStore()
	}
	gopts := gateOptions(cfg)
	gopts.Metrics = met.admission
	a.gate = admission.NewGate(a.store, gopts)
	if cfg.Abuse.Enabled {
		a.guard = newAbuseEngine(cfg, a.store, log, obs, met.abuse)
	}
	lo := limiterOptions(cfg)
	lo.Logger, lo.Metrics = log, met.admission
	a.limiter = admission.NewLimiter(a.store, lo)
	return a, nil
}

// newAbuseEngine builds the auth-abuse engine of [abuse] over store; it
// tells obs, when not nil, of its bans and alerts, and counts them into
// met (nil: a set registered nowhere).
func newAbuseEngine(cfg *config.Config, store admission.Store, log *slog.Logger, obs *admin.Events, met *admission.AbuseMetrics) *admission.Engine {
	o := abuseOptions(cfg)
	o.Logger, o.Metrics = log.With("component", "abuse"), met
	if obs != nil {
		o.OnBan, o.OnAlert = obs.Ban, obs.Alert
	}
	return admission.NewEngine(store, o)
}

// Close closes the Redis client, if any.
func (a *admissionSetup) Close() error {
	if a.redis == nil {
		return nil
	}
	return a.redis.Close()
}
