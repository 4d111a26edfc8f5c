package admission

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Gate's and the Limiter's metrics (GateOptions.Metrics,
// LimiterOptions.Metrics). They are registered on the registry given to
// NewMetrics, not at init, so that each Gate and Limiter of a test may
// count into a set of its own and tests may run in parallel.
type Metrics struct {
	// Refused counts connections the Gate refused at accept, by
	// listener and reason (the Reason constants).
	Refused *prometheus.CounterVec
	// HandshakesAvoided counts refusals at accept on listeners that do
	// TLS (at once on submissions, at STARTTLS on mx and submission):
	// the handshakes Postern did not spend on unwanted clients.
	HandshakesAvoided *prometheus.CounterVec
	// SendLimited counts messages and sessions over the send limits
	// (refused, or for messages of users whose policy is to hold, held),
	// by limit ("messages", "recipients", "sessions").
	SendLimited *prometheus.CounterVec
}

// NewMetrics returns the gate's and the send limits' metrics,
// registered on reg (nil registers them nowhere).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_admission_refused_total",
			Help: "Connections refused at accept, before any TLS byte, by listener and reason.",
		}, []string{"listener", "reason"}),
		HandshakesAvoided: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_handshakes_avoided_total",
			Help: "Connections refused before TLS on listeners that do TLS, by listener.",
		}, []string{"listener"}),
		SendLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_send_limited_total",
			Help: "Messages and sessions of authenticated users refused by send limits, by limit.",
		}, []string{"limit"}),
	}
	if reg != nil {
		reg.MustRegister(m.Refused, m.HandshakesAvoided, m.SendLimited)
	}
	return m
}

// AbuseMetrics are the abuse engine's metrics (AbuseOptions.Metrics);
// they exist only where [abuse] is enabled, so that a server without
// the engine exports none.
type AbuseMetrics struct {
	// Bans counts bans the engine put, by scope ("ip", "prefix",
	// "site").
	Bans *prometheus.CounterVec
	// Alerts counts auth-abuse alerts by kind ("bruteforce",
	// "stuffing", "distributed").
	Alerts *prometheus.CounterVec
}

// NewAbuseMetrics returns the abuse engine's metrics, registered on reg
// (nil registers them nowhere), with every ban scope and alert kind at
// 0.
func NewAbuseMetrics(reg prometheus.Registerer) *AbuseMetrics {
	m := &AbuseMetrics{
		Bans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_auth_bans_total",
			Help: "Bans put by the auth-abuse engine, by scope.",
		}, []string{"scope"}),
		Alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postern_auth_abuse_alerts_total",
			Help: "Auth-abuse alerts, by kind.",
		}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.Bans, m.Alerts)
	}
	for _, s := range []string{"ip", "prefix", "site"} {
		m.Bans.WithLabelValues(s)
	}
	for _, k := range []string{AlertBruteforce, AlertStuffing, AlertDistributed} {
		m.Alerts.WithLabelValues(k)
	}
	return m
}
