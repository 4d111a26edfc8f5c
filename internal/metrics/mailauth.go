package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// SPFResults counts SPF checks on received mail by identity
	// ("mailfrom", "helo") and result (RFC 7208 §2.6: "pass", "fail",
	// "softfail", "neutral", "none", "temperror", "permerror").
	SPFResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_spf_results_total",
		Help: "SPF checks on received mail, by identity and result.",
	}, []string{"identity", "result"})

	// DKIMResults counts verified DKIM signatures on received mail by
	// result ("pass", "fail", "policy", "neutral", "temperror",
	// "permerror"; "none" for a message without signature).
	DKIMResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_dkim_results_total",
		Help: "DKIM signatures verified on received mail, by result.",
	}, []string{"result"})

	// DMARCResults counts DMARC evaluations on received mail by result
	// ("pass", "fail", "none", "temperror", "permerror").
	DMARCResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_dmarc_results_total",
		Help: "DMARC evaluations on received mail, by result.",
	}, []string{"result"})

	// AuthPolicyActions counts received messages acted on by policy:
	// action "reject" (DMARC p=reject), "quarantine", "report_only" (a
	// reject or quarantine not enforced), "spoof_reject" (a local domain
	// without SPF or DKIM pass), "tempfail".
	AuthPolicyActions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_mailauth_policy_actions_total",
		Help: "Received messages refused, quarantined or only reported by authentication policy, by action.",
	}, []string{"action"})

	// DKIMSignatures counts DKIM signatures made on submitted mail by
	// algorithm ("ed25519-sha256", "rsa-sha256").
	DKIMSignatures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_dkim_signatures_total",
		Help: "DKIM signatures made on submitted mail, by algorithm.",
	}, []string{"algorithm"})
)

// RegisterMailAuthCheck registers the results of mail authentication on
// port 25 ([mail_auth] check), with the DMARC results and policy actions
// at 0.
func RegisterMailAuthCheck(reg prometheus.Registerer) {
	reg.MustRegister(SPFResults, DKIMResults, DMARCResults, AuthPolicyActions)
	for _, r := range []string{"pass", "fail", "none", "temperror", "permerror"} {
		DMARCResults.WithLabelValues(r)
	}
	for _, a := range []string{"reject", "quarantine", "report_only", "spoof_reject", "tempfail"} {
		AuthPolicyActions.WithLabelValues(a)
	}
}

// RegisterDKIMSign registers the DKIM signatures made on submission
// ([mail_auth] sign, with a key).
func RegisterDKIMSign(reg prometheus.Registerer) {
	reg.MustRegister(DKIMSignatures)
}
