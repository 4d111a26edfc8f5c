package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"postern/internal/addrkey"
	"postern/internal/metrics"
	"postern/internal/smtp"
	"postern/internal/spool"
)

// pass is one delivery pass over the due recipients of one message. The
// worker that starts it delivers the local recipients; each remote domain
// is a batch for the remote workers. Delivered and deferred recipients
// are recorded at once; those that failed or are due a delay warning are
// held until the pass ends, then recorded after their DSN is in the spool
// (a crash in between repeats the attempt; it never loses the DSN).
type pass struct {
	r      *Runner
	id     string
	env    *smtp.Envelope
	header []byte // the header section, for the DSN
	log    *slog.Logger

	mu   sync.Mutex
	refs int    // the starting worker's and one per batch not done
	held []held // states waiting for the DSN
}

// held is a recipient state to record once the DSN reporting it is
// spooled.
type held struct {
	rcpt     string
	st       spool.RecipientState // to record after the DSN
	fallback spool.RecipientState // to record when the DSN cannot be spooled
	report   dsnRecipient
	reason   string // bounce reason label; "" for a delay warning
}

// batch is one DeliverBatch call: the due recipients of a pass in one
// domain.
type batch struct {
	p      *pass
	domain string
	rcpts  []spool.ItemRecipient
}

// attemptTimeout bounds one delivery attempt, whatever the deliverer's
// own timeouts.
const attemptTimeout = 5 * time.Minute

// errLoop fails every recipient of a message that went round in circles.
var errLoop = errors.New("routing loop detected")

// process starts a pass over message id: it delivers the due local
// recipients and hands the remote ones to the remote workers, by domain.
// The pass ends (see done) when the last of them is recorded.
func (r *Runner) process(ctx context.Context, id string) {
	log := r.opts.Logger.With("id", id)
	it, err := r.spool.Lookup(id)
	if err != nil {
		r.finish(id) // done and gone
		return
	}
	now := r.opts.Now()
	var due []spool.ItemRecipient
	for _, rc := range it.Recipients {
		switch {
		case rc.State.Status.Final():
		case rc.State.Status == spool.StatusHeld: // until an operator releases it
		case !r.canDeliver(rc.Addr):
			log.Debug("queue: awaiting remote delivery", "rcpt", rc.Addr)
		case !rc.State.NextAttempt.After(now):
			due = append(due, rc)
		}
	}
	if len(due) == 0 {
		r.finish(id)
		return
	}
	env, msg, err := r.spool.Open(id)
	if errors.Is(err, spool.ErrNotFound) {
		r.finish(id)
		return
	}
	if err != nil {
		log.Error("queue: read message, retrying in a minute", "err", err)
		r.finishAt(id, now.Add(time.Minute))
		return
	}
	defer msg.Close()
	// The pass keeps only the header section: batches waiting for a
	// remote worker must not hold message bodies (or files) open.
	p := &pass{r: r, id: id, env: env, header: bytes.Clone(msg.Header), log: log, refs: 1}
	r.passes.Add(1)
	defer p.done()

	// RFC 5321 §6.3: a message with too many Received fields is looping.
	if n := smtp.CountFields(msg.Header, "Received"); n > smtp.MaxReceived {
		log.Warn("queue: routing loop, message fails", "received_fields", n)
		for _, rc := range it.Recipients {
			if !rc.State.Status.Final() {
				p.record(rc, Outcome{Rcpt: rc.Addr, Err: Permanent(errLoop), Status: "5.4.6",
					Diagnostic: fmt.Sprintf("X-Postern; Routing loop detected (%d Received header fields)", n)},
					"loop", r.opts.IsLocal(rc.Addr), r.clock())
			}
		}
		return
	}

	var domains []string
	byDomain := make(map[string][]spool.ItemRecipient)
	for _, rc := range due {
		if r.opts.IsLocal(rc.Addr) {
			continue
		}
		d := domainOf(rc.Addr)
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], rc)
	}
	for _, d := range domains {
		p.mu.Lock()
		p.refs++
		p.mu.Unlock()
		r.pushBatch(&batch{p: p, domain: d, rcpts: byDomain[d]})
	}
	for _, rc := range due {
		if !r.opts.IsLocal(rc.Addr) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		start := r.opts.Now()
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		r.active.begin(id, rc.Addr)
		o := r.deliverLocal(actx, env, rc.Addr, &msg.Message)
		r.active.end(id, rc.Addr)
		cancel()
		if o.Err != nil && ctx.Err() != nil {
			break // shutting down: the attempt does not count
		}
		c := r.clock()
		c.start = start
		o.Rcpt, o.Relay = rc.Addr, Relay{Transmit: c.now.Sub(start)}
		p.record(rc, o, "", true, c)
	}
}

