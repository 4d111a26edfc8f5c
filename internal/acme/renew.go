package acme

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"time"
)

// Run keeps the certificate current until ctx is done, and returns
// ctx.Err(). Unless a certificate is already current (Load was called),
// it first installs the stored certificate, if any; then,
// whenever the certificate is due (see Due), it obtains a new one. After
// a failed attempt it logs the alert event "acme renewal failed" at
// ERROR, with the attempt count, the next try and the error, and waits
// RetryFirst, then twice as long after each further failure, up to
// RetryMax. The metrics postern_acme_attempts_total,
// postern_acme_consecutive_failures and
// postern_acme_certificate_expiry_timestamp_seconds follow it.
func (m *Manager) Run(ctx context.Context) error {
	if m.Certificate() == nil {
		if _, err := m.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("acme stored certificate unusable; obtaining a new one", "err", err)
		}
	}
	failures := 0
	for {
		now := m.o.Now()
		var wait time.Duration
		if m.Due(m.Certificate(), now) {
			c, err := m.Obtain(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				failures = 0
				m.o.Metrics.attempts.WithLabelValues("success").Inc()
				m.o.Metrics.failures.Set(0)
				m.setExpiry(c)
				continue
			}
			failures++
			wait = Backoff(failures, m.o.RetryFirst, m.o.RetryMax)
			m.o.Metrics.attempts.WithLabelValues("failure").Inc()
			m.o.Metrics.failures.Set(float64(failures))
			attrs := []any{"names", strings.Join(m.o.Hostnames, ","), "attempt", failures,
				"next_try", now.Add(wait).UTC().Format(time.RFC3339), "err", err}
			if cur := m.Certificate(); cur != nil && cur.Leaf != nil {
				attrs = append(attrs, "not_after", cur.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			m.log.Error("acme renewal failed", attrs...)
		} else {
			wait = m.renewAt(m.Certificate()).Sub(now)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.o.After(min(wait, maxSleep)):
		}
	}
}

// Backoff returns the wait after the n-th failure in a row (n >= 1):
// first, doubled for each further failure, capped at max.
func Backoff(n int, first, max time.Duration) time.Duration {
	d := first
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}
