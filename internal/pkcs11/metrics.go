package pkcs11

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metrics are the metrics of Tokens and of their keys
// (Options.Metrics). They are registered on the registry given to
// NewMetrics, not at init, so that each Tokens of a test counts into a
// set of its own and tests may run in parallel.
type Metrics struct {
	// Operations counts the signatures asked of keys, by key (its URI)
	// and result ("ok", "error", "timeout", "busy").
	Operations *prometheus.CounterVec
}

// NewMetrics returns the PKCS#11 metrics, registered on reg (nil
// registers them nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Operations: metrics.CounterVec("postern_pkcs11_operations_total", "Signatures asked of keys in PKCS#11 tokens, by key and result (ok, error, timeout, busy).", "key", "result"),
	}
	metrics.Register(reg, m.Operations)
	return m
}
