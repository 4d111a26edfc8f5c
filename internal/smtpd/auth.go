package smtpd

import (
	"cmp"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"strings"

	"postern/internal/metrics"
	"postern/internal/sasl"
	"postern/internal/smtp"
)

// cmdAuth handles AUTH (RFC 4954 §4). The log names the mechanism, the
// user as claimed and the outcome; never the password or any SASL payload.
func (s *session) cmdAuth(arg string) {
	switch {
	case !s.srv.Role.submission() || s.srv.Auth == nil:
		s.fail("not_implemented", &smtp.Error{Code: 502, Enhanced: "5.5.1", Message: "AUTH not available"})
		return
	case !s.greeted || !s.esmtp:
		s.fail("sequence", errSeq("Send EHLO first"))
		return
	case s.tlsState == nil:
		// RFC 3207 §4 and RFC 4954 §4: no credentials in plaintext.
		s.fail("tls_required", &smtp.Error{Code: 530, Enhanced: "5.7.0", Message: "Must issue a STARTTLS command first"})
		return
	case s.authUser != "":
		s.fail("sequence", errSeq("Already authenticated")) // RFC 4954 §4
		return
	case s.tx.active:
		s.fail("sequence", errSeq("AUTH not permitted during a mail transaction")) // RFC 4954 §4
		return
	}
	if !s.authAllowed() { // a banned client: 421 (admission.go)
		return
	}
	mech, initial, hasInitial := strings.Cut(arg, " ")
	if mech == "" {
		s.fail("syntax", errSyntax("Syntax: AUTH mechanism [initial-response]"))
		return
	}
	mech = strings.ToUpper(mech)
	if !slices.Contains(s.srv.Auth.Mechanisms(s.tlsState), mech) {
		s.fail("syntax", &smtp.Error{Code: 504, Enhanced: "5.5.4", Message: "Unrecognized authentication type"})
		return
	}
	sv, ok := s.srv.Auth.Start(s.ctx, mech, s.tlsState)
	if !ok {
		s.fail("syntax", &smtp.Error{Code: 504, Enhanced: "5.5.4", Message: "Unrecognized authentication type"})
		return
	}
	s.guardExchange(sv) // the guard sees the claimed user before the check (admission.go)

	var resp []byte // nil: no initial response
	if hasInitial {
		resp = []byte{}
		if initial != "=" { // RFC 4954 §4: "=" is an empty initial response
			var err error
			if resp, err = base64.StdEncoding.DecodeString(initial); err != nil {
				s.authEnd(mech, sv, "malformed", &smtp.Error{Code: 501, Enhanced: "5.5.2", Message: "Invalid base64 data"})
				return
			}
		}
	}
	for {
		challenge, done, err := sv.Next(resp)
		if err != nil {
			// A failed mechanism may still have a message for the client
			// (RFC 7628 §3.2.2's JSON status, RFC 5802 §7's server-error):
			// it goes out as a challenge, and the answer, a dummy or "*",
			// is read and ignored before the failure reply.
			if challenge != nil {
				// A client that hangs up here (curl does, for XOAUTH2)
				// has still failed: the outcome is the mechanism's.
				if _, ok := s.authChallenge(mech, sv, challenge, failOutcome(err)); !ok {
					return
				}
			}
			s.authFailed(mech, sv, err)
			return
		}
		if done {
			user := sv.Identity()
			if user == "" {
				s.authEnd(mech, sv, "error", &smtp.Error{Code: 454, Enhanced: "4.7.0", Message: "Temporary authentication failure", Reason: "mechanism reported no identity"})
				return
			}
			if !s.authSucceeded(mech, sv, user) { // guard and send limits (admission.go)
				return
			}
			s.authUser, s.authMech = user, mech
			s.authEnd(mech, sv, "success", nil)
			s.reply(235, "2.7.0", "Authentication successful")
			return
		}
		line, ok := s.authChallenge(mech, sv, challenge, "")
		if !ok {
			return
		}
		if len(line) == 1 && line[0] == '*' {
			s.authEnd(mech, sv, "canceled", &smtp.Error{Code: 501, Enhanced: "5.0.0", Message: "Authentication canceled"})
			return
		}
		resp = make([]byte, base64.StdEncoding.DecodedLen(len(line)))
		n, err := base64.StdEncoding.Decode(resp, line)
		if err != nil {
			s.authEnd(mech, sv, "malformed", &smtp.Error{Code: 501, Enhanced: "5.5.2", Message: "Invalid base64 data"})
			return
		}
		resp = resp[:n]
	}
}