// deliverLocal delivers msg to the local recipient rcpt through
// RunnerOptions.Local, with its whole Outcome when it reports one
// (OutcomeDeliverer).
func (r *Runner) deliverLocal(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) Outcome {
	if od, ok := r.opts.Local.(OutcomeDeliverer); ok {
		return od.DeliverOutcome(ctx, env, rcpt, msg)
	}
	return Outcome{Err: r.opts.Local.Deliver(ctx, env, rcpt, msg)}
}

// domainOf returns the key of addr's domain (addrkey.DomainKey), by
// which remote recipients are grouped: strings.ToLower would put
// "wor\u212A.test" (a KELVIN SIGN) in work.test's batch.
func domainOf(addr string) string { return addrkey.DomainKey(addrkey.DomainOf(addr)) }

// pushBatch queues b for a remote worker; after the remote workers have
// stopped, it drops b.
func (r *Runner) pushBatch(b *batch) {
	r.mu.Lock()
	if r.remoteClosed {
		r.mu.Unlock()
		b.p.done()
		return
	}
	r.batches = append(r.batches, b)
	r.mu.Unlock()
	signal(r.remoteWake)
}

// remoteWork delivers batches until ctx ends; the first remote worker to
// stop drops the batches still waiting (their recipients are tried again
// after the next start).
func (r *Runner) remoteWork(ctx context.Context) {
	for {
		r.mu.Lock()
		if ctx.Err() != nil {
			r.remoteClosed = true
			left := r.batches
			r.batches = nil
			r.mu.Unlock()
			for _, b := range left {
				b.p.done()
			}
			return
		}
		if len(r.batches) == 0 {
			r.mu.Unlock()
			select {
			case <-r.remoteWake:
			case <-ctx.Done():
			}
			continue
		}
		b := r.batches[0]
		r.batches[0] = nil
		r.batches = r.batches[1:]
		more := len(r.batches) > 0
		r.mu.Unlock()
		if more {
			signal(r.remoteWake)
		}
		r.deliverBatch(ctx, b)
		b.p.done()
	}
}

// deliverBatch reads the message, makes one DeliverBatch call and
// records its outcomes.
func (r *Runner) deliverBatch(ctx context.Context, b *batch) {
	addrs := make([]string, len(b.rcpts))
	for i, rc := range b.rcpts {
		addrs[i] = rc.Addr
	}
	env, msg, err := r.spool.Open(b.p.id)
	if errors.Is(err, spool.ErrNotFound) {
		return // deleted and gone meanwhile
	}
	var outs []Outcome
	start := r.opts.Now()
	if err != nil {
		b.p.log.Error("queue: read message", "err", err)
		for _, a := range addrs {
			outs = append(outs, Outcome{Rcpt: a, Err: fmt.Errorf("read message: %w", err), Status: "4.3.0"})
		}
	} else {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		r.active.begin(b.p.id, addrs...)
		outs = r.remote.DeliverBatch(actx, env, addrs, &msg.Message)
		r.active.end(b.p.id, addrs...)
		cancel()
		msg.Close()
	}
	// One clock reading and one random number for the whole batch, so
	// that its deferred recipients stay together for the next attempt.
	c := r.clock()
	c.start = start
	byRcpt := make(map[string]Outcome, len(outs))
	for _, o := range outs {
		byRcpt[o.Rcpt] = o
	}
	for _, rc := range b.rcpts {
		o, ok := byRcpt[rc.Addr]
		if !ok {
			o = Outcome{Rcpt: rc.Addr, Err: errors.New("no outcome from remote delivery")}
		}
		if o.Err != nil && ctx.Err() != nil {
			continue // shutting down: the attempt does not count
		}
		b.p.record(rc, o, "", false, c)
	}
}

// reading is a clock reading and a random number for the jitter, with
// when the attempt started (zero when it is not known).
type reading struct {
	now   time.Time
	rnd   float64
	start time.Time
}

// clock reads the clock and the random source.
func (r *Runner) clock() reading { return reading{now: r.opts.Now(), rnd: r.opts.Rand()} }

