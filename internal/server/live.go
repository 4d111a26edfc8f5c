package server

// The parts of a running server that a reload changes without dropping
// a session: the aliases and send-as grants, the local domains, the DKIM
// keys and the checks of [mail_auth], the session limits, the admission
// lists, caps and rates, the abuse engine's settings, the send limits,
// outbound delivery (its retry schedule, TLS policy, pool and smarthost),
// the log level and the trace list.
//
// buildLive makes them from a configuration with the converters of
// options.go and starts nothing, so a reload can build them all from a
// new file and refuse the file whole when one fails; applyLive then swaps
// them in, each atomically. serve builds them the same way at start.
// Sessions take the limits when they start (smtpd.Server.SetLimits);
// the other parts are read at each use.
//
// What cannot change while the server runs (restartKeys) is held at the
// values of the start by effective: a reload names those keys as needing
// a restart, and `postern restart` applies them.

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"postern/internal/admission"
	"postern/internal/config"
	"postern/internal/delivery/remote"
	"postern/internal/mailauth"
	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/smtpd"
	"postern/internal/userdb"
)

// liveSet is the reloadable parts built from one configuration.
type liveSet struct {
	cfg     *config.Config // effective: restart-only keys as at start
	sec     config.Secrets
	dir     userdb.DirectoryConfig
	mx, sub smtpd.Filter          // nil: none
	keys    []mailauth.SigningKey // the DKIM keys sub signs with
	dkim    []string              // the same, "domain selector", sorted
	out     *remote.Deliverer
	gate    admission.GateOptions
	abuse   *admission.Engine // nil without [abuse] enabled
	limiter admission.LimiterOptions
	limits  smtpd.Limits
	policy  queue.RetryPolicy
	trace   *smtpd.TraceList
}

// buildLive builds the reloadable parts from cfg (effective) and its
// secrets, with the parts built once (resolver, directory, admission
// store, PKCS#11 tokens) of b. It starts nothing and changes nothing
// running; on error nothing it built is in use.
func (b *serveBase) buildLive(cfg *config.Config, sec config.Secrets) (s *liveSet, err error) {
	s = &liveSet{cfg: cfg, sec: sec, dir: directoryConfig(cfg), gate: gateOptions(cfg), limiter: limiterOptions(cfg),
		limits: limitsOf(cfg), policy: retryPolicy(cfg)}
	if err := s.dir.Validate(); err != nil {
		return nil, err
	}
	if s.trace, err = smtpd.ParseTraceList(cfg.Log.Trace); err != nil {
		return nil, fmt.Errorf("log.trace: %w", err)
	}
	if s.mx, err = checkFilter(cfg, b.resolver, b.dir.IsLocalDomain, b.log, b.parts.mailauth); err != nil {
		return nil, err
	}
	if s.sub, s.keys, err = signingFilter(cfg, b.log, b.tokens); err != nil {
		return nil, err
	}
	for _, k := range s.keys {
		s.dkim = append(s.dkim, k.Domain+" "+k.Selector)
	}
	slices.Sort(s.dkim)
	planner, err := newPlanner(cfg, b.resolver, b.log, b.parts.policy)
	if err != nil {
		return nil, err
	}
	if s.out, err = newRemote(cfg, sec, planner, b.log); err != nil {
		return nil, err
	}
	s.out.Metrics = b.remoteMetrics
	if cfg.Abuse.Enabled {
		s.abuse = newAbuseEngine(cfg, b.adm.store, b.log, b.events, b.parts.abuse)
	}
	return s, nil
}

// applyLive makes s the reloadable parts in use. The running servers
// and queue runner, when there are (in), take its limits and retry
// schedule.
func (b *serveBase) applyLive(s *liveSet, in *instance) {
	b.dir.SetConfig(s.dir)
	b.mx.Set(s.mx)
	b.sub.Set(s.sub)
	b.remote.swap(s.out)
	b.adm.gate.SetOptions(s.gate)
	b.adm.limiter.SetOptions(s.limiter)
	if b.guard != nil && s.abuse != nil {
		b.guard.e.Store(s.abuse)
	}
	b.trace.Set(s.trace)
	b.level.Set(s.cfg.Log.Level)
	if in != nil {
		for _, srv := range in.servers {
			srv.SetLimits(s.limits)
		}
		in.runner.SetPolicy(s.policy)
	}
	b.live.Store(s)
}

// liveRemote is the queue's remote delivery, whose Deliverer a reload
// replaces.
type liveRemote struct {
	d atomic.Pointer[remote.Deliverer]
}

// swap makes d the Deliverer of the next batches; the one it replaces
// ends its idle sessions, and those in use when their delivery ends.
func (l *liveRemote) swap(d *remote.Deliverer) {
	if old := l.d.Swap(d); old != nil {
		old.Close()
	}
}

// close closes the Deliverer in use.
func (l *liveRemote) close() {
	if d := l.d.Load(); d != nil {
		d.Close()
	}
}

// DeliverBatch implements queue.BatchDeliverer.
func (l *liveRemote) DeliverBatch(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []queue.Outcome {
	return l.d.Load().DeliverBatch(ctx, env, rcpts, msg)
}

// liveGuard is the smtpd.AuthGuard of [abuse], whose engine a reload
// replaces (its state is in the admission store, which stays).
type liveGuard struct {
	e atomic.Pointer[admission.Engine]
}

// BeforeAuth implements smtpd.AuthGuard.
func (g *liveGuard) BeforeAuth(ctx context.Context, remote netip.Addr, username string, now time.Time) admission.AuthVerdict {
	return g.e.Load().BeforeAuth(ctx, remote, username, now)
}

// AuthResult implements smtpd.AuthGuard.
func (g *liveGuard) AuthResult(ctx context.Context, o admission.AuthOutcome) (time.Duration, bool) {
	return g.e.Load().AuthResult(ctx, o)
}
