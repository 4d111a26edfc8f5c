package admission

import (
	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
)

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
		Refused:           metrics.CounterVec("postern_admission_refused_total", "Connections refused at accept, before any TLS byte, by listener and reason.", "listener", "reason"),
		HandshakesAvoided: metrics.CounterVec("postern_handshakes_avoided_total", "Connections refused before TLS on listeners that do TLS, by listener.", "listener"),
		SendLimited:       metrics.CounterVec("postern_send_limited_total", "Messages and sessions of authenticated users refused by send limits, by limit.", "limit"),
	}
	metrics.Register(reg, m.Refused, m.HandshakesAvoided, m.SendLimited)
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
		Bans:   metrics.CounterVec("postern_auth_bans_total", "Bans put by the auth-abuse engine, by scope.", "scope"),
		Alerts: metrics.CounterVec("postern_auth_abuse_alerts_total", "Auth-abuse alerts, by kind.", "kind"),
	}
	metrics.Register(reg, m.Bans, m.Alerts)
	metrics.Zero(m.Bans, "ip", "prefix", "site")
	metrics.Zero(m.Alerts, AlertBruteforce, AlertStuffing, AlertDistributed)
	return m
}
