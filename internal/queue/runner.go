package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"postern/internal/smtp"
	"postern/internal/spool"
)

// Deliverer delivers one message to one recipient. Deliver returns nil
// once the recipient's copy is safely handed over (for a mailbox: on
// stable storage). An error wrapped by Permanent fails the recipient for
// good; any other error defers it for a retry. msg's header is in memory
// and its body may be in a file of the spool: read the body as a stream
// (msg.Body.WriteTo, Reader), never whole into memory, for it may be as
// large as the message size limit. Deliver must not modify env or msg,
// nor retain them after it returns.
type Deliverer interface {
	Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error
}

// DSNStatusError is implemented by a delivery error that knows what the
// delivery status notification should say of the failure: the enhanced
// status code (RFC 3463) and the Diagnostic-Code (RFC 3464 §2.3.6), such
// as a mailbox server's reply "smtp; 550 5.1.1 User unknown"; "" for
// either when it does not know. The Runner looks for it anywhere in the
// chain of a Deliverer's error (errors.As), for the Outcome's Status and
// Diagnostic.
type DSNStatusError interface {
	error
	DSNStatus() (status, diagnostic string)
}

// DelivererFunc adapts a function to the Deliverer interface.
type DelivererFunc func(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) error {
	return f(ctx, env, rcpt, msg)
}

// Outcome is the result of one delivery attempt to one recipient.
type Outcome struct {
	// Rcpt is the recipient, as it was passed to DeliverBatch.
	Rcpt string
	// Err is nil when the recipient's copy was accepted; an error wrapped
	// by Permanent fails the recipient for good (a DSN goes to the
	// sender); any other error defers it for a retry.
	Err error
	// Status is the enhanced status code (RFC 3463), such as "5.1.1";
	// "" means 2.0.0, 4.0.0 or 5.0.0 by Err.
	Status string
	// Diagnostic is the DSN Diagnostic-Code (RFC 3464 §2.3.6), such as
	// "smtp; 550 5.1.1 User unknown"; "" means one made from Err.
	Diagnostic string
	// RemoteMTA is the host name of the server that gave the outcome
	// (RFC 3464 §2.3.5); "" when no server was reached.
	RemoteMTA string
	// Relay describes the session with that server, for the delivery
	// log and observers (Report).
	Relay Relay
	// NextHopDSN is set when the next hop offered DSN and took the
	// recipient's NOTIFY and ORCPT (RFC 3461 §5.2.1): it sends any
	// success notice, not this server. Without it, a recipient that asked
	// for one (NOTIFY=SUCCESS) gets a notice saying "relayed" for a
	// remote delivery (RFC 3461 §5.2.2) or "delivered" for a local one.
	NextHopDSN bool
	// Expanded is set when a local recipient was an alias that sent the
	// message on to several addresses (mailboxes or forwarded copies):
	// a success notice asked for says "expanded" for it (RFC 3461
	// §6.2.7.3, RFC 3464 §2.3.3), and the copies carry no NOTIFY=SUCCESS
	// onward.
	Expanded bool
}

// OutcomeDeliverer is a Deliverer that reports a whole Outcome: when
// RunnerOptions.Local implements it, the Runner calls DeliverOutcome in
// place of Deliver, so that a local delivery can say that it expanded
// an alias (Outcome.Expanded) or passed the recipient's NOTIFY on with a
// forwarded copy (Outcome.NextHopDSN, RFC 3461 §6.2.7.2). The Runner
// fills Rcpt and Relay; Err means what Deliver's error means.
type OutcomeDeliverer interface {
	DeliverOutcome(ctx context.Context, env *smtp.Envelope, rcpt string, msg *smtp.Message) Outcome
}

