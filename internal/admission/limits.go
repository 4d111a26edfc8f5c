package admission

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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
}

// Limiter enforces the send limits of authenticated users. The hourly
// counts are fixed windows of an hour from the user's first message in
// the Store (so shared by every node with Redis); the concurrent sessions
// are counted in this process only, like the Gate's connection caps (a
// node that dies must not leave sessions counted in a shared store). A
// Limiter is safe for concurrent use.
//
// Over a limit the client gets 451 4.7.1 naming the limit, and a
// "send limit reached" event is logged. Messages are refused, not held:
// holding them for review would need a hold state in the queue (kept out
// of delivery until an operator releases or deletes them), which the
// queue does not have yet.
type Limiter struct {
	store Store
	def   SendLimits
	users map[string]SendLimits
	log   *slog.Logger

	mu       sync.Mutex
	sessions map[string]int
}

// NewLimiter returns a Limiter over store with opts.
func NewLimiter(store Store, opts LimiterOptions) *Limiter {
	l := &Limiter{store: store, def: opts.Default, users: make(map[string]SendLimits, len(opts.Users)),
		log: opts.Logger, sessions: make(map[string]int)}
	for u, sl := range opts.Users {
		l.users[strings.ToLower(u)] = sl
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l
}

// Limits returns the limits that apply to user.
func (l *Limiter) Limits(user string) SendLimits {
	if sl, ok := l.users[strings.ToLower(user)]; ok {
		return sl
	}
	return l.def
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
	key := strings.ToLower(user)
	l.mu.Lock()
	defer l.mu.Unlock()
	if lim > 0 && l.sessions[key] >= lim {
		SendLimited.WithLabelValues("sessions").Inc()
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
	return l.sessions[strings.ToLower(user)]
}

// AllowMessage counts a message of user with rcpts recipients, at DATA,
// and returns nil when it is within the user's hourly limits. Over a
// limit it returns a 451 4.7.1 error naming the limit and counts nothing.
// On a store error it allows the message (fails open) and logs.
func (l *Limiter) AllowMessage(ctx context.Context, user string, rcpts int, now time.Time) *smtp.Error {
	lim := l.Limits(user)
	key := strings.ToLower(user)
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
			return nil
		}
		done = append(done, s)
		if v > int64(s.max) {
			undo()
			SendLimited.WithLabelValues(s.name).Inc()
			l.log.Warn("send limit reached", "user", user, "limit", s.name, "max", s.max, "count", v-s.n, "asked", s.n)
			return errLimit(s.name, s.max, " per hour", fmt.Sprintf("user %s: %d %s this hour, %d more asked", user, v-s.n, s.name, s.n))
		}
	}
	return nil
}
