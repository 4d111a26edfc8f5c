package smtpd

import (
	"cmp"
	"errors"
	"log/slog"
	"time"

	"postern/internal/admission"
	"postern/internal/sasl"
	"postern/internal/smtp"
)

// This file holds the session's calls to the admission gate, the
// auth-abuse guard and the send limits (Server.Admitter, AuthGuard and
// SendLimiter; see backend.go). Each is off when its field is nil.

// sessionHooks is the per-session state of those calls.
type sessionHooks struct {
	admitRelease func() // the gate's concurrency slots
	sendRelease  func() // the user's session slot
	holdLimit    string // the send limit the message in DATA is held for; "" when not held
	claim        authClaim
	authWhy      string // why the AUTH exchange failed, for its log line (failWhy)
}

// authClaim is what the auth-abuse guard said about the username the
// client claimed in the current AUTH exchange.
type authClaim struct {
	asked   bool
	at      time.Time // when it was asked: the verdict's delay counts from then
	verdict admission.AuthVerdict
}

// done gives back what the session holds. Called once, when it ends.
func (h *sessionHooks) done() {
	if h.admitRelease != nil {
		h.admitRelease()
		h.admitRelease = nil
	}
	if h.sendRelease != nil {
		h.sendRelease()
		h.sendRelease = nil
	}
}

// admissionRefusal is what a client refused by the gate is told on mx and
// submission, by reason (RFC 5321 §3.8: a 421 may replace the greeting,
// and the server then closes).
func admissionRefusal(reason string) *smtp.Error {
	msg := "Too many connections from your network, try again later"
	switch reason {
	case admission.ReasonBanned, admission.ReasonDenied, admission.ReasonNotAllowed:
		msg = "Service not available to your address"
	case admission.ReasonIPRate, admission.ReasonPrefixRate:
		msg = "Connecting too fast, try again later"
	}
	return &smtp.Error{Code: 421, Enhanced: "4.7.0", Message: msg, Reason: "admission: " + reason}
}

// admit asks the gate about the connection, before any TLS byte and
// before the greeting, and reports whether the session may go on. A
// refused client on submissions (implicit TLS) gets no handshake, only
// the close; on mx and submission it gets 421 4.7.0 in plaintext, then
// the close. A gate that fails (its store) lets the client in.
func (s *session) admit() bool {
	if s.srv.Admitter == nil {
		return true
	}
	d, err := s.srv.Admitter.Admit(s.ctx, s.srv.Name, s.remote.Addr(), s.srv.now())
	if err != nil {
		s.log.Warn("admission failed; letting the client in", "remote", s.remote, "err", err)
	}
	if d.Allowed {
		s.hooks.admitRelease = d.Release
		return true
	}
	args := []any{"remote", s.remote, "reason", d.Reason}
	if d.Reason == admission.ReasonBanned {
		args = append(args, "ban", d.Ban.Prefix, "until", d.Ban.Until, "why", d.Ban.Reason)
	}
	s.log.Info("connection refused", args...)
	if s.srv.Role == RoleSubmissions {
		s.raw.Close() // no TLS byte, no plaintext reply on a TLS port
		s.quit = true
		return false
	}
	s.fail("admission_"+d.Reason, admissionRefusal(d.Reason))
	return false
}

// viaClientCert reports whether the session's client proved itself with
// a verified TLS client certificate (EXTERNAL needs one): its logins are
// exempt from the auth-abuse guard.
func (s *session) viaClientCert() bool {
	return s.tlsState != nil && len(s.tlsState.VerifiedChains) > 0
}

// authAllowed asks the guard, when AUTH starts, whether the client may try
// at all; a client banned meanwhile (by another session or node) is told
// 421 4.7.0 and the session ends.
func (s *session) authAllowed() bool {
	s.hooks.claim = authClaim{}
	if s.srv.AuthGuard == nil || s.viaClientCert() {
		return true
	}
	if v := s.srv.AuthGuard.BeforeAuth(s.ctx, s.remote.Addr(), "", s.srv.now()); v.Refuse {
		s.fail("auth_banned", errAuthBanned("address banned"))
		return false
	}
	return true
}

// errAuthBanned is the reply to a client banned during AUTH.
func errAuthBanned(reason string) *smtp.Error {
	return &smtp.Error{Code: 421, Enhanced: "4.7.0", Message: "Too many authentication failures, closing connection", Reason: reason}
}

// guardExchange makes the exchange sv ask the guard about the username
// its client claims, before sv checks the credentials, when sv is
// sasl.Guarded (PLAIN, LOGIN, CRAM-MD5, SCRAM): an attempt the guard
// refuses then fails without the credentials ever being checked, so its
// reply cannot depend on them (issue 12 §2). The other mechanisms are
// refused only for a ban, when AUTH starts: OAUTHBEARER and XOAUTH2 log
// in with a bearer token, which the issuer made and nobody can guess,
// and EXTERNAL with a client certificate.
func (s *session) guardExchange(sv sasl.Server) {
	g := s.srv.AuthGuard
	gs, ok := sv.(sasl.Guarded)
	if g == nil || !ok || s.viaClientCert() {
		return
	}
	gs.SetGuard(func(username string) bool {
		now := s.srv.now()
		v := g.BeforeAuth(s.ctx, s.remote.Addr(), username, now)
		s.hooks.claim = authClaim{asked: true, at: now, verdict: v}
		return !v.Refuse
	})
}

