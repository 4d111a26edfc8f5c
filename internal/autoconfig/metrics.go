package autoconfig

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metrics are a Handler's metrics (Options.Metrics). They are
// registered on the registry given to NewMetrics, not at init, so that
// each Handler of a test counts into a set of its own and tests may run
// in parallel.
type Metrics struct {
	// Requests counts the requests by format ("mozilla", "autodiscover",
	// "apple") and result ("ok", "not_found", "bad_request",
	// "bad_method", "too_large").
	Requests *prometheus.CounterVec
}

// NewMetrics returns the autoconfiguration metrics, registered on reg
// (nil registers them nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: metrics.CounterVec("postern_autoconfig_requests_total", "Mail client autoconfiguration requests, by format and result.", "format", "result"),
	}
	metrics.Register(reg, m.Requests)
	return m
}
