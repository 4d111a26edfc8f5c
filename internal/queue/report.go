package queue

import (
	"context"
	"log/slog"
	"time"
)

// Outcomes of a Report.
const (
	// OutcomeDelivered means the recipient's copy was handed over.
	OutcomeDelivered = "delivered"
	// OutcomeDeferred means the attempt failed temporarily; another
	// follows at Report.NextAttempt.
	OutcomeDeferred = "deferred"
	// OutcomeFailed means the recipient failed for good: a DSN goes to
	// the sender (Report.Reason says why).
	OutcomeFailed = "failed"
)

// Relay describes the server a delivery attempt talked to, as a
// deliverer reports it in Outcome.Relay. Its fields are zero for what
// the attempt never reached.
type Relay struct {
	// Addr is the address dialed, "ip:port".
	Addr string
	// TLSVersion and TLSCipher are the session's TLS version and cipher
	// suite; "" without TLS.
	TLSVersion, TLSCipher string
	// TLSVerification says how far the server was authenticated:
	// "dane", "mta-sts", "verified", "encrypted" or "none".
	TLSVerification string
	// Connect is the time spent setting up the session (DNS, connection,
	// greeting, EHLO, TLS), Transmit the time from MAIL FROM to the final
	// reply.
	Connect, Transmit time.Duration
	// Reply is the server's final reply ("250 2.0.0 Ok: queued as X"),
	// RemoteID the queue id it names.
	Reply, RemoteID string
}

// Report is the outcome of one delivery attempt to one recipient. The
// Runner logs it ("queue: delivered", "queue: delivery deferred",
// "queue: delivery failed"; see LogAttrs) and hands the same value to
// RunnerOptions.Observe, so the log and what an observer shows never
// disagree.
type Report struct {
	// Time is when the outcome was decided.
	Time time.Time
	// ID is the message's queue id; From its envelope sender ("" for
	// the null sender); Rcpt the recipient.
	ID, From, Rcpt string
	// Outcome is OutcomeDelivered, OutcomeDeferred or OutcomeFailed.
	Outcome string
	// Local is set for a local mailbox.
	Local bool
	// Attempt counts the attempts for this recipient, this one included.
	Attempt int
	// Status is the enhanced status code (RFC 3463), "2.0.0" for a
	// delivery.
	Status string
	// Delay is the time from receipt to this outcome; QueueWait the time
	// from receipt to the start of this attempt (earlier attempts and
	// waits included).
	Delay, QueueWait time.Duration
	// RemoteMTA is the name of the server that gave the outcome; Relay
	// describes the session with it.
	RemoteMTA string
	Relay     Relay
	// NextAttempt is when a deferred recipient is tried again.
	NextAttempt time.Time
	// Reason is why a recipient failed for good: "permanent", "expired"
	// or "loop".
	Reason string
	// Err is why the attempt did not deliver; "" when it did.
	Err string
}

// message is the log message of the report's outcome.
func (r *Report) message() string {
	switch r.Outcome {
	case OutcomeDelivered:
		return "queue: delivered"
	case OutcomeDeferred:
		return "queue: delivery deferred"
	}
	return "queue: delivery failed"
}

// LogAttrs returns the attributes of the report's log line, as
// Postfix's status= lines carry them: id, rcpt, from, outcome,
// attempt, status, delay and its parts (delay_queue, delay_connect,
// delay_transmit), relay (host and address), the TLS version, cipher
// and verification, the final reply and its remote queue id, and for
// failures the reason and the error. Fields that do not apply are
// left out.
func (r *Report) LogAttrs() []slog.Attr {
	a := make([]slog.Attr, 0, 24)
	a = append(a, slog.String("id", r.ID), slog.String("rcpt", r.Rcpt), slog.String("from", r.From),
		slog.String("outcome", r.Outcome), slog.Bool("local", r.Local), slog.Int("attempt", r.Attempt),
		slog.String("status", r.Status), slog.Duration("delay", r.Delay),
		slog.Duration("delay_queue", r.QueueWait))
	rl := &r.Relay
	if !r.Local || rl.Connect > 0 {
		a = append(a, slog.Duration("delay_connect", rl.Connect))
	}
	a = append(a, slog.Duration("delay_transmit", rl.Transmit))
	str := func(k, v string) {
		if v != "" {
			a = append(a, slog.String(k, v))
		}
	}
	str("relay", r.RemoteMTA)
	str("relay_addr", rl.Addr)
	if rl.TLSVerification != "" {
		a = append(a, slog.String("tls", rl.TLSVerification))
	}
	str("tls_version", rl.TLSVersion)
	str("tls_cipher", rl.TLSCipher)
	str("reply", rl.Reply)
	str("remote_id", rl.RemoteID)
	if !r.NextAttempt.IsZero() {
		a = append(a, slog.Time("next", r.NextAttempt))
	}
	str("reason", r.Reason)
	str("err", r.Err)
	return a
}

// tell logs rep and hands it to the observer.
func (p *pass) tell(rep Report) {
	level := slog.LevelInfo
	if rep.Outcome != OutcomeDelivered {
		level = slog.LevelWarn
	}
	// The pass's logger carries id already.
	p.r.opts.Logger.LogAttrs(context.Background(), level, rep.message(), rep.LogAttrs()...)
	if obs := p.r.opts.Observe; obs != nil {
		obs(rep)
	}
}

// newReport starts the Report of an attempt for rcpt with outcome o,
// the attempt-th, read at c; record fills in the outcome.
func (p *pass) newReport(rcpt string, o Outcome, local bool, attempt int, c reading) Report {
	rep := Report{Time: c.now, ID: p.id, From: p.env.From, Rcpt: rcpt, Local: local, Attempt: attempt,
		Delay: c.now.Sub(p.env.ReceivedAt), RemoteMTA: diagnosticText(o.RemoteMTA), Relay: o.Relay}
	if !c.start.IsZero() {
		rep.QueueWait = c.start.Sub(p.env.ReceivedAt)
	}
	if o.Err != nil {
		rep.Err = o.Err.Error()
	}
	return rep
}
