package remote

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metrics are the outbound delivery metrics. They are registered on the
// registry given to NewMetrics, not at init, so that tests may run in
// parallel, each Deliverer counting into its own.
type Metrics struct {
	// deliveries counts per-recipient outcomes ("delivered",
	// "deferred", "bounced") by the TLS of the session ("plain",
	// "starttls", "mta-sts", "dane", "smarthost", or "none" when no
	// session got that far).
	deliveries *prometheus.CounterVec
	// pool counts session requests answered by a pooled session
	// ("hit") or a new connection ("miss"), and pooled sessions ended
	// because they did not meet the next message's TLS requirement
	// ("refused").
	pool *prometheus.CounterVec
	// seconds observes the duration of each Deliver call.
	seconds prometheus.Histogram
}

// NewMetrics returns the delivery metrics, registered on reg (nil
// registers them nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: metrics.CounterVec("postern_remote_deliveries_total", "Outbound SMTP recipient outcomes, by outcome and TLS mode.", "outcome", "tls"),
		pool:       metrics.CounterVec("postern_remote_pool_total", "Outbound SMTP sessions taken from the pool (hit), dialed (miss), or pooled but refused for the next message's TLS requirement (refused).", "result"),
		seconds:    metrics.Histogram("postern_remote_delivery_seconds", "Duration of one outbound delivery of a message to one domain, all hosts tried.", prometheus.ExponentialBuckets(0.005, 2, 16)),
	}
	metrics.Register(reg, m.deliveries, m.pool, m.seconds)
	return m
}
