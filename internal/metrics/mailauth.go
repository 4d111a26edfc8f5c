package metrics

import "github.com/prometheus/client_golang/prometheus"

// DKIMSignatures counts DKIM signatures made on submitted mail by
// algorithm ("ed25519-sha256", "rsa-sha256"). The results of the checks
// on received mail are a Checker's own (mailauth.CheckMetrics).
var DKIMSignatures = CounterVec("postern_dkim_signatures_total", "DKIM signatures made on submitted mail, by algorithm.", "algorithm")

// RegisterDKIMSign registers the DKIM signatures made on submission
// ([mail_auth] sign, with a key).
func RegisterDKIMSign(reg prometheus.Registerer) {
	reg.MustRegister(DKIMSignatures)
}