// record turns the outcome of an attempt at c.now into the recipient's
// new state and records it, or holds it for the DSN. reason labels a
// permanent failure for the bounce metric ("" means "permanent").
func (p *pass) record(rc spool.ItemRecipient, o Outcome, reason string, local bool, c reading) {
	r := p.r
	now := c.now
	var dse DSNStatusError
	if o.Err != nil && (o.Status == "" || o.Diagnostic == "") && errors.As(o.Err, &dse) {
		status, diag := dse.DSNStatus()
		if o.Status == "" {
			o.Status = status
		}
		if o.Diagnostic == "" {
			o.Diagnostic = diag
		}
	}
	st := rc.State
	st.Attempts++
	st.Updated = now
	st.NextAttempt = time.Time{}
	// What the deliverer reports may come from a remote server: it goes
	// into DSN header fields only as one clean line.
	st.RemoteMTA = diagnosticText(o.RemoteMTA)
	st.Diagnostic = diagnosticText(o.Diagnostic)
	if o.Err != nil && st.Diagnostic == "" {
		st.Diagnostic = "X-Postern; " + diagnosticText(o.Err.Error())
	}
	notify := p.env.RcptDSN(rc.Addr).Notify
	h := held{rcpt: rc.Addr, report: dsnRecipient{addr: rc.Addr, orcpt: p.env.RcptDSN(rc.Addr).ORcpt, action: actionFailed,
		remoteMTA: st.RemoteMTA, diagnostic: st.Diagnostic, lastAttempt: now}}
	rep := p.newReport(rc.Addr, o, local, st.Attempts, c)
	switch {
	case o.Err == nil:
		st.Status, st.LastError, st.Code = spool.StatusDelivered, "", statusCode(o.Status, '2')
		rep.Outcome, rep.Status = OutcomeDelivered, st.Code
		p.tell(rep)
		if !notify.Wants(smtp.NotifySuccess) || o.NextHopDSN {
			p.mark(rc.Addr, st, local)
			return
		}
		// RFC 3461 §5.2.2, §5.2.3: the sender asked to hear of the
		// success, and no next hop will tell; §6.2.7.3: an alias that
		// sent it on to several addresses is "expanded".
		h.report.action, h.report.status = actionRelayed, st.Code
		switch {
		case o.Expanded:
			h.report.action = actionExpanded
		case local:
			h.report.action = actionDelivered
		}
		h.st, h.fallback = st, st // delivered even if the notice is lost
		p.hold(h)
		return
	case IsPermanent(o.Err):
		st.Status, st.LastError, st.Code = spool.StatusFailed, o.Err.Error(), statusCode(o.Status, '5')
		h.reason = reason
		if h.reason == "" {
			h.reason = "permanent"
		}
		h.report.status = st.Code
	default:
		st.LastError, st.Code = o.Err.Error(), statusCode(o.Status, '4')
		next, ok := p.retryAt(st, c)
		if !ok {
			st.Status = spool.StatusFailed
			h.reason = "expired"
			h.report.status = statusExpired // RFC 3463 §3.5
			break
		}
		st.Status, st.NextAttempt = spool.StatusDeferred, next
		r.opts.Metrics.Retries.Inc()
		rep.Outcome, rep.Status, rep.NextAttempt = OutcomeDeferred, st.Code, next
		p.tell(rep)
		// RFC 3461 §4.1: a NOTIFY without DELAY wants no warning.
		if !r.policy.Load().WarnDue(p.env.ReceivedAt, now, st) || !notify.Wants(smtp.NotifyDelay) {
			p.mark(rc.Addr, st, local)
			return
		}
		h.fallback = st // without the warning, should the DSN fail
		st.Warned = true
		h.report.action = actionDelayed
		h.report.status = st.Code
		h.report.retryUntil = p.env.ReceivedAt.Add(r.policy.Load().GiveUp)
	}
	if st.Status == spool.StatusFailed {
		// Should the DSN fail, the recipient is tried again later.
		h.fallback = st
		h.fallback.Status = spool.StatusDeferred
		h.fallback.NextAttempt = now.Add(r.policy.Load().First)
		rep.Outcome, rep.Status, rep.Reason = OutcomeFailed, st.Code, h.reason
		if h.reason == "expired" {
			rep.Status = statusExpired
		}
		p.tell(rep)
		if !notify.Wants(smtp.NotifyFailure) {
			// RFC 3461 §4.1: NOTIFY=NEVER, or a list without FAILURE.
			r.opts.Metrics.Bounces.WithLabelValues(h.reason).Inc()
			r.opts.Metrics.DSNs.WithLabelValues("not_requested").Inc()
			p.log.Info("queue: no bounce, as NOTIFY asked", "rcpt", rc.Addr, "notify", notify.String())
			p.mark(rc.Addr, st, local)
			return
		}
	}
	h.st = st
	p.hold(h)
}

// hold keeps h until the pass's DSN is spooled.
func (p *pass) hold(h held) {
	p.mu.Lock()
	p.held = append(p.held, h)
	p.mu.Unlock()
}

// retryAt returns when a recipient deferred at now is due again, or ok
// false when its message is past giving up.
func (p *pass) retryAt(st spool.RecipientState, c reading) (time.Time, bool) {
	r := p.r
	if r.opts.Retry != nil {
		return r.opts.Retry(p.env, st, c.now)
	}
	if r.policy.Load().Expired(p.env.ReceivedAt, c.now) {
		return time.Time{}, false
	}
	return c.now.Add(r.policy.Load().Backoff(st.Attempts, c.rnd)), true
}

