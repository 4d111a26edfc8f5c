package mailauth

import "github.com/prometheus/client_golang/prometheus"

// CheckMetrics are a Checker's metrics (CheckerOptions.Metrics). They
// are registered on the registry given to NewCheckMetrics, not at init,
// so that each Checker of a test counts into a set of its own and tests
// may run in parallel.
type CheckMetrics struct {
	// SPF counts SPF checks on received mail by identity ("mailfrom",
	// "helo") and result (RFC 7208 §2.6: "pass", "fail", "softfail",
	// "neutral", "none", "temperror", "permerror").
	SPF *prometheus.CounterVec
	// DKIM counts verified DKIM signatures on received mail by result
	// ("pass", "fail", "policy", "neutral", "temperror", "permerror";
	// "none" for a message without signature).
	DKIM *prometheus.CounterVec
	// DMARC counts DMARC evaluations on received mail by result
	// ("pass", "fail", "none", "temperror", "permerror").
	DMARC *prometheus.CounterVec
	// PolicyActions counts received messages acted on by policy: action
	// "reject" (DMARC p=reject), "quarantine", "report_only" (a reject
	// or quarantine not enforced), "spoof_reject" (a local domain
	// without SPF or DKIM pass), "tempfail".
	PolicyActions *prometheus.CounterVec
}

// NewCheckMetrics returns the metrics of mail authentication on
// received mail, registered on reg (nil registers them nowhere), with
// every DMARC result and policy action at 0.
func NewCheckMetrics(reg prometheus.Registerer) *CheckMetrics {
	m := &CheckMetrics{
		SPF: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_spf_results_total",
			Help: "SPF checks on received mail, by identity and result.",
		}, []string{"identity", "result"}),
		DKIM: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_dkim_results_total",
			Help: "DKIM signatures verified on received mail, by result.",
		}, []string{"result"}),
		DMARC: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_dmarc_results_total",
			Help: "DMARC evaluations on received mail, by result.",
		}, []string{"result"}),
		PolicyActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_mailauth_policy_actions_total",
			Help: "Received messages refused, quarantined or only reported by authentication policy, by action.",
		}, []string{"action"}),
	}
	if reg != nil {
		reg.MustRegister(m.SPF, m.DKIM, m.DMARC, m.PolicyActions)
	}
	for _, r := range []string{"pass", "fail", "none", "temperror", "permerror"} {
		m.DMARC.WithLabelValues(r)
	}
	for _, a := range []string{"reject", "quarantine", "report_only", "spoof_reject", "tempfail"} {
		m.PolicyActions.WithLabelValues(a)
	}
	return m
}
