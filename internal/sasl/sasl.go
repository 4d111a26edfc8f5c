// Package sasl implements the server side of the SASL mechanisms Postern
// offers to SMTP clients (RFC 4422, RFC 4954): PLAIN, LOGIN, CRAM-MD5,
// SCRAM-SHA-1 and SCRAM-SHA-256 with their channel-bound -PLUS variants,
// OAUTHBEARER, XOAUTH2 and EXTERNAL. A mechanism is a Server: the SMTP
// session feeds it the client's decoded responses and sends back the
// challenges it returns, until it reports done or an error. Mechanisms
// decides which to offer on a session and starts them; the secrets they
// need come from a PasswordChecker, a SecretLookup, a TokenVerifier and a
// CertMapper, never from this package. The mechanisms in which the client
// names the user before proving it are Guarded: the session's Guard may
// refuse an attempt once the user is named, before anything is checked.
package sasl

import (
	"context"
	"errors"
	"fmt"
)

// Errors a Server returns from Next. The SMTP session maps them to replies:
// ErrMalformed to 501 5.5.2, ErrInvalidCredentials (ErrRefused among them)
// to 535 5.7.8 (after a delay), ErrTemporary and any other error to
// 454 4.7.0.
var (
	// ErrMalformed means the client's response does not follow the
	// mechanism's syntax (RFC 4954 §4: 501).
	ErrMalformed = errors.New("sasl: malformed response")
	// ErrInvalidCredentials means the credentials were well formed but
	// wrong, or the authorization identity is not allowed (RFC 4954 §6: 535).
	ErrInvalidCredentials = errors.New("sasl: invalid credentials")
	// ErrTemporary means the credentials could not be checked now
	// (RFC 4954 §6: 454).
	ErrTemporary = errors.New("sasl: temporary failure")
	// ErrRefused means the exchange's Guard refused the attempt: the
	// mechanism failed it without looking up or checking anything for
	// the user. It wraps ErrInvalidCredentials, so that a session that
	// does not tell them apart answers it like a wrong password.
	ErrRefused = fmt.Errorf("sasl: attempt refused before the credentials were checked: %w", ErrInvalidCredentials)
	// ErrUnknownUser and ErrBadPassword say which credential was
	// wrong: no such user, or a wrong password (or digest, or proof).
	// Both wrap ErrInvalidCredentials, and a session answers both alike
	// (RFC 4954 §6: 535 5.7.8): only the server's log tells them apart,
	// as Dovecot's does.
	ErrUnknownUser = fmt.Errorf("sasl: unknown user: %w", ErrInvalidCredentials)
	ErrBadPassword = fmt.Errorf("sasl: bad password: %w", ErrInvalidCredentials)
)

// Server is one server-side SASL exchange. It is used by one goroutine.
type Server interface {
	// Next takes the client's next response, already base64-decoded (nil
	// when the client sent no initial response, empty non-nil when it sent
	// "="). It returns the challenge to send (before base64 encoding), or
	// done true when the exchange has succeeded, or an error when it has
	// failed. An error may come with a non-nil challenge: the mechanism's
	// error message for the client (RFC 7628 §3.2.2, RFC 5802 §7); the
	// session sends it, reads and ignores one answer (any, "*" included),
	// then fails with the error. After done or an error, Next is not
	// called again.
	Next(response []byte) (challenge []byte, done bool, err error)
	// Identity returns the authenticated user (canonical, as the directory
	// spells it) once Next has reported done; "" before.
	Identity() string
	// Username returns the username the client claimed, as far as it got
	// (for logs and auth events); "" when none was sent.
	Username() string
}

// PasswordChecker verifies a username and password and returns the
// canonical user name. It returns an error wrapping ErrInvalidCredentials
// when they do not match (or the user does not exist), and an error wrapping
// ErrTemporary when the directory cannot answer. userdb's CheckPassword has
// this shape.
type PasswordChecker func(ctx context.Context, username, password string) (user string, err error)

// Guard is asked by a mechanism once its client has named the user it
// claims to be, before the mechanism looks up or checks anything for
// that user: for PLAIN, LOGIN and CRAM-MD5 when the password or digest
// has arrived, for SCRAM at the client-first message. username is as the
// client sent it. When the Guard returns false the mechanism fails with
// ErrRefused and has checked nothing, so the failure cannot depend on the
// credentials.
type Guard func(username string) (allow bool)

// Guarded is a Server whose client names the user before proving it
// (PLAIN, LOGIN, CRAM-MD5, SCRAM and its -PLUS variants), so that a Guard
// can refuse the attempt before the proof is checked. OAUTHBEARER,
// XOAUTH2 and EXTERNAL are not Guarded: who they log in is known only
// from the token or the certificate, once it has been checked.
type Guarded interface {
	Server
	// SetGuard makes the exchange ask g (see Guard). Call it before the
	// first Next.
	SetGuard(g Guard)
}

// guard is the Guard of one exchange; the zero value allows all.
type guard struct{ g Guard }

// SetGuard implements Guarded.
func (x *guard) SetGuard(g Guard) { x.g = g }

// allow asks the Guard about username.
func (x *guard) allow(username string) bool { return x.g == nil || x.g(username) }
