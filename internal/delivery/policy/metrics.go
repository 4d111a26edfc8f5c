package policy

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

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
		Plans:              metrics.CounterVec("postern_policy_plans_total", "Delivery plans made, by result (ok, temporary, permanent).", "result"),
		STSFetches:         metrics.CounterVec("postern_policy_mtasts_fetches_total", "MTA-STS policy fetches over HTTPS, by result (ok, error).", "result"),
		STSTestingFailures: metrics.CounterVec("postern_policy_mtasts_testing_failures_total", "What MTA-STS policies in testing mode would have refused in enforce mode, by reason (mx, starttls, certificate); delivered anyway.", "reason"),
	}
	metrics.Register(reg, m.Plans, m.STSFetches, m.STSTestingFailures)
	metrics.Zero(m.Plans, "ok", "temporary", "permanent")
	return m
}
