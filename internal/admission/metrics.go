package admission

import "github.com/prometheus/client_golang/prometheus"

var (
	// AdmissionRefused counts connections the Gate refused at accept, by
	// listener and reason (the Reason constants).
	AdmissionRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_admission_refused_total",
		Help: "Connections refused at accept, before any TLS byte, by listener and reason.",
	}, []string{"listener", "reason"})

	// HandshakesAvoided counts refusals at accept on listeners that do
	// TLS (at once on submissions, at STARTTLS on mx and submission): the
	// handshakes Postern did not spend on unwanted clients.
	HandshakesAvoided = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_handshakes_avoided_total",
		Help: "Connections refused before TLS on listeners that do TLS, by listener.",
	}, []string{"listener"})

	// AuthBans counts bans the abuse engine put, by scope ("ip",
	// "prefix", "site").
	AuthBans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_auth_bans_total",
		Help: "Bans put by the auth-abuse engine, by scope.",
	}, []string{"scope"})

	// AuthAlerts counts auth-abuse alerts by kind ("bruteforce",
	// "stuffing", "distributed").
	AuthAlerts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_auth_abuse_alerts_total",
		Help: "Auth-abuse alerts, by kind.",
	}, []string{"kind"})

	// SendLimited counts messages and sessions over the send limits
	// (refused, or for messages of users whose policy is to hold, held),
	// by limit ("messages", "recipients", "sessions").
	SendLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_send_limited_total",
		Help: "Messages and sessions of authenticated users refused by send limits, by limit.",
	}, []string{"limit"})
)

// RegisterMetrics registers the gate's and the send limits' metrics on
// reg.
func RegisterMetrics(reg prometheus.Registerer) {
	reg.MustRegister(AdmissionRefused, HandshakesAvoided, SendLimited)
}

// RegisterAbuseMetrics registers the abuse engine's metrics on reg
// ([abuse] enabled), with every ban scope and alert kind at 0.
func RegisterAbuseMetrics(reg prometheus.Registerer) {
	reg.MustRegister(AuthBans, AuthAlerts)
	for _, s := range []string{"ip", "prefix", "site"} {
		AuthBans.WithLabelValues(s)
	}
	for _, k := range []string{AlertBruteforce, AlertStuffing, AlertDistributed} {
		AuthAlerts.WithLabelValues(k)
	}
}
