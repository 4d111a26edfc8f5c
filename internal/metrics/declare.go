package metrics

import "github.com/prometheus/client_golang/prometheus"

// The constructors below make a metric from its name, help text and
// labels (or buckets) in one line, for this package's declarations and
// the packages' NewMetrics; Register registers a package's set.

// Counter returns a counter named name, with the help text help.
func Counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// CounterVec returns a counter named name, with the help text help,
// partitioned by labels.
func CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
}

// Gauge returns a gauge named name, with the help text help.
func Gauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// GaugeVec returns a gauge named name, with the help text help,
// partitioned by labels.
func GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// Histogram returns a histogram named name, with the help text help and
// the upper bounds buckets.
func Histogram(name, help string, buckets []float64) prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
}

// Register registers cs on reg; a nil reg registers them nowhere (a set
// of metrics of its own, as a test makes). Like MustRegister, it panics
// when one is already registered.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg != nil {
		reg.MustRegister(cs...)
	}
}

// Zero makes the series of v for each of values (v has one label) at 0,
// so that alerts and dashboards that rate() over them see them from the
// start.
func Zero(v *prometheus.CounterVec, values ...string) {
	for _, x := range values {
		v.WithLabelValues(x)
	}
}
