package mailauth

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

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
		SPF:           metrics.CounterVec("postern_spf_results_total", "SPF checks on received mail, by identity and result.", "identity", "result"),
		DKIM:          metrics.CounterVec("postern_dkim_results_total", "DKIM signatures verified on received mail, by result.", "result"),
		DMARC:         metrics.CounterVec("postern_dmarc_results_total", "DMARC evaluations on received mail, by result.", "result"),
		PolicyActions: metrics.CounterVec("postern_mailauth_policy_actions_total", "Received messages refused, quarantined or only reported by authentication policy, by action.", "action"),
	}
	metrics.Register(reg, m.SPF, m.DKIM, m.DMARC, m.PolicyActions)
	metrics.Zero(m.DMARC, "pass", "fail", "none", "temperror", "permerror")
	metrics.Zero(m.PolicyActions, "reject", "quarantine", "report_only", "spoof_reject", "tempfail")
	return m
}
