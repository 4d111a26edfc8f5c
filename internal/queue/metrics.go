package queue

import "github.com/prometheus/client_golang/prometheus"

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
		OldestSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postern_queue_oldest_seconds",
			Help: "Age of the oldest message in the queue with a recipient not yet done.",
		}),
		Retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_queue_retries_total",
			Help: "Delivery attempts that failed temporarily and were scheduled again, per recipient.",
		}),
		Bounces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_queue_bounces_total",
			Help: "Recipients that failed for good, by reason (permanent, expired, loop).",
		}, []string{"reason"}),
		DSNs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_queue_dsns_total",
			Help: "Delivery status notifications, by outcome (queued, dropped, error, not_requested).",
		}, []string{"outcome"}),
		Released: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postern_queue_released_total",
			Help: "Held messages released for delivery by an operator.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.OldestSeconds, m.Retries, m.Bounces, m.DSNs, m.Released)
	}
	for _, r := range []string{"permanent", "expired", "loop"} {
		m.Bounces.WithLabelValues(r)
	}
	for _, o := range []string{"queued", "dropped", "error", "not_requested"} {
		m.DSNs.WithLabelValues(o)
	}
	return m
}
