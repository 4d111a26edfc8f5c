package remote

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metric declarations, the only package-level mutable state (DESIGN.md).
var (
	// deliveriesTotal counts per-recipient outcomes ("delivered",
	// "deferred", "bounced") by the TLS of the session ("plain",
	// "starttls", "mta-sts", "dane", "smarthost", or "none" when no
	// session got that far).
	deliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_remote_deliveries_total",
		Help: "Outbound SMTP recipient outcomes, by outcome and TLS mode.",
	}, []string{"outcome", "tls"})

	// poolTotal counts session requests answered by a pooled session
	// ("hit") or a new connection ("miss"), and pooled sessions ended
	// because they did not meet the next message's TLS requirement
	// ("refused").
	poolTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_remote_pool_total",
		Help: "Outbound SMTP sessions taken from the pool (hit), dialed (miss), or pooled but refused for the next message's TLS requirement (refused).",
	}, []string{"result"})

	// deliverySeconds observes the duration of each Deliver call.
	deliverySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "postern_remote_delivery_seconds",
		Help:    "Duration of one outbound delivery of a message to one domain, all hosts tried.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
	})
)

func init() {
	metrics.Registry.MustRegister(deliveriesTotal, poolTotal, deliverySeconds)
}
