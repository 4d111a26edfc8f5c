package smtpd

import (
	"cmp"
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
	if s.srv.AuthGuard == nil || s.viaClientCert() {
		return true
	}
	if _, refuse := s.srv.AuthGuard.BeforeAuth(s.ctx, s.remote.Addr(), "", s.srv.now()); refuse {
		s.fail("auth_banned", &smtp.Error{Code: 421, Enhanced: "4.7.0", Message: "Too many authentication failures, closing connection", Reason: "address banned"})
		return false
	}
	return true
}

// authSucceeded runs when a mechanism accepted the credentials of user.
// The guard may still refuse the login (the username is under attack and
// the address never logged in as it): the client then gets what a wrong
// password gets. The send limits may refuse it for too many sessions.
// It reports whether the login stands; when not, it has answered.
func (s *session) authSucceeded(mech string, sv sasl.Server, user string) bool {
	claimed := cmp.Or(sv.Username(), user)
	now := s.srv.now()
	if g := s.srv.AuthGuard; g != nil {
		cert := s.viaClientCert()
		if !cert {
			if delay, refuse := g.BeforeAuth(s.ctx, s.remote.Addr(), claimed, now); refuse {
				d, banned := g.AuthResult(s.ctx, s.remote.Addr(), claimed, mech, false, false, now)
				s.guardAnswer(mech, sv, "throttled", max(delay, d), banned, "username under attack; address not known good")
				return false
			}
		}
		g.AuthResult(s.ctx, s.remote.Addr(), claimed, mech, true, cert, now)
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

// guardFailure answers wrong credentials when the guard is on: the
// guard's delay replaces Limits.AuthFailDelay, and a client the failure
// got banned is told 421 4.7.0 and the session ends.
func (s *session) guardFailure(mech string, sv sasl.Server, err error) {
	g := s.srv.AuthGuard
	addr, now := s.remote.Addr(), s.srv.now()
	d, banned := g.AuthResult(s.ctx, addr, sv.Username(), mech, false, s.viaClientCert(), now)
	s.guardAnswer(mech, sv, "failure", d, banned, err.Error())
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
		s.fail("auth_banned", &smtp.Error{Code: 421, Enhanced: "4.7.0", Message: "Too many authentication failures, closing connection", Reason: reason})
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
func (s *session) holdEnvelope(env *Envelope) {
	if s.hooks.holdLimit != "" {
		env.Hold, env.HoldReason = true, "send limit: "+s.hooks.holdLimit
	}
}

// heldNote logs the "message held" event for a spooled held message and
// returns what its 250 reply adds; "" for a message not held.
func (s *session) heldNote(env *Envelope) string {
	if !env.Hold {
		return ""
	}
	s.log.LogAttrs(s.ctx, slog.LevelWarn, "message held", slog.String("user", env.AuthUser),
		slog.String("limit", s.hooks.holdLimit), slog.String("id", env.ID), slog.Int("rcpts", len(env.Recipients)))
	return " (held for review: send limit)"
}
