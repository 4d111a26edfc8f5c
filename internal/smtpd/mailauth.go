package smtpd

import (
	"context"
	"log/slog"
	"sync/atomic"

	"postern/internal/mailauth"
	"postern/internal/smtp"
)

// This file adapts internal/mailauth to the Filter of a listener: the
// checks of mx (SPF, DKIM, DMARC, Authentication-Results and the
// own-domain policy) and the DKIM signature of submission. They sit here,
// not in a package of their own, because smtpd already imports mailauth
// (the From addresses a submission user may use) and a Filter is smtpd's.
// SwitchFilter holds the one a reload replaces.

// CheckFilter is the Filter of mx listeners: SPF, DKIM, DMARC,
// Authentication-Results and policy (mailauth.Checker).
type CheckFilter struct{ Checker *mailauth.Checker }

// Filter implements Filter.
func (f CheckFilter) Filter(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) (FilterResult, error) {
	m := mailauth.Message{Remote: env.Remote.Addr(), Helo: env.Helo, MailFrom: env.From, Header: msg.Header, Body: msg.Body}
	if l := SessionLogger(ctx); l != nil {
		m.Log = l.With("id", env.ID) // listener, session and id, as every session event
	}
	v, err := f.Checker.Check(ctx, m)
	if err != nil {
		return FilterResult{}, err
	}
	return FilterResult{Reject: v.Reject, Header: v.Header, Prepend: v.Prepend}, nil
}

// SignFilter is the Filter of submission listeners: it DKIM-signs mail
// from authenticated users whose From domain has a key. The session has
// already checked that the user may use the From addresses, so the
// signature aligns for DMARC.
type SignFilter struct {
	Signer *mailauth.Signer
	Logger *slog.Logger // nil discards
}

// Filter implements Filter.
func (f SignFilter) Filter(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) (FilterResult, error) {
	if env.AuthUser == "" {
		return FilterResult{}, nil
	}
	h, err := f.Signer.SignMessage(msg.Header, msg.Body)
	if err != nil {
		return FilterResult{}, err
	}
	if h == nil && f.Logger != nil {
		f.Logger.Debug("not DKIM-signed: no key for the From domain", "id", env.ID)
	}
	return FilterResult{Prepend: h}, nil
}

// SwitchFilter is a Filter that another replaces while sessions use it
// (a reload's new [mail_auth] filter); none (nil) passes every message
// unchanged. The zero value is ready.
type SwitchFilter struct{ f atomic.Pointer[Filter] }

// Set makes f the Filter of the next messages; nil passes them.
func (s *SwitchFilter) Set(f Filter) { s.f.Store(&f) }

// Filter implements Filter.
func (s *SwitchFilter) Filter(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) (FilterResult, error) {
	f := s.f.Load()
	if f == nil || *f == nil {
		return FilterResult{}, nil
	}
	return (*f).Filter(ctx, env, msg)
}
