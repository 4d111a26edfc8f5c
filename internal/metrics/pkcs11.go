package metrics

import "github.com/prometheus/client_golang/prometheus"

// PKCS11Operations counts the signatures asked of keys in PKCS#11
// tokens (TLS handshakes, DKIM), by key (its URI, without PIN file or
// module) and result: "ok", "error" (the token refused or failed),
// "timeout" (no answer in time) or "busy" (too many operations already
// waiting for the token). Anything but "ok" fails the handshake or the
// signature.
var PKCS11Operations = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "postern_pkcs11_operations_total",
	Help: "Signatures asked of keys in PKCS#11 tokens, by key and result (ok, error, timeout, busy).",
}, []string{"key", "result"})

// RegisterPKCS11 registers PKCS11Operations (a key in a token).
func RegisterPKCS11(reg prometheus.Registerer) {
	reg.MustRegister(PKCS11Operations)
}
