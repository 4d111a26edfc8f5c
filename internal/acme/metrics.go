package acme

import (
	"crypto/tls"

	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metrics are the ACME metrics. They exist only where ACME is on: cmd
// makes them (NewMetrics) when [acme] is configured, so a server
// without ACME exports none, and no alert on them fires for nothing.
type Metrics struct {
	// attempts counts attempts to obtain or renew the certificate, by
	// result ("success", "failure").
	attempts *prometheus.CounterVec
	// failures is the number of failed attempts since the last
	// success: an alert when above 0 for long.
	failures prometheus.Gauge
	// expiry is the NotAfter of the current certificate, Unix seconds,
	// by name (the first host name); absent until there is one.
	expiry *prometheus.GaugeVec
}

// NewMetrics returns the ACME metrics, registered on reg (nil
// registers them nowhere), with both results of attempts at 0.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: metrics.CounterVec("postern_acme_attempts_total", "Attempts to obtain or renew the ACME certificate, by result.", "result"),
		failures: metrics.Gauge("postern_acme_consecutive_failures", "Failed attempts to obtain or renew the ACME certificate since the last success."),
		expiry:   metrics.GaugeVec("postern_acme_certificate_expiry_timestamp_seconds", "NotAfter of the current ACME certificate, in seconds since the Unix epoch, by name; absent before the first certificate.", "name"),
	}
	metrics.Zero(m.attempts, "success", "failure")
	metrics.Register(reg, m.attempts, m.failures, m.expiry)
	return m
}

// setExpiry shows the NotAfter of c, the current certificate.
func (m *Manager) setExpiry(c *tls.Certificate) {
	if c != nil && c.Leaf != nil {
		m.o.Metrics.expiry.WithLabelValues(m.o.Hostnames[0]).Set(float64(c.Leaf.NotAfter.Unix()))
	}
}
