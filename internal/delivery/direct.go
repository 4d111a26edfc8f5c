package delivery

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"postern/internal/metrics"
	"postern/internal/queue"
	"postern/internal/smtp"
)

// Spooler stores messages durably, as smtp.Spooler says; spool.Spool
// is one.
type Spooler = smtp.Spooler

// Direct is a Spooler that writes a message whose recipients are all
// local straight into their Maildirs, before the session answers 250,
// instead of putting it in the spool for the queue runner: no spool
// record, no state commits, no runner pass. What the mailboxes hold is
// then the one durable copy, so a message goes there exactly once:
//
//   - only when writing the mailboxes is all the message needs: every
//     recipient is local (IsLocal) and resolves to exactly one mailbox
//     with no forwarding (Aliases.Mailbox), the message is not held
//     (smtp.Envelope.Hold) and not looping (more than smtp.MaxReceived
//     Received fields: the runner bounces it), and Local delivers to
//     Maildir (LMTP is left to the runner);
//   - each mailbox file and new/ are fsynced before the next recipient
//     (Maildir.DeliverMessage);
//   - when a mailbox write fails, the recipients not yet written (that
//     one included) go to the spool under the same id, and PutMessage
//     returns what the spool says: a 250 still means durable, and no
//     recipient has the message twice.
//
// Any other message goes to Spool unchanged. A crash before PutMessage
// returns leaves at most the copies already written, for a message the
// client was not told was taken: it sends it again, as after a crash
// before the spool's fsync.
type Direct struct {
	// Local writes the mailboxes and expands the aliases. Required.
	Local *Local
	// Spool takes every message Direct does not deliver. Required.
	Spool Spooler
	// IsLocal reports whether addr is delivered locally. Required.
	IsLocal func(addr string) bool
	// Observe, when set, is told each recipient delivered, as the queue
	// runner tells its RunnerOptions.Observe; it must not block.
	Observe func(queue.Report)
	// Logger receives the deliveries and fallbacks; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PutMessage delivers msg to the mailboxes of env's recipients when it
// can (see Direct), and puts in the spool what it cannot. It returns nil
// once every recipient's copy is durable in a mailbox or in the spool.
//
// Once the first mailbox is written, the message is finished whatever
// ctx says (a session killed meanwhile): an error would send the client
// to send it again. When it fails all the same (a mailbox write and then
// the spool fail: a full disk), the copies already written are taken
// back before the error, so that the client's next attempt makes the one
// copy; the deliveries are reported only once the message is taken.
func (d *Direct) PutMessage(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) error {
	boxes, ok := d.mailboxes(ctx, env, msg)
	if !ok {
		return d.Spool.PutMessage(ctx, env, msg)
	}
	ctx = context.WithoutCancel(ctx)
	log := d.logger()
	type done struct {
		rcpt       string
		start, end time.Time
	}
	var (
		written []string // the files made, to take back on failure
		dones   []done
	)
	for i, rcpt := range env.Recipients {
		start := d.now()
		// The recipients before i are all written (a failure ends the
		// loop): a mailbox among theirs already has its copy.
		if slices.Contains(boxes[:i], boxes[i]) {
			// Another spelling of a recipient already written (Bob@,
			// bob@): one copy, as Postfix writes one.
			dones = append(dones, done{rcpt, start, start})
			continue
		}
		path, err := d.Local.Maildir.deliver(ctx, boxes[i], env.From, msg)
		if err != nil {
			// The recipients from i on go to the spool; those before
			// have their copy and are not named again.
			metrics.DirectDeliveries.WithLabelValues("spooled").Inc()
			log.Warn("delivery: direct delivery failed, message spooled", "id", env.ID, "rcpt", rcpt,
				"spooled_rcpts", len(env.Recipients)-i, "err", err)
			rest := env.Clone()
			rest.Recipients = rest.Recipients[i:]
			if err := d.Spool.PutMessage(ctx, rest, msg); err != nil {
				for _, p := range written {
					d.Local.Maildir.takeBack(p)
				}
				return err
			}
			break
		}
		written = append(written, path)
		dones = append(dones, done{rcpt, start, d.now()})
	}
	for _, dn := range dones {
		d.delivered(env, dn.rcpt, dn.start, dn.end)
	}
	return nil
}

// CreateFile returns the spool's file for the message id: a large
// message is written there as it arrives, whichever way it then goes
// (Maildir copies its body from it).
func (d *Direct) CreateFile(id string) (smtp.SpoolFile, error) { return d.Spool.CreateFile(id) }

// mailboxes returns the one mailbox of each recipient of env, in order,
// and ok true when the message may be delivered directly.
func (d *Direct) mailboxes(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) ([]string, bool) {
	if d.Local.LMTP != nil || d.Local.Maildir == nil || env.Hold || len(env.Recipients) == 0 {
		return nil, false
	}
	// RFC 5321 §6.3: a looping message is the runner's to bounce.
	if smtp.CountFields(msg.Header, "Received") > smtp.MaxReceived {
		return nil, false
	}
	boxes := make([]string, len(env.Recipients))
	for i, rcpt := range env.Recipients {
		if !d.IsLocal(rcpt) {
			return nil, false
		}
		// RFC 3461 §5.2.2: a success notice is asked for; the queue
		// sends it, so the message goes through the spool.
		if env.RcptDSN(rcpt).Notify.Wants(smtp.NotifySuccess) {
			return nil, false
		}
		b, ok := d.Local.Aliases.Mailbox(ctx, rcpt)
		if !ok {
			return nil, false
		}
		boxes[i] = b
	}
	return boxes, true
}

// delivered counts, logs and reports the delivery to rcpt, as the queue
// runner does for a local delivery (with "direct" in the log line).
func (d *Direct) delivered(env *smtp.Envelope, rcpt string, start, now time.Time) {
	metrics.LocalDeliveries.WithLabelValues("delivered").Inc()
	metrics.DirectDeliveries.WithLabelValues("delivered").Inc()
	rep := queue.Report{Time: now, ID: env.ID, From: env.From, Rcpt: rcpt, Outcome: queue.OutcomeDelivered,
		Local: true, Attempt: 1, Status: "2.0.0", Delay: now.Sub(env.ReceivedAt), QueueWait: start.Sub(env.ReceivedAt),
		Relay: queue.Relay{Transmit: now.Sub(start)}}
	// The attributes cost 1 KB a message: built only when logged.
	if log := d.logger(); log.Enabled(context.Background(), slog.LevelInfo) {
		log.LogAttrs(context.Background(), slog.LevelInfo, "queue: delivered", append(rep.LogAttrs(), slog.Bool("direct", true))...)
	}
	if d.Observe != nil {
		d.Observe(rep)
	}
}

func (d *Direct) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Direct) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}
