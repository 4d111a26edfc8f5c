package autoconfig

import "github.com/prometheus/client_golang/prometheus"

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
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_autoconfig_requests_total",
			Help: "Mail client autoconfiguration requests, by format and result.",
		}, []string{"format", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests)
	}
	return m
}
