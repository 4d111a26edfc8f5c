package policy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are an Engine's metrics (Options.Metrics). They are registered
// on the registry given to NewMetrics, not at init, so that each Engine
// of a test counts into a set of its own and tests may run in parallel.
type Metrics struct {
	// Plans counts Plan calls by result: "ok", "temporary",
	// "permanent".
	Plans *prometheus.CounterVec
	// STSFetches counts MTA-STS policy fetches by result: "ok",
	// "error".
	STSFetches *prometheus.CounterVec
	// STSTestingFailures counts what an MTA-STS policy in testing mode
	// would have refused in enforce mode, by reason: "mx" (a host the
	// policy does not list, per plan), "starttls" and "certificate"
	// (per delivery attempt on a session; see Host.Audit).
	STSTestingFailures *prometheus.CounterVec
}

// NewMetrics returns the delivery policy's metrics, registered on reg
// (nil registers them nowhere), with every plan result at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Plans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_policy_plans_total",
			Help: "Delivery plans made, by result (ok, temporary, permanent).",
		}, []string{"result"}),
		STSFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_policy_mtasts_fetches_total",
			Help: "MTA-STS policy fetches over HTTPS, by result (ok, error).",
		}, []string{"result"}),
		STSTestingFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_policy_mtasts_testing_failures_total",
			Help: "What MTA-STS policies in testing mode would have refused in enforce mode, by reason (mx, starttls, certificate); delivered anyway.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Plans, m.STSFetches, m.STSTestingFailures)
	}
	for _, r := range []string{"ok", "temporary", "permanent"} {
		m.Plans.WithLabelValues(r)
	}
	return m
}