// authChallenge sends challenge in a 334 reply and reads the client's
// answer. ok is false when the exchange ended there (write or read error,
// over-long line), already logged (as outcome, when not "") and answered.
func (s *session) authChallenge(mech string, sv sasl.Server, challenge []byte, outcome string) (line []byte, ok bool) {
	// RFC 4954 §4: "334" SP base64 challenge.
	s.bw.WriteString("334 ")
	enc := base64.NewEncoder(base64.StdEncoding, s.bw)
	enc.Write(challenge)
	enc.Close()
	s.bw.WriteString("\r\n")
	// A client that hangs up (or stops answering) in the middle of the
	// exchange has canceled it: no fault of the server's.
	if s.flush() != nil {
		s.authEnd(mech, sv, cmp.Or(outcome, "canceled"), nil)
		s.quit = true
		return nil, false
	}
	line, err := s.readLine(authLineMax)
	if err == nil && s.trace != nil {
		s.trace.authIn(line)
	}
	if err != nil {
		if s.lineError("5.5.6", err) { // RFC 4954 §4: 500 5.5.6 line too long
			s.authEnd(mech, sv, cmp.Or(outcome, "malformed"), nil)
		} else {
			s.authEnd(mech, sv, cmp.Or(outcome, "canceled"), nil)
			s.readError(err)
		}
		return nil, false
	}
	return line, true
}

// failOutcome names the outcome of a SASL error for logs and metrics.
func failOutcome(err error) string {
	switch {
	case errors.Is(err, sasl.ErrMalformed):
		return "malformed"
	case errors.Is(err, sasl.ErrInvalidCredentials):
		return "failure"
	}
	return "error"
}

// authFailed answers a SASL error from the mechanism.
func (s *session) authFailed(mech string, sv sasl.Server, err error) {
	switch {
	case errors.Is(err, sasl.ErrMalformed):
		s.authEnd(mech, sv, "malformed", &smtp.Error{Code: 501, Enhanced: "5.5.2", Message: "Malformed authentication response", Reason: err.Error()})
	case errors.Is(err, sasl.ErrInvalidCredentials):
		s.hooks.authWhy = failWhy(err)
		if s.srv.AuthGuard != nil {
			s.guardFailure(mech, sv, err) // the guard's delay, maybe a ban (admission.go)
			return
		}
		if !s.authDelay() {
			s.authEnd(mech, sv, "failure", nil)
			s.fail("shutdown", &smtp.Error{Code: 421, Enhanced: "4.3.2", Message: "Service shutting down"})
			return
		}
		// RFC 4954 §6
		s.authEnd(mech, sv, "failure", &smtp.Error{Code: 535, Enhanced: "5.7.8", Message: "Authentication credentials invalid", Reason: err.Error()})
	default:
		s.authEnd(mech, sv, "error", &smtp.Error{Code: 454, Enhanced: "4.7.0", Message: "Temporary authentication failure", Reason: err.Error()})
	}
}

// authDelay waits Limits.AuthFailDelay before a 535, to slow guessing.
// It reports false when the server shut down or the session was cut
// meanwhile.
func (s *session) authDelay() bool { return s.waitDelay(s.lim.AuthFailDelay) }

// failWhy says which credential was wrong, for the log only: the
// client's reply is the same (RFC 4954 §6: 535 5.7.8), as in Dovecot.
func failWhy(err error) string {
	switch {
	case errors.Is(err, sasl.ErrRefused):
		return "refused before the check"
	case errors.Is(err, sasl.ErrUnknownUser):
		return "unknown user"
	case errors.Is(err, sasl.ErrBadPassword):
		return "bad password"
	}
	return "invalid credentials"
}

// authEnd logs and counts the end of a SASL exchange and sends e, if any.
// A failure with wrong credentials logs why (failWhy), never the
// password.
func (s *session) authEnd(mech string, sv sasl.Server, outcome string, e *smtp.Error) {
	metrics.AuthAttempts.WithLabelValues(s.srv.Name, mech, outcome).Inc()
	s.traceUser(sv.Username()) // a listed user's dialogue is traced from here (trace.go)
	s.traceUser(sv.Identity())
	attrs := []slog.Attr{slog.String("mechanism", mech), slog.String("user", sv.Username()),
		slog.String("remote", s.remote.String()), slog.String("outcome", outcome)}
	if s.hooks.authWhy != "" {
		attrs = append(attrs, slog.String("reason", s.hooks.authWhy))
		s.hooks.authWhy = ""
	}
	s.log.LogAttrs(s.ctx, slog.LevelInfo, "auth", attrs...)
	if e != nil {
		s.fail("auth_"+outcome, e)
	}
}
