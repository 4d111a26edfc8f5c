package spool

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metrics are a Spool's metrics (Options.Metrics). They are registered
// on the registry given to NewMetrics, not at init, so that each Spool
// of a test counts into a set of its own and tests may run in parallel.
// A Spool opened again (after a graceful restart that failed) takes the
// same set: Open sets the gauges from what it recovers.
type Metrics struct {
	// Messages is the number of messages in the spool with recipients
	// not yet done (the queue depth).
	Messages prometheus.Gauge
	// Held is the number of live messages held for review (a user over
	// a send limit whose policy is to hold): in the spool, never
	// delivered until released, not counted in the queue's age.
	Held prometheus.Gauge
	// FsyncSeconds observes the duration of each group-commit fsync.
	FsyncSeconds prometheus.Histogram
	// BatchMessages observes how many messages each group commit made
	// durable with one fsync.
	BatchMessages prometheus.Histogram
	// BlobSeconds is how long making a large message durable in its own
	// file takes (its record appended, fdatasync, link, directory
	// fsync), in the session's goroutine.
	BlobSeconds prometheus.Histogram
}

// NewMetrics returns the spool's metrics, registered on reg (nil
// registers them nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages:      metrics.Gauge("postern_spool_messages", "Messages in the spool with at least one recipient not yet done."),
		Held:          metrics.Gauge("postern_queue_held", "Messages held for review (not delivered until released or deleted)."),
		FsyncSeconds:  metrics.Histogram("postern_spool_fsync_seconds", "Duration of each spool group-commit fsync (file and, when needed, directory).", prometheus.ExponentialBuckets(0.0001, 2, 16)),
		BatchMessages: metrics.Histogram("postern_spool_batch_messages", "Messages made durable by one spool group commit.", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}),
		BlobSeconds:   metrics.Histogram("postern_spool_blob_seconds", "Time to make a large message durable in a file of its own.", prometheus.ExponentialBuckets(0.0005, 2, 14)),
	}
	metrics.Register(reg, m.Messages, m.Held, m.FsyncSeconds, m.BatchMessages, m.BlobSeconds)
	return m
}