// mark records st for rcpt.
func (p *pass) mark(rcpt string, st spool.RecipientState, local bool) {
	if local {
		metrics.LocalDeliveries.WithLabelValues(st.Status.String()).Inc()
	}
	if err := p.r.spool.MarkRecipientAsync(p.id, rcpt, st); err != nil {
		if errors.Is(err, spool.ErrNotFound) {
			p.log.Info("queue: message gone before its outcome was recorded", "rcpt", rcpt)
			return
		}
		p.log.Error("queue: record delivery state", "rcpt", rcpt, "err", err)
	}
}

// done drops one reference to the pass; the last one sends the DSN,
// records the held states and ends the pass.
func (p *pass) done() {
	p.mu.Lock()
	p.refs--
	last := p.refs == 0
	p.mu.Unlock()
	if !last {
		return
	}
	if p.held = p.undeleted(p.held); len(p.held) > 0 {
		p.report()
	}
	p.r.finish(p.id)
	p.r.passes.Done()
}

// report spools one DSN for the held recipients and records their
// states. A message from the null sender gets none (RFC 3464 §2.2, RFC
// 5321 §4.5.5): a bounce that bounces is dropped and logged.
func (p *pass) report() {
	r := p.r
	failed := false
	var rcpts []dsnRecipient
	var addrs []string
	for _, h := range p.held {
		rcpts = append(rcpts, h.report)
		addrs = append(addrs, h.rcpt)
		failed = failed || h.report.action == actionFailed
	}
	spooled := true
	switch {
	case p.env.From == "" && failed:
		p.log.Warn("queue: bounce of a bounce dropped", "rcpts", addrs)
		r.opts.Metrics.DSNs.WithLabelValues("dropped").Inc()
	case p.env.From == "":
		p.log.Info("queue: no delay warning or success notice for the null sender", "rcpts", addrs)
	default:
		env, data := buildDSN(dsnInput{
			hostname: r.opts.Hostname,
			id:       smtp.NewID(r.opts.Now()),
			now:      r.opts.Now(),
			orig:     p.env,
			header:   p.header,
			full:     p.returned(failed),
			rcpts:    rcpts,
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := r.spool.Put(ctx, env, data)
		cancel()
		if err != nil {
			spooled = false
			r.opts.Metrics.DSNs.WithLabelValues("error").Inc()
			p.log.Error("queue: spool DSN, recipients retried", "rcpts", addrs, "err", err)
		} else {
			r.opts.Metrics.DSNs.WithLabelValues("queued").Inc()
			p.log.Info("queue: DSN queued", "dsn_id", env.ID, "to", p.env.From, "rcpts", addrs, "failed", failed)
		}
	}
	for _, h := range p.held {
		st := h.st
		if !spooled {
			st = h.fallback
		} else if h.reason != "" {
			r.opts.Metrics.Bounces.WithLabelValues(h.reason).Inc()
		}
		p.mark(h.rcpt, st, r.opts.IsLocal(h.rcpt))
	}
}

// maxReturned is the largest message a bounce returns whole (RET=FULL);
// of a larger one it returns the header section, as RFC 3461 §4.3
// allows (Postfix's bounce_size_limit does the same, at 50 kB).
const maxReturned = 1 << 20

// returned returns the whole message for a notice that reports a
// failure when the sender asked for it (RET=FULL, RFC 3461 §4.3), or
// nil for the header section: a success or delay notice, RET=HDRS or
// none, a message larger than maxReturned, or one that cannot be read.
func (p *pass) returned(failed bool) []byte {
	if !failed || p.env.Ret != "FULL" {
		return nil
	}
	_, msg, err := p.r.spool.Open(p.id)
	if err != nil {
		p.log.Warn("queue: read message to return it, header section returned", "err", err)
		return nil
	}
	defer msg.Close()
	if msg.Size() > maxReturned {
		p.log.Info("queue: message too large to return whole, header section returned", "size", msg.Size())
		return nil
	}
	var b bytes.Buffer
	b.Grow(int(msg.Size()))
	if _, err := msg.WriteTo(&b); err != nil {
		p.log.Warn("queue: read message to return it, header section returned", "err", err)
		return nil
	}
	return b.Bytes()
}

// statusCode returns code, an enhanced status code (RFC 3463 §2), in
// class class ('2' success, '4' persistent transient, '5' permanent), as
// the outcome decides it: a code of another class keeps its subject and
// detail, and a missing or malformed code becomes class.0.0.
func statusCode(code string, class byte) string {
	subject, detail, ok := strings.Cut(code[min(len(code), 2):], ".")
	if !ok || len(code) < 2 || code[1] != '.' || !strings.ContainsRune("245", rune(code[0])) ||
		!isDigits(subject, 3) || !isDigits(detail, 3) {
		return string(class) + ".0.0"
	}
	return string(class) + code[1:]
}

// isDigits reports whether s is 1 to max ASCII digits.
func isDigits(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
