package queue

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metrics are a Runner's metrics (RunnerOptions.Metrics); the spool
// keeps its own (spool.Metrics), the queue depth among them. Each Runner has its own set, so tests of
// several Runners count apart.
type Metrics struct {
	// OldestSeconds is the age of the oldest message with a recipient
	// not yet done, refreshed every 15 seconds while the Runner runs; 0
	// when the queue is empty.
	OldestSeconds prometheus.Gauge
	// Retries counts temporary failures that scheduled a retry, one per
	// recipient.
	Retries prometheus.Counter
	// Bounces counts recipients that failed for good, by reason:
	// "permanent" (a permanent error), "expired" (retried past the
	// give-up time) or "loop" (too many Received fields).
	Bounces *prometheus.CounterVec
	// DSNs counts delivery status notifications by outcome: "queued"
	// (put into the spool), "dropped" (the failed message had the null
	// sender), "error" (the spool refused it; retried later) or
	// "not_requested" (a recipient failed whose NOTIFY asked for no
	// bounce, RFC 3461 §4.1).
	DSNs *prometheus.CounterVec
	// Released counts held messages an operator released.
	Released prometheus.Counter
}

// NewMetrics returns a set of the queue's metrics, registered on reg
// unless it is nil, with every bounce reason and DSN outcome at 0 (so
// that alerts on their rate see them from the start).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		OldestSeconds: metrics.Gauge("postern_queue_oldest_seconds", "Age of the oldest message in the queue with a recipient not yet done."),
		Retries:       metrics.Counter("postern_queue_retries_total", "Delivery attempts that failed temporarily and were scheduled again, per recipient."),
		Bounces:       metrics.CounterVec("postern_queue_bounces_total", "Recipients that failed for good, by reason (permanent, expired, loop).", "reason"),
		DSNs:          metrics.CounterVec("postern_queue_dsns_total", "Delivery status notifications, by outcome (queued, dropped, error, not_requested).", "outcome"),
		Released:      metrics.Counter("postern_queue_released_total", "Held messages released for delivery by an operator."),
	}
	metrics.Register(reg, m.OldestSeconds, m.Retries, m.Bounces, m.DSNs, m.Released)
	metrics.Zero(m.Bounces, "permanent", "expired", "loop")
	metrics.Zero(m.DSNs, "queued", "dropped", "error", "not_requested")
	return m
}
