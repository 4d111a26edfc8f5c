package admission

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"postern/internal/smtp"
)

// SendLimits are what one authenticated user may send. A zero field
// means no limit.
type SendLimits struct {
	// MessagesPerHour caps the messages accepted for the user in an hour.
	MessagesPerHour int
	// RecipientsPerHour caps the recipients of those messages, summed.
	RecipientsPerHour int
	// Sessions caps the user's concurrent authenticated sessions (on
	// this node).
	Sessions int
	// Hold, when set, takes a message over an hourly limit and holds it
	// for review (the queue delivers it only once an operator releases
	// it) instead of refusing it with 451 4.7.1.
	Hold bool
}

// MessageVerdict is what CheckMessage decided about one message.
type MessageVerdict struct {
	// Over is the 451 4.7.1 error naming the limit the message would go
	// past; nil when it is within the user's limits (and counted).
	Over *smtp.Error
	// Limit names the limit reached: "messages per hour" or
	// "recipients per hour"; "" when none.
	Limit string
	// Hold is set with Over when the user's policy is to hold: the
	// session takes the message and marks it held instead of answering
	// Over. A held message is not counted against the limits.
	Hold bool
}

// LimiterOptions configure a Limiter.
type LimiterOptions struct {
	// Default applies to every user without an entry in Users.
	Default SendLimits
	// Users holds complete per-user limits by user name (as the
	// directory spells it; compared without regard to case); each
	// replaces Default for that user.
	Users map[string]SendLimits
	// Logger receives the "send limit reached" events; nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics counts what the limits refuse or hold (NewMetrics); nil
	// counts into a set registered nowhere. NewLimiter reads it:
	// SetOptions keeps the Limiter's.
	Metrics *Metrics
}

// Limiter enforces the send limits of authenticated users. The hourly
// counts are fixed windows of an hour from the user's first message in
// the Store (so shared by every node with Redis); the concurrent sessions
// are counted in this process only, like the Gate's connection caps (a
// node that dies must not leave sessions counted in a shared store). A
// Limiter is safe for concurrent use.
//
// Over a limit a "send limit reached" event is logged and the client
// gets 451 4.7.1 naming the limit, or, for a user whose SendLimits.Hold
// is set, the message is taken and held for review (see CheckMessage).
type Limiter struct {
	store  Store
	limits atomic.Pointer[userLimits] // SetOptions
	log    *slog.Logger
	m      *Metrics

	mu       sync.Mutex
	sessions map[string]int
}

// NewLimiter returns a Limiter over store with opts.
func NewLimiter(store Store, opts LimiterOptions) *Limiter {
	l := &Limiter{store: store, log: opts.Logger, m: opts.Metrics, sessions: make(map[string]int)}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.m == nil {
		l.m = NewMetrics(nil)
	}
	l.SetOptions(opts)
	return l
}

// userLimits is LimiterOptions' limits, by userKey.
type userLimits struct {
	def   SendLimits
	users map[string]SendLimits
}

// SetOptions makes the limits of opts (not its Logger) those that apply
// from now on (a reload of the configuration). Sessions, messages and
// recipients counted before stay counted against the new limits.
func (l *Limiter) SetOptions(opts LimiterOptions) {
	u := &userLimits{def: opts.Default, users: make(map[string]SendLimits, len(opts.Users))}
	for name, sl := range opts.Users {
		u.users[userKey(name)] = sl
	}
	l.limits.Store(u)
}

// Limits returns the limits that apply to user.
func (l *Limiter) Limits(user string) SendLimits {
	u := l.limits.Load()
	if sl, ok := u.users[userKey(user)]; ok {
		return sl
	}
	return u.def
}

func errLimit(what string, n int, per string, reason string) *smtp.Error {
	return &smtp.Error{Code: 451, Enhanced: "4.7.1",
		Message: fmt.Sprintf("Send limit of %d %s%s reached, try again later", n, what, per), Reason: reason}
}

// BeginSession counts a new authenticated session of user. When the
// user has Sessions sessions open already it returns a 451 4.7.1 error
// and counts nothing; otherwise it returns release, which the session
// calls once when it ends.
func (l *Limiter) BeginSession(ctx context.Context, user string) (release func(), err *smtp.Error) {
	lim := l.Limits(user).Sessions
	key := userKey(user)
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim > 0 && l.sessions[key] >= lim {
		l.m.SendLimited.WithLabelValues("sessions").Inc()
		l.log.Warn("send limit reached", "user", user, "limit", "sessions", "max", lim)
		return nil, errLimit("concurrent sessions", lim, "", "user "+user+" has too many sessions")
	}
	l.sessions[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.sessions[key]--; l.sessions[key] <= 0 {
				delete(l.sessions, key)
			}
		})
	}, nil
}

// Sessions returns how many sessions of user are open on this node.
func (l *Limiter) Sessions(user string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sessions[userKey(user)]
}

// AllowMessage is CheckMessage without the hold policy: it returns nil
// when the message is within the user's hourly limits (and counts it),
// and otherwise the 451 4.7.1 error naming the limit (counting nothing).
func (l *Limiter) AllowMessage(ctx context.Context, user string, rcpts int, now time.Time) *smtp.Error {
	return l.CheckMessage(ctx, user, rcpts, now).Over
}

// CheckMessage counts a message of user with rcpts recipients, at DATA,
// and returns the zero MessageVerdict when it is within the user's
// hourly limits. Over a limit it counts nothing and returns the 451 4.7.1
// error naming the limit, with Hold set when the user's policy is to
// hold. On a store error it allows the message (fails open) and logs.
func (l *Limiter) CheckMessage(ctx context.Context, user string, rcpts int, now time.Time) MessageVerdict {
	lim := l.Limits(user)
	key := userKey(user)
	type step struct {
		name string
		key  string
		n    int64
		max  int
	}
	steps := []step{
		{"messages", "send:msgs:" + key, 1, lim.MessagesPerHour},
		{"recipients", "send:rcpts:" + key, int64(rcpts), lim.RecipientsPerHour},
	}
	var done []step
	undo := func() {
		for _, s := range done {
			l.store.Incr(context.WithoutCancel(ctx), s.key, -s.n, now, time.Hour)
		}
	}
	for _, s := range steps {
		if s.max <= 0 {
			continue
		}
		v, err := l.store.Incr(ctx, s.key, s.n, now, time.Hour)
		if err != nil {
			l.log.Error("send limits: store failed; allowing", "user", user, "err", err)
			undo()
			return MessageVerdict{}
		}
		done = append(done, s)
		if v > int64(s.max) {
			undo()
			l.m.SendLimited.WithLabelValues(s.name).Inc()
			action := "refuse"
			if lim.Hold {
				action = "hold"
			}
			l.log.Warn("send limit reached", "user", user, "limit", s.name, "max", s.max, "count", v-s.n, "asked", s.n,
				"action", action)
			return MessageVerdict{Limit: s.name + " per hour", Hold: lim.Hold,
				Over: errLimit(s.name, s.max, " per hour", fmt.Sprintf("user %s: %d %s this hour, %d more asked", user, v-s.n, s.name, s.n))}
		}
	}
	return MessageVerdict{}
}
