package tlsconf

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

// Metrics are the metrics of a Certs (Options.Metrics). They are
// registered on the registry given to NewMetrics, not at init, so that
// each Certs of a test counts into a set of its own and tests may run in
// parallel.
type Metrics struct {
	// CertificateExpiry is the gauge
	// postern_tls_certificate_expiry_timestamp_seconds: the NotAfter of
	// each served certificate's leaf, in seconds since the Unix epoch
	// (Prometheus's convention for timestamps: an alert subtracts
	// time()), labelled by name (the certificate file, or the name given
	// to Certs.Set) and serial (hexadecimal). Certs updates it at open,
	// at each reload or Set, and at each CheckExpiry; a replaced
	// certificate's series is removed.
	CertificateExpiry *prometheus.GaugeVec
}

// NewMetrics returns the certificates' metrics, registered on reg (nil
// registers them nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		CertificateExpiry: metrics.GaugeVec("postern_tls_certificate_expiry_timestamp_seconds", "NotAfter of each served TLS certificate, in seconds since the Unix epoch, by certificate name and serial.", "name", "serial"),
	}
	metrics.Register(reg, m.CertificateExpiry)
	return m
}

// ExpiryWarnings are the times before expiry at which Certs logs a WARN
// event, once per certificate and threshold: 30 and 7 days.
func ExpiryWarnings() []time.Duration {
	return []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour}
}

// DefaultExpiryInterval is how often RunExpiry checks by default.
const DefaultExpiryInterval = time.Hour

// expiryState remembers the warnings given and the gauge labels set.
type expiryState struct {
	warned map[string]bool    // serial + "/" + threshold
	labels map[[2]string]bool // gauge label pairs set by this Certs
}

// CheckExpiry updates the expiry gauge for every served certificate and
// logs a WARN event when one has crossed a threshold of ExpiryWarnings
// (30 and 7 days before NotAfter) not yet warned about: only the nearest
// threshold crossed is logged, and each only once per certificate serial.
// Certs calls it at open, reload and Set; RunExpiry calls it on a timer.
func (c *Certs) CheckExpiry() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkExpiryLocked()
}

func (c *Certs) checkExpiryLocked() {
	if c.plain {
		return
	}
	st := &c.expiry
	if st.warned == nil {
		st.warned, st.labels = map[string]bool{}, map[[2]string]bool{}
	}
	now := c.now()
	seen := map[[2]string]bool{}
	s := c.cur.Load()
	if s == nil {
		return
	}
	for _, n := range s.all {
		leaf := n.cert.Leaf
		serial := serialOf(leaf)
		lbl := [2]string{n.name, serial}
		left := leaf.NotAfter.Sub(now)
		c.m.CertificateExpiry.WithLabelValues(lbl[0], lbl[1]).Set(float64(leaf.NotAfter.Unix()))
		seen[lbl] = true
		st.labels[lbl] = true
		crossed := time.Duration(-1)
		for _, th := range ExpiryWarnings() {
			key := fmt.Sprintf("%s/%s", serial, th)
			if left <= th && !st.warned[key] {
				st.warned[key] = true
				if crossed < 0 || th < crossed {
					crossed = th
				}
			}
		}
		if crossed >= 0 {
			c.log.Warn("TLS certificate expires soon", "certificate", n.name, "subject", subjectName(leaf),
				"serial", serial, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
				"days_left", int(left.Hours()/24), "threshold_days", int(crossed.Hours()/24))
		}
	}
	for lbl := range st.labels {
		if !seen[lbl] {
			c.m.CertificateExpiry.DeleteLabelValues(lbl[0], lbl[1])
			delete(st.labels, lbl)
		}
	}
}

// RunExpiry calls CheckExpiry every interval (DefaultExpiryInterval when
// zero) until ctx ends, so that the gauge stays current and the 30- and
// 7-day warnings come even without a reload.
func (c *Certs) RunExpiry(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultExpiryInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.CheckExpiry()
		}
	}
}