// authSucceeded runs when a mechanism accepted the credentials of user:
// the guard remembers the address as good for the user, and the send
// limits may refuse the login for too many sessions. It reports whether
// the login stands; when not, it has answered.
func (s *session) authSucceeded(mech string, sv sasl.Server, user string) bool {
	if g := s.srv.AuthGuard; g != nil {
		g.AuthResult(s.ctx, admission.AuthOutcome{Remote: s.remote.Addr(), Username: cmp.Or(sv.Username(), user),
			Mech: mech, OK: true, ViaClientCert: s.viaClientCert(), Now: s.srv.now()})
	}
	if l := s.srv.SendLimiter; l != nil {
		release, e := l.BeginSession(s.ctx, user)
		if e != nil {
			s.authEnd(mech, sv, "limited", e)
			return false
		}
		if s.hooks.sendRelease != nil {
			s.hooks.sendRelease()
		}
		s.hooks.sendRelease = release
	}
	return true
}

// guardFailure answers a failed attempt when the guard is on: wrong
// credentials, or an attempt the guard refused before they were checked
// (sasl.ErrRefused). The guard's delay replaces Limits.AuthFailDelay; a
// client banned now, or before, is told 421 4.7.0 and the session ends.
// When the guard asked for a delay before the check, the reply waits
// until that long after the question, whichever path the attempt took,
// so that neither the check nor its outcome shows in the timing.
func (s *session) guardFailure(mech string, sv sasl.Server, err error) {
	g, c := s.srv.AuthGuard, s.hooks.claim
	refused := errors.Is(err, sasl.ErrRefused)
	if refused && c.verdict.Banned {
		s.authEnd(mech, sv, "banned", nil)
		s.fail("auth_banned", errAuthBanned("address banned"))
		return
	}
	d, banned := g.AuthResult(s.ctx, admission.AuthOutcome{Remote: s.remote.Addr(), Username: sv.Username(), Mech: mech,
		ViaClientCert: s.viaClientCert(), Now: s.srv.now()})
	if c.asked && c.verdict.Delay > 0 {
		d = c.at.Add(max(c.verdict.Delay, d)).Sub(s.srv.now())
	}
	outcome, reason := "failure", err.Error()
	if refused {
		outcome, reason = "throttled", "username under attack; no more password checks for this network now"
	}
	s.guardAnswer(mech, sv, outcome, d, banned, reason)
}

// guardAnswer waits delay, then fails the exchange with 535 5.7.8, or with
// 421 4.7.0 (closing) when the client is banned now.
func (s *session) guardAnswer(mech string, sv sasl.Server, outcome string, delay time.Duration, banned bool, reason string) {
	if !s.waitDelay(delay) {
		s.authEnd(mech, sv, outcome, nil)
		s.fail("shutdown", &smtp.Error{Code: 421, Enhanced: "4.3.2", Message: "Service shutting down"})
		return
	}
	if banned {
		s.authEnd(mech, sv, outcome, nil)
		s.fail("auth_banned", errAuthBanned(reason))
		return
	}
	// RFC 4954 §6
	s.authEnd(mech, sv, outcome, &smtp.Error{Code: 535, Enhanced: "5.7.8", Message: "Authentication credentials invalid", Reason: reason})
}

// waitDelay waits d. It reports false when the server shut down or the
// session was cut meanwhile.
func (s *session) waitDelay(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	if s.srv.sleep != nil {
		return s.srv.sleep(d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
	case <-s.srv.done:
	}
	return false
}

// sendAllowed asks the send limits, at DATA, whether the authenticated
// user may send this message to its recipients; when not, it answers
// 451 4.7.1 naming the limit and the transaction ends, unless the user's
// policy is to hold: then the message is taken, and held (see holdEnvelope).
func (s *session) sendAllowed() bool {
	s.hooks.holdLimit = ""
	if s.srv.SendLimiter == nil || s.authUser == "" {
		return true
	}
	v := s.srv.SendLimiter.CheckMessage(s.ctx, s.authUser, len(s.tx.rcpts), s.srv.now())
	switch {
	case v.Over == nil:
	case v.Hold:
		s.hooks.holdLimit = cmp.Or(v.Limit, "send limit")
	default:
		s.fail("send_limit", v.Over)
		s.resetTx()
		return false
	}
	return true
}

// holdEnvelope marks env held for review when sendAllowed decided so
// for the message in DATA.
func (s *session) holdEnvelope(env *smtp.Envelope) {
	if s.hooks.holdLimit != "" {
		env.Hold, env.HoldReason = true, "send limit: "+s.hooks.holdLimit
	}
}

// heldNote logs the "message held" event for a spooled held message and
// returns what its 250 reply adds; "" for a message not held.
func (s *session) heldNote(env *smtp.Envelope) string {
	if !env.Hold || s.hooks.holdLimit == "" { // a milter's quarantine is not told (milter.go)
		return ""
	}
	s.log.LogAttrs(s.ctx, slog.LevelWarn, "message held", slog.String("user", env.AuthUser),
		slog.String("limit", s.hooks.holdLimit), slog.String("id", env.ID), slog.Int("rcpts", len(env.Recipients)))
	return " (held for review: send limit)"
}
