package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// ACMEAttempts counts attempts to obtain or renew the ACME
	// certificate, by result ("success", "failure").
	ACMEAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_acme_attempts_total",
		Help: "Attempts to obtain or renew the ACME certificate, by result.",
	}, []string{"result"})

	// ACMEFailuresInARow is the number of failed attempts since the last
	// success: an alert when above 0 for long.
	ACMEFailuresInARow = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "postern_acme_consecutive_failures",
		Help: "Failed attempts to obtain or renew the ACME certificate since the last success.",
	})

	// ACMECertificateExpiry is the expiry of the current ACME
	// certificate, in seconds since the Unix epoch.
	ACMECertificateExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "postern_acme_certificate_expiry_seconds",
		Help: "NotAfter of the current ACME certificate, in seconds since the Unix epoch.",
	})
)

func init() {
	Registry.MustRegister(ACMEAttempts, ACMEFailuresInARow, ACMECertificateExpiry)
}
