package sendmail

// The server side of postern sendmail: what the running server does
// with a message the command hands it over the admin socket
// (admin.LocalSubmit calls a Local to queue it).

import (
	"context"

	"postern/internal/addrkey"
	"postern/internal/smtp"
	"postern/internal/smtpd"
)

// Spool is where a Local puts messages: spool.Spool, which writes a
// large body into a blob of its own in the caller's goroutine.
type Spool interface {
	PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error
}

// Local is the server side of postern sendmail (an admin.Submitter): it
// DKIM-signs with the submission listeners' signer, when there is one,
// and puts the message in the spool.
type Local struct {
	Spool Spool
	Sign  smtpd.Filter // nil: no signing
}

// Submit signs msg (when l.Sign is set) and spools it; the error of
// either is returned and nothing is spooled after a signing error.
func (l Local) Submit(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	if l.Sign != nil {
		// Only root and Postern's own user reach the socket: they are
		// trusted to send as any address, as a local MTA trusts them.
		res, err := l.Sign.Filter(ctx, env, msg)
		if err != nil {
			return err
		}
		if len(res.Prepend) > 0 {
			msg = &smtp.Message{Header: append(append([]byte(nil), res.Prepend...), msg.Header...), Body: msg.Body}
		}
	}
	return l.Spool.PutMessage(ctx, env, msg)
}

// Directory is what RouteBare asks of the user directory
// (userdb.Directory).
type Directory interface {
	IsLocalDomain(domain string) bool
	RecipientExists(ctx context.Context, addr string) (bool, error)
}

// RouteBare returns admin.LocalSubmit's RouteBare: a bare name the
// caller qualified ("root@example.com") that names no user or alias of
// a local domain in dir goes to postmaster; any other address stays as
// it is.
func RouteBare(dir Directory, postmaster string) func(ctx context.Context, addr string) (string, error) {
	return func(ctx context.Context, addr string) (string, error) {
		if !dir.IsLocalDomain(addrkey.DomainOf(addr)) {
			return addr, nil
		}
		ok, err := dir.RecipientExists(ctx, addr)
		if err != nil || ok {
			return addr, err
		}
		return postmaster, nil
	}
}
