package delivery

import (
	"context"
	"errors"
	"fmt"

	"postern/internal/queue"
	"postern/internal/smtp"
)

// Aliases resolves a local recipient to the mailboxes it delivers to.
// The forwarding serve wires (internal/server, internal/forward) implements it over the user directory.
type Aliases interface {
	// Expand returns the mailboxes of rcpt, a local recipient of env,
	// after handing the copies that go elsewhere (alias targets in other
	// domains, SRS addresses) to the queue. A recipient that names nobody
	// is an error wrapped by queue.Permanent; an error the directory may
	// not have tomorrow is any other error. A forwarded copy carries the
	// DSN parameters of rcpt as RFC 3461 §6.2.7 says: NOTIFY unchanged
	// when it is all of rcpt's expansion (§6.2.7.2), without SUCCESS when
	// rcpt expands to several addresses (§6.2.7.3; Expansion.Expanded).
	Expand(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) (Expansion, error)
	// Mailbox returns the one mailbox of rcpt when writing to it is all
	// that delivering to rcpt takes: ok is false when rcpt forwards
	// anywhere, has several mailboxes or none, is an SRS address, or the
	// directory cannot answer now. It has no side effect.
	Mailbox(ctx context.Context, rcpt string) (mailbox string, ok bool)
}

// Expansion is what a local recipient expands to (Aliases.Expand).
type Expansion struct {
	// Mailboxes are the mailboxes to write.
	Mailboxes []string
	// Forwarded counts the copies already queued for addresses
	// elsewhere (alias targets in other domains, the address an SRS
	// address stands for).
	Forwarded int
}

// Expanded reports whether the recipient sends the message on to more
// than one address, mailboxes and forwarded copies together: an
// "expanded" alias of RFC 3461 §6.2.7.3, whose success notice says so
// and whose copies do not ask for success notices again.
func (x Expansion) Expanded() bool { return len(x.Mailboxes)+x.Forwarded > 1 }

// Local delivers messages to local recipients, for the queue
// (queue.Deliverer) and for direct delivery before the 250 (Direct): it
// expands aliases (Aliases) and writes each resulting mailbox into its
// Maildir, or, when LMTP is set, hands them to a mailbox server in one
// LMTP transaction. It is the one place that decides which local
// failures are permanent: a mailbox name that cannot be a path
// (ErrBadMailbox) and a mailbox server's 5xx reply (ErrPermanent); every
// other failure is retried. Set the fields before the first call.
type Local struct {
	// Aliases expands recipients. Required.
	Aliases Aliases
	// Maildir writes mailboxes when LMTP is nil.
	Maildir *Maildir
	// LMTP, when set, delivers to a mailbox server instead of Maildir.
	LMTP *LMTP
}

// Deliver delivers msg to the local recipient rcpt of env: to each of
// its mailboxes, after queueing the copies its aliases forward. It
// returns nil once every mailbox has the message on stable storage (or
// the mailbox server took it), an error wrapped by queue.Permanent when
// retrying cannot help, and another error otherwise. It implements
// queue.Deliverer.
func (l *Local) Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
	return l.DeliverOutcome(ctx, env, rcpt, msg).Err
}

// DeliverOutcome delivers as Deliver does, and says what a success
// notice should report of rcpt (RFC 3461 §6.2.7): Expanded when it sent
// the message on to several addresses (§6.2.7.3), NextHopDSN when its one
// destination is a forwarded copy that carries its NOTIFY on
// (§6.2.7.2). It implements queue.OutcomeDeliverer.
func (l *Local) DeliverOutcome(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) queue.Outcome {
	x, err := l.Aliases.Expand(ctx, env, rcpt, msg)
	if err != nil {
		return queue.Outcome{Err: err}
	}
	if err := l.write(ctx, env.From, x.Mailboxes, msg); err != nil {
		return queue.Outcome{Err: err}
	}
	return queue.Outcome{Expanded: x.Expanded(), NextHopDSN: x.Forwarded == 1 && len(x.Mailboxes) == 0}
}

// write delivers msg from from to boxes, classifying the failure.
func (l *Local) write(ctx context.Context, from string, boxes []string, msg *smtp.Message) error {
	if len(boxes) == 0 {
		return nil // forwarded only
	}
	if l.LMTP != nil {
		for i, err := range l.LMTP.DeliverMessage(ctx, from, boxes, msg) {
			if err != nil {
				return classify(fmt.Errorf("%s: %w", boxes[i], err))
			}
		}
		return nil
	}
	for _, b := range boxes {
		if err := l.Maildir.DeliverMessage(ctx, b, from, msg); err != nil {
			return classify(err)
		}
	}
	return nil
}

// classify wraps err with queue.Permanent when retrying the delivery
// cannot help: a mailbox name that is no path, or a mailbox server's 5xx.
func classify(err error) error {
	if errors.Is(err, ErrBadMailbox) || errors.Is(err, ErrPermanent) {
		return queue.Permanent(err)
	}
	return err
}
