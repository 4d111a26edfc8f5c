package policy

import "github.com/prometheus/client_golang/prometheus"

var (
	// plans counts Plan calls by result: "ok", "temporary", "permanent".
	plans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_policy_plans_total",
		Help: "Delivery plans made, by result (ok, temporary, permanent).",
	}, []string{"result"})

	// stsFetches counts MTA-STS policy fetches by result: "ok", "error".
	stsFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_policy_mtasts_fetches_total",
		Help: "MTA-STS policy fetches over HTTPS, by result (ok, error).",
	}, []string{"result"})

	// stsTestingFailures counts what an MTA-STS policy in testing mode
	// would have refused in enforce mode, by reason: "mx" (a host the
	// policy does not list, per plan), "starttls" and "certificate" (per
	// delivery attempt on a session; see Host.Audit).
	stsTestingFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_policy_mtasts_testing_failures_total",
		Help: "What MTA-STS policies in testing mode would have refused in enforce mode, by reason (mx, starttls, certificate); delivered anyway.",
	}, []string{"reason"})
)

// RegisterMetrics registers the delivery policy's metrics on reg, with
// every plan result at 0.
func RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(plans, stsFetches, stsTestingFailures)
	for _, r := range []string{"ok", "temporary", "permanent"} {
		plans.WithLabelValues(r)
	}
}
