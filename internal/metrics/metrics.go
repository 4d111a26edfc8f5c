// Package metrics declares the Prometheus metrics of the SMTP server
// (sessions, messages, the checks before the greeting, milters), local
// delivery and DKIM signing, and the registry that serves them.
// Metric declarations are the only package-level mutable state Postern
// allows (see DESIGN.md); the parts that can hold theirs per instance do
// so instead (admission, spool, tlsconf, delivery/policy,
// delivery/remote, queue, acme, autoconfig, pkcs11 and mailauth's
// checks: each a Metrics made by a NewMetrics on a passed registry),
// so that their tests count apart and run in parallel. They declare
// them with this package's constructors (CounterVec, GaugeVec,
// Histogram, ...), register them with Register, which takes a nil
// registry as "nowhere", and start series at 0 with Zero.
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
	Connections = CounterVec("postern_connections_total", "TCP connections accepted, by listener.", "listener")

	// Sessions is the number of SMTP sessions open now, by listener.
	Sessions = GaugeVec("postern_sessions", "SMTP sessions open now, by listener.", "listener")

	// TLSHandshakes counts TLS handshakes by listener, TLS version
	// ("1.2", "1.3") and result ("ok", "error").
	TLSHandshakes = CounterVec("postern_tls_handshakes_total", "TLS handshakes, by listener, version and result.", "listener", "version", "result")

	// AuthAttempts counts SASL exchanges by listener, mechanism and outcome
	// ("success", "failure", "throttled", "banned", "malformed",
	// "canceled", "limited", "error").
	AuthAttempts = CounterVec("postern_auth_attempts_total", "SASL authentication attempts, by listener, mechanism and outcome.", "listener", "mechanism", "outcome")

	// MessagesAccepted counts messages acknowledged with 250 after DATA.
	MessagesAccepted = CounterVec("postern_messages_accepted_total", "Messages accepted (250 after DATA), by listener.", "listener")

	// MessagesRejected counts refused commands and messages by listener and
	// a short reason label (for example "relay_denied", "bad_lf", "too_big").
	MessagesRejected = CounterVec("postern_rejections_total", "Rejected commands and messages, by listener and reason.", "listener", "reason")

	// DataBytes is the message data sessions hold between DATA and the
	// spool's answer, in memory and in the spool's files ("in_flight"),
	// and the part of it in memory ("memory"), for all listeners
	// (limits.max_data_in_flight and max_data_in_memory cap them).
	DataBytes = GaugeVec("postern_data_bytes", "Message data held by sessions between DATA and the spool's answer (in_flight), and the part in memory (memory).", "where")

	// LocalDeliveries counts local (Maildir) deliveries by outcome
	// ("delivered", "failed").
	LocalDeliveries = CounterVec("postern_local_deliveries_total", "Local Maildir deliveries, by outcome.", "outcome")

	// DirectDeliveries counts the work of direct local delivery before
	// the 250 (delivery.Direct): "delivered", one per recipient written
	// to its mailbox (also counted in LocalDeliveries), and "spooled",
	// one per message whose mailbox write failed and that went to the
	// spool instead.
	DirectDeliveries = CounterVec("postern_direct_deliveries_total", "Direct local deliveries before the 250: recipients delivered, messages spooled after a failed mailbox write.", "outcome")
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
	Zero(LocalDeliveries, "delivered", "deferred", "failed")
	Zero(DirectDeliveries, "delivered", "spooled")
	DataBytes.WithLabelValues("in_flight")
	DataBytes.WithLabelValues("memory")
}
