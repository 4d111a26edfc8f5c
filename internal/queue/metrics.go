package queue

import "github.com/prometheus/client_golang/prometheus"

// The queue's metrics, registered by RegisterMetrics; the spool keeps
// metrics.SpoolMessages (the queue depth) and its own
// (spool.RegisterMetrics). Metric declarations are the only
// package-level mutable state (DESIGN.md).
var (
	// QueueOldestSeconds is the age of the oldest message with a
	// recipient not yet done, refreshed every 15 seconds while a Runner
	// runs; 0 when the queue is empty.
	QueueOldestSeconds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "postern_queue_oldest_seconds",
		Help: "Age of the oldest message in the queue with a recipient not yet done.",
	})

	// QueueRetries counts temporary failures that scheduled a retry, one
	// per recipient.
	QueueRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "postern_queue_retries_total",
		Help: "Delivery attempts that failed temporarily and were scheduled again, per recipient.",
	})

	// QueueBounces counts recipients that failed for good, by reason:
	// "permanent" (a permanent error), "expired" (retried past the give-up
	// time) or "loop" (too many Received fields).
	QueueBounces = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_queue_bounces_total",
		Help: "Recipients that failed for good, by reason (permanent, expired, loop).",
	}, []string{"reason"})

	// QueueDSNs counts delivery status notifications by outcome: "queued"
	// (put into the spool), "dropped" (the failed message had the null
	// sender), "error" (the spool refused it; retried later) or
	// "not_requested" (a recipient failed whose NOTIFY asked for no
	// bounce, RFC 3461 §4.1).
	QueueDSNs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_queue_dsns_total",
		Help: "Delivery status notifications, by outcome (queued, dropped, error, not_requested).",
	}, []string{"outcome"})

	// QueueReleased counts held messages an operator released.
	QueueReleased = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "postern_queue_released_total",
		Help: "Held messages released for delivery by an operator.",
	})
)

// RegisterMetrics registers the queue's metrics on reg, with every
// bounce reason and DSN outcome at 0 (so that alerts on their rate see
// them from the start).
func RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(QueueOldestSeconds, QueueRetries, QueueBounces, QueueDSNs, QueueReleased)
	for _, r := range []string{"permanent", "expired", "loop"} {
		QueueBounces.WithLabelValues(r)
	}
	for _, o := range []string{"queued", "dropped", "error", "not_requested"} {
		QueueDSNs.WithLabelValues(o)
	}
}
