package spool

import "github.com/prometheus/client_golang/prometheus"

// The spool's metrics, registered by RegisterMetrics; the spool also
// keeps metrics.SpoolMessages (the queue depth). Metric declarations are
// the only package-level mutable state (DESIGN.md).
var (
	// QueueHeld is the number of live messages held for review (a user
	// over a send limit whose policy is to hold): in the spool, never
	// delivered until released, not counted in the queue's age.
	QueueHeld = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "postern_queue_held",
		Help: "Messages held for review (not delivered until released or deleted).",
	})

	// blobSeconds is how long making a large message durable in its own
	// file takes (its record appended, fdatasync, link, directory fsync),
	// in the session's goroutine.
	blobSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "postern_spool_blob_seconds",
		Help:    "Time to make a large message durable in a file of its own.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
)

// RegisterMetrics registers the spool's metrics on reg.
func RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(QueueHeld, blobSeconds)
}