// BatchDeliverer delivers one message to several recipients in one
// domain, as one SMTP transaction can (RFC 5321 §3.3). DeliverBatch
// returns an Outcome for each recipient; a recipient without one is
// deferred. It may be called concurrently, for different messages or for
// different domains of one message; it must neither modify nor retain env
// or msg, and reads msg's body as a stream (see Deliverer).
type BatchDeliverer interface {
	DeliverBatch(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome
}

// BatchDelivererFunc adapts a function to the BatchDeliverer interface.
type BatchDelivererFunc func(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome

// DeliverBatch calls f.
func (f BatchDelivererFunc) DeliverBatch(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
	return f(ctx, env, rcpts, msg)
}

// oneByOne adapts a Deliverer to BatchDeliverer: one call per recipient.
type oneByOne struct{ d Deliverer }

func (o oneByOne) DeliverBatch(ctx context.Context, env *smtp.Envelope, rcpts []string, msg *smtp.Message) []Outcome {
	out := make([]Outcome, 0, len(rcpts))
	for _, r := range rcpts {
		if ctx.Err() != nil {
			break
		}
		out = append(out, Outcome{Rcpt: r, Err: o.d.Deliver(ctx, env, r, msg)})
	}
	return out
}

// permanentError marks an error as permanent.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent wraps err so the Runner fails the recipient instead of
// retrying (for example an unknown mailbox, or a 5xx reply).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, came from
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// RetryFunc decides when to try a deferred recipient again. It is called
// after a failed attempt with the state already counting that attempt;
// it returns when the next attempt is due, or ok false to give up (the
// recipient then fails).
type RetryFunc func(env *smtp.Envelope, st spool.RecipientState, now time.Time) (next time.Time, ok bool)

// DefaultRetry waits one minute after the first failure and doubles the
// wait after each further one, up to one hour; it gives up five days
// after the message was received (RFC 5321 §4.5.4.1 suggests 4-5 days).
// It is DefaultRetryPolicy without jitter; RunnerOptions.Policy
// supersedes it.
func DefaultRetry(env *smtp.Envelope, st spool.RecipientState, now time.Time) (time.Time, bool) {
	p := DefaultRetryPolicy()
	if p.Expired(env.ReceivedAt, now) {
		return time.Time{}, false
	}
	p.Jitter = 0
	return now.Add(p.Backoff(st.Attempts, 0.5)), true
}

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	// Local delivers to recipients for which IsLocal is true. Required.
	Local Deliverer
	// RemoteBatch delivers to all other recipients, one call per domain
	// and message. When nil, Remote is used instead.
	RemoteBatch BatchDeliverer
	// Remote, when RemoteBatch is nil, delivers to the other recipients
	// one at a time. When both are nil those recipients stay pending,
	// awaiting remote delivery. (Production sets RemoteBatch; Remote is
	// for deliverers, such as the tests', that take one recipient.)
	Remote Deliverer
	// IsLocal reports whether addr is delivered by Local. Required.
	IsLocal func(addr string) bool
	// Workers is the number of messages whose local recipients are
	// handled at once; 0 means 4.
	Workers int
	// RemoteConcurrency bounds the remote deliveries (DeliverBatch
	// calls) in flight; 0 means 16. Production keeps 16 (the outbound
	// pool bounds connections per host on its own); the tests of the
	// bound set it.
	RemoteConcurrency int
	// Policy is the retry schedule; see RetryPolicy for its zero values
	// (the zero Policy is DefaultRetryPolicy).
	Policy RetryPolicy
	// Retry, when set, replaces Policy's backoff and give-up decision
	// (Policy.DelayWarning still applies). Production uses Policy; tests
	// set Retry for an exact schedule.
	Retry RetryFunc
	// Hostname names this server in DSNs (Reporting-MTA, the
	// MAILER-DAEMON sender, Message-ID); "" means "localhost".
	Hostname string
	// Logger receives delivery events; nil means slog.Default().
	Logger *slog.Logger
	// Observe, when set, is told each delivery attempt's outcome, the
	// Report that is logged, from the goroutine that delivered: it must
	// not block.
	Observe func(Report)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand returns random numbers in [0, 1) for the retry jitter; nil
	// means math/rand/v2's Float64.
	Rand func() float64
	// Metrics counts retries, bounces and DSNs (NewMetrics); nil counts
	// into a set registered nowhere.
	Metrics *Metrics
}

// Runner delivers spooled messages: on Run it takes every live message in
// the spool, then each message Put makes durable, and hands every due
// recipient to its deliverer, recording the outcome with MarkRecipientAsync.
// Local recipients are delivered one by one by a pool of Workers; remote
// ones are grouped by domain, one DeliverBatch call per group, at most
// RemoteConcurrency at once. A message is in one delivery pass at a
// time; when the pass ends the Runner sends the sender one DSN for the
// recipients that failed or are due a delay warning, then sleeps until
// the earliest next attempt of any message (one timer for the whole
// queue).
type Runner struct {
	spool  *spool.Spool
	opts   RunnerOptions
	remote BatchDeliverer
	policy atomic.Pointer[RetryPolicy] // SetPolicy

	mu      sync.Mutex
	queue   []string            // message ids ready for a pass
	state   map[string]runState // messages queued or in a pass
	stopped bool
	wake    chan struct{}

	batches      []*batch // remote deliveries waiting for a slot
	remoteClosed bool
	remoteWake   chan struct{}

	sched   schedule
	resched chan struct{}

	active active // the recipients being delivered now (operator.go)

	passes sync.WaitGroup
}

type runState uint8

const (
	runQueued  runState = iota + 1 // in queue
	runRunning                     // in a pass
	runAgain                       // in a pass; run it again after
)

// SetPolicy makes p the retry schedule of the outcomes from now on (a
// reload of the configuration); a recipient deferred before keeps the
// next attempt it was given.
func (r *Runner) SetPolicy(p RetryPolicy) {
	p = p.withDefaults()
	r.policy.Store(&p)
}

// NewRunner returns a Runner for spool.
func NewRunner(spool *spool.Spool, opts RunnerOptions) *Runner {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.RemoteConcurrency <= 0 {
		opts.RemoteConcurrency = 16
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	r := &Runner{
		spool:      spool,
		opts:       opts,
		remote:     opts.RemoteBatch,
		state:      make(map[string]runState),
		wake:       make(chan struct{}, 1),
		remoteWake: make(chan struct{}, 1),
		resched:    make(chan struct{}, 1),
		sched:      newSchedule(),
	}
	r.SetPolicy(opts.Policy)
	if r.remote == nil && opts.Remote != nil {
		r.remote = oneByOne{opts.Remote}
	}
	return r
}

// Run delivers until ctx ends, then waits for the attempts in progress
// (whose contexts are cancelled) and returns nil. Attempts cut short by
// the end of ctx do not count: their recipients are tried again after
// the next start.
func (r *Runner) Run(ctx context.Context) error {
	if r.opts.Local == nil || r.opts.IsLocal == nil {
		return errors.New("queue: run: Local and IsLocal are required")
	}
	stop := r.spool.Watch(r.enqueue)
	defer stop()
	for _, it := range r.spool.List() {
		r.enqueue(it.ID)
	}
	var wg sync.WaitGroup
	for range r.opts.Workers {
		wg.Go(func() { r.work(ctx) })
	}
	for range r.opts.RemoteConcurrency {
		wg.Go(func() { r.remoteWork(ctx) })
	}
	wg.Go(func() { r.timerLoop(ctx) })
	<-ctx.Done()
	r.mu.Lock()
	r.stopped = true
	r.sched.clear()
	r.mu.Unlock()
	wg.Wait()
	r.passes.Wait()
	return nil
}

// Retry makes every deferred recipient of message id due now and wakes
// the Runner for it. It fails with ErrNotFound when the spool has no
// such message with a recipient not yet done.
func (r *Runner) Retry(id string) error {
	if err := r.spool.RetryNow(id); err != nil {
		return fmt.Errorf("queue: retry %s: %w", id, err)
	}
	r.mu.Lock()
	r.sched.remove(id)
	r.mu.Unlock()
	r.enqueue(id)
	return nil
}

// Release makes the held recipients of message id pending and wakes the
// Runner for it (see Spool.Release): they are delivered now, and from
// then on retried and expired like any recipient. It fails wrapping
// ErrNotFound when the message is not live and ErrNotHeld when it is not
// held.
func (r *Runner) Release(id string) error {
	if err := r.spool.Release(id); err != nil {
		if errors.Is(err, spool.ErrNotFound) {
			return fmt.Errorf("queue: release %s: %w", id, err)
		}
		return err
	}
	r.opts.Metrics.Released.Inc()
	r.opts.Logger.Info("queue: released", "id", id)
	r.enqueue(id)
	return nil
}

// enqueue queues message id unless it is queued already; a message in a
// pass gets another pass afterwards.
func (r *Runner) enqueue(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	switch r.state[id] {
	case runQueued, runAgain:
		return
	case runRunning:
		r.state[id] = runAgain
		return
	}
	r.state[id] = runQueued
	r.queue = append(r.queue, id)
	signal(r.wake)
}

// signal wakes one waiter on c without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// next takes a message id from the queue, waiting until one comes or ctx
// ends.
func (r *Runner) next(ctx context.Context) (string, bool) {
	for {
		r.mu.Lock()
		if len(r.queue) > 0 {
			id := r.queue[0]
			r.queue[0] = ""
			r.queue = r.queue[1:]
			r.state[id] = runRunning
			more := len(r.queue) > 0
			r.mu.Unlock()
			if more { // pass the wake-up on to another worker
				signal(r.wake)
			}
			return id, true
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-ctx.Done():
			return "", false
		}
	}
}

func (r *Runner) work(ctx context.Context) {
	for {
		id, ok := r.next(ctx)
		if !ok {
			return
		}
		r.process(ctx, id)
	}
}

// finish ends the pass over message id: another pass if one was asked
// for meanwhile, else a wake-up when its next recipient is due.
func (r *Runner) finish(id string) { r.finishAt(id, time.Time{}) }

// finishAt is finish with the wake-up at at instead, unless at is zero.
func (r *Runner) finishAt(id string, at time.Time) {
	r.mu.Lock()
	again := r.state[id] == runAgain
	delete(r.state, id)
	r.mu.Unlock()
	if again {
		r.enqueue(id)
		return
	}
	if at.IsZero() {
		at = r.nextDue(id)
	}
	if !at.IsZero() {
		r.scheduleAt(id, at)
	}
}

// nextDue returns when the next recipient of message id that the Runner
// can deliver is due; zero when none.
func (r *Runner) nextDue(id string) time.Time {
	it, err := r.spool.Lookup(id)
	if err != nil {
		return time.Time{}
	}
	var due time.Time
	for _, rc := range it.Recipients {
		if rc.State.Status.Final() || rc.State.Status == spool.StatusHeld || !r.canDeliver(rc.Addr) {
			continue
		}
		at := rc.State.NextAttempt
		if at.IsZero() {
			at = r.opts.Now()
		}
		if due.IsZero() || at.Before(due) {
			due = at
		}
	}
	return due
}

// canDeliver reports whether the Runner has a deliverer for addr.
func (r *Runner) canDeliver(addr string) bool {
	return r.remote != nil || r.opts.IsLocal(addr)
}
