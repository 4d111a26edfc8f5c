package queue

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"postern/internal/metrics"
)

// Deliverer delivers one message to one recipient. Deliver returns nil
// once the recipient's copy is safely handed over (for a mailbox: on
// stable storage). An error wrapped by Permanent fails the recipient for
// good; any other error defers it for a retry. Deliver must not retain
// env or data after it returns.
type Deliverer interface {
	Deliver(ctx context.Context, env *Envelope, rcpt string, data []byte) error
}

// DelivererFunc adapts a function to the Deliverer interface.
type DelivererFunc func(ctx context.Context, env *Envelope, rcpt string, data []byte) error

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, env *Envelope, rcpt string, data []byte) error {
	return f(ctx, env, rcpt, data)
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
type RetryFunc func(env *Envelope, st RecipientState, now time.Time) (next time.Time, ok bool)

// DefaultRetry waits one minute after the first failure and doubles the
// wait after each further one, up to one hour; it gives up five days
// after the message was received (RFC 5321 §4.5.4.1 suggests 4-5 days).
func DefaultRetry(env *Envelope, st RecipientState, now time.Time) (time.Time, bool) {
	if !env.ReceivedAt.IsZero() && now.Sub(env.ReceivedAt) > 5*24*time.Hour {
		return time.Time{}, false
	}
	d := time.Minute
	for i := 1; i < st.Attempts && d < time.Hour; i++ {
		d *= 2
	}
	return now.Add(min(d, time.Hour)), true
}

// RunnerOptions configures a Runner.
type RunnerOptions struct {
	// Local delivers to recipients for which IsLocal is true. Required.
	Local Deliverer
	// Remote delivers to all other recipients. When nil they stay
	// pending, awaiting remote delivery.
	Remote Deliverer
	// IsLocal reports whether addr is delivered by Local. Required.
	IsLocal func(addr string) bool
	// Workers is the number of messages handled at once; 0 means 4.
	Workers int
	// Retry schedules retries; nil means DefaultRetry.
	Retry RetryFunc
	// AttemptTimeout bounds one delivery attempt; 0 means 5 minutes.
	AttemptTimeout time.Duration
	// Logger receives delivery events; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Runner delivers spooled messages: on Run it takes every live message in
// the spool, then each message Put makes durable, and hands every due
// recipient to its Deliverer, recording the outcome with MarkRecipient.
// One message is handled by one worker at a time.
type Runner struct {
	spool *Spool
	opts  RunnerOptions

	mu      sync.Mutex
	queue   []string
	state   map[string]runState
	timers  map[string]*time.Timer
	stopped bool
	wake    chan struct{}
}

type runState uint8

const (
	runQueued  runState = iota + 1 // in queue
	runRunning                     // a worker has it
	runAgain                       // a worker has it; run it again after
)

// NewRunner returns a Runner for spool.
func NewRunner(spool *Spool, opts RunnerOptions) *Runner {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Retry == nil {
		opts.Retry = DefaultRetry
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Runner{
		spool:  spool,
		opts:   opts,
		state:  make(map[string]runState),
		timers: make(map[string]*time.Timer),
		wake:   make(chan struct{}, 1),
	}
}

// Run delivers until ctx ends, then waits for the attempts in progress
// (whose contexts are cancelled) and returns nil.
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
	<-ctx.Done()
	r.mu.Lock()
	r.stopped = true
	for id, t := range r.timers {
		t.Stop()
		delete(r.timers, id)
	}
	r.mu.Unlock()
	wg.Wait()
	return nil
}

// enqueue queues message id unless it is queued already; a message being
// handled is handled once more afterwards.
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
	select {
	case r.wake <- struct{}{}:
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
				select {
				case r.wake <- struct{}{}:
				default:
				}
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
		due := r.process(ctx, id)
		r.mu.Lock()
		again := r.state[id] == runAgain
		delete(r.state, id)
		r.mu.Unlock()
		if again {
			r.enqueue(id)
		} else if !due.IsZero() {
			r.schedule(id, due)
		}
	}
}

// schedule queues id again at time at.
func (r *Runner) schedule(id string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if t := r.timers[id]; t != nil {
		t.Stop()
	}
	r.timers[id] = time.AfterFunc(max(at.Sub(r.opts.Now()), 0), func() {
		r.mu.Lock()
		delete(r.timers, id)
		r.mu.Unlock()
		r.enqueue(id)
	})
}

// process makes one pass over the recipients of message id and returns
// the earliest time a deferred recipient is due again (zero when none).
func (r *Runner) process(ctx context.Context, id string) (due time.Time) {
	log := r.opts.Logger.With("id", id)
	it, err := r.spool.Lookup(id)
	if err != nil {
		return time.Time{} // done and gone
	}
	var env *Envelope
	var data []byte
	for _, rc := range it.Recipients {
		st := rc.State
		if st.Status.Final() {
			continue
		}
		local := r.opts.IsLocal(rc.Addr)
		d := r.opts.Local
		if !local {
			d = r.opts.Remote
		}
		if d == nil {
			log.Debug("queue: awaiting remote delivery", "rcpt", rc.Addr)
			continue
		}
		now := r.opts.Now()
		if st.NextAttempt.After(now) {
			if due.IsZero() || st.NextAttempt.Before(due) {
				due = st.NextAttempt
			}
			continue
		}
		if env == nil {
			if env, data, err = r.spool.Get(id); err != nil {
				log.Error("queue: read message", "err", err)
				return now.Add(time.Minute)
			}
		}
		actx, cancel := context.WithTimeout(ctx, r.opts.AttemptTimeout)
		err := d.Deliver(actx, env, rc.Addr, data)
		cancel()
		if ctx.Err() != nil {
			return time.Time{} // shutting down: the attempt does not count
		}
		st = r.outcome(env, st, err)
		if local {
			metrics.LocalDeliveries.WithLabelValues(st.Status.String()).Inc()
		}
		if err != nil {
			log.Warn("queue: delivery failed", "rcpt", rc.Addr, "local", local,
				"status", st.Status.String(), "attempts", st.Attempts, "err", err)
		} else {
			log.Info("queue: delivered", "rcpt", rc.Addr, "local", local)
		}
		if merr := r.spool.MarkRecipient(id, rc.Addr, st); merr != nil {
			log.Error("queue: record delivery state", "rcpt", rc.Addr, "err", merr)
		}
		if st.Status == StatusDeferred && (due.IsZero() || st.NextAttempt.Before(due)) {
			due = st.NextAttempt
		}
	}
	return due
}

// outcome is the state after an attempt that returned err.
func (r *Runner) outcome(env *Envelope, st RecipientState, err error) RecipientState {
	now := r.opts.Now()
	st.Attempts++
	st.Updated = now
	st.NextAttempt = time.Time{}
	switch {
	case err == nil:
		st.Status, st.LastError = StatusDelivered, ""
	case IsPermanent(err):
		st.Status, st.LastError = StatusFailed, err.Error()
	default:
		st.LastError = err.Error()
		next, ok := r.opts.Retry(env, st, now)
		if ok {
			st.Status, st.NextAttempt = StatusDeferred, next
		} else {
			st.Status = StatusFailed
		}
	}
	return st
}
