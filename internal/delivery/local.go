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
	// not have tomorrow is any other error.
	Expand(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) ([]string, error)
	// Mailbox returns the one mailbox of rcpt when writing to it is all
	// that delivering to rcpt takes: ok is false when rcpt forwards
	// anywhere, has several mailboxes or none, is an SRS address, or the
	// directory cannot answer now. It has no side effect.
	Mailbox(ctx context.Context, rcpt string) (mailbox string, ok bool)
}

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
	boxes, err := l.Aliases.Expand(ctx, env, rcpt, msg)
	if err != nil {
		return err
	}
	return l.write(ctx, env.From, boxes, msg)
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
