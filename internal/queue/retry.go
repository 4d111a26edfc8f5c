package queue

import (
	"time"

	"postern/internal/spool"
)

// RetryPolicy is the retry schedule of deferred recipients: exponential
// backoff with jitter, a cap on the wait, a time after which the sender is
// warned, and one after which delivery is given up (RFC 5321 §4.5.4.1:
// retry for at least 4-5 days, at least 30 minutes apart on the first
// tries — the defaults start lower, at one minute, as most temporary
// failures clear quickly).
type RetryPolicy struct {
	// First is the wait after the first failed attempt; it doubles after
	// each further one. 0 means one minute.
	First time.Duration
	// Max caps the wait between attempts. 0 means one hour.
	Max time.Duration
	// GiveUp is how long after its arrival a message is retried: a
	// temporary failure later than that fails the recipient for good
	// (DSN status 4.4.7). 0 means five days.
	GiveUp time.Duration
	// DelayWarning is the age of a message at which the sender gets a
	// delay warning (DSN action "delayed"), once per recipient, at the
	// first temporary failure past it. 0 means no warnings.
	DelayWarning time.Duration
	// Jitter spreads each wait by up to this fraction either way (0.2:
	// ±20%), so that messages deferred together are not retried in
	// lockstep. 0 means none; it is capped at 1.
	Jitter float64
}

// DefaultRetryPolicy returns the default schedule: first retry after one
// minute, doubling up to one hour, ±20% jitter, a delay warning after
// four hours, giving up after five days.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		First:        time.Minute,
		Max:          time.Hour,
		GiveUp:       5 * 24 * time.Hour,
		DelayWarning: 4 * time.Hour,
		Jitter:       0.2,
	}
}

// withDefaults returns p with its zero fields defaulted; the zero
// RetryPolicy is DefaultRetryPolicy.
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p == (RetryPolicy{}) {
		return DefaultRetryPolicy()
	}
	d := DefaultRetryPolicy()
	if p.First <= 0 {
		p.First = d.First
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	if p.Max < p.First {
		p.Max = p.First
	}
	if p.GiveUp <= 0 {
		p.GiveUp = d.GiveUp
	}
	p.Jitter = min(max(p.Jitter, 0), 1)
	return p
}

// Backoff returns the wait before the next attempt after attempts
// failed ones (attempts >= 1): min(First * 2^(attempts-1), Max), spread
// by Jitter. rnd is a random number in [0, 1): 0.5 gives the exact
// backoff, 0 the shortest and values near 1 the longest. Fields that are
// zero take their defaults.
func (p RetryPolicy) Backoff(attempts int, rnd float64) time.Duration {
	p = p.withDefaults()
	d := p.First
	for i := 1; i < attempts && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter > 0 {
		f := 1 + p.Jitter*(2*rnd-1)
		d = time.Duration(float64(d) * f)
	}
	return max(d, time.Millisecond)
}

// Expired reports whether a message that arrived at received is past
// GiveUp at now.
func (p RetryPolicy) Expired(received, now time.Time) bool {
	p = p.withDefaults()
	return !received.IsZero() && now.Sub(received) > p.GiveUp
}

// WarnDue reports whether a recipient of a message that arrived at
// received, and which has not been warned about yet, is due a delay
// warning at now.
func (p RetryPolicy) WarnDue(received, now time.Time, st spool.RecipientState) bool {
	p = p.withDefaults()
	return p.DelayWarning > 0 && !st.Warned && !received.IsZero() && now.Sub(received) >= p.DelayWarning
}
