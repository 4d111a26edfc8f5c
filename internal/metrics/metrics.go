// Package metrics declares the Prometheus metrics of the SMTP server
// (sessions, messages, the checks before the greeting, milters), local
// delivery and DKIM signing, and the registry that serves them.
// Metric declarations are the only package-level mutable state Postern
// allows (see DESIGN.md); the parts that can hold theirs per instance do
// so instead (admission, spool, tlsconf, delivery/policy,
// delivery/remote, queue, acme, autoconfig, pkcs11 and mailauth's
// checks: each a Metrics made by a NewMetrics on a passed registry),
// so that their tests count apart and run in parallel.
//
// Nothing is registered at init: cmd registers what the configuration
// turns on (RegisterCore always; RegisterDKIMSign, RegisterScreen,
// RegisterProxy and RegisterMilters with their features) on the
// registry it serves, so a feature that is off exports nothing, and a
// test may gather from a registry of its own.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the registry the HTTP server of serve (internal/server)
// serves on /metrics; serve registers on it, packages never do by themselves.
var Registry = prometheus.NewRegistry()

var (
	// Connections counts accepted TCP connections by listener name.
	Connections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_connections_total",
		Help: "TCP connections accepted, by listener.",
	}, []string{"listener"})

	// Sessions is the number of SMTP sessions open now, by listener.
	Sessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "postern_sessions",
		Help: "SMTP sessions open now, by listener.",
	}, []string{"listener"})

	// TLSHandshakes counts TLS handshakes by listener, TLS version
	// ("1.2", "1.3") and result ("ok", "error").
	TLSHandshakes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_tls_handshakes_total",
		Help: "TLS handshakes, by listener, version and result.",
	}, []string{"listener", "version", "result"})

	// AuthAttempts counts SASL exchanges by listener, mechanism and outcome
	// ("success", "failure", "throttled", "banned", "malformed",
	// "canceled", "limited", "error").
	AuthAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_auth_attempts_total",
		Help: "SASL authentication attempts, by listener, mechanism and outcome.",
	}, []string{"listener", "mechanism", "outcome"})

	// MessagesAccepted counts messages acknowledged with 250 after DATA.
	MessagesAccepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_messages_accepted_total",
		Help: "Messages accepted (250 after DATA), by listener.",
	}, []string{"listener"})

	// MessagesRejected counts refused commands and messages by listener and
	// a short reason label (for example "relay_denied", "bad_lf", "too_big").
	MessagesRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_rejections_total",
		Help: "Rejected commands and messages, by listener and reason.",
	}, []string{"listener", "reason"})

	// DataBytes is the message data sessions hold between DATA and the
	// spool's answer, in memory and in the spool's files ("in_flight"),
	// and the part of it in memory ("memory"), for all listeners
	// (limits.max_data_in_flight and max_data_in_memory cap them).
	DataBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "postern_data_bytes",
		Help: "Message data held by sessions between DATA and the spool's answer (in_flight), and the part in memory (memory).",
	}, []string{"where"})

	// LocalDeliveries counts local (Maildir) deliveries by outcome
	// ("delivered", "failed").
	LocalDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_local_deliveries_total",
		Help: "Local Maildir deliveries, by outcome.",
	}, []string{"outcome"})

	// DirectDeliveries counts the work of direct local delivery before
	// the 250 (delivery.Direct): "delivered", one per recipient written
	// to its mailbox (also counted in LocalDeliveries), and "spooled",
	// one per message whose mailbox write failed and that went to the
	// spool instead.
	DirectDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "postern_direct_deliveries_total",
		Help: "Direct local deliveries before the 250: recipients delivered, messages spooled after a failed mailbox write.",
	}, []string{"outcome"})
)

// RegisterCore registers on reg the Go runtime and process collectors
// and the metrics every server has, with the series alerts and
// dashboards rate() over set to 0 from the start: for each of listeners
// (names) the accepted messages and the spool errors
// (postern_rejections_total{reason="spool_error"} and "no_space"), and the local
// delivery outcomes.
func RegisterCore(reg prometheus.Registerer, listeners []string) {
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Connections, Sessions, TLSHandshakes, AuthAttempts,
		MessagesAccepted, MessagesRejected, DataBytes, BuildInfo,
		LocalDeliveries, DirectDeliveries,
	)
	for _, l := range listeners {
		Connections.WithLabelValues(l)
		MessagesAccepted.WithLabelValues(l)
		MessagesRejected.WithLabelValues(l, "spool_error")
		MessagesRejected.WithLabelValues(l, "no_space")
	}
	for _, o := range []string{"delivered", "deferred", "failed"} {
		LocalDeliveries.WithLabelValues(o)
	}
	for _, o := range []string{"delivered", "spooled"} {
		DirectDeliveries.WithLabelValues(o)
	}
	DataBytes.WithLabelValues("in_flight")
	DataBytes.WithLabelValues("memory")
}
