package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// ScreenResults counts the postscreen-style checks before the
	// greeting on mx listeners, by listener and result ("pass", "cached",
	// "pregreet", "dnsbl", "hangup").
	ScreenResults = CounterVec("postern_screen_total", "Checks before the greeting on mx listeners (greeting delay, DNSBL), by listener and result.", "listener", "result")

	// DNSBLHits counts DNSBL zones that listed a client, by zone.
	DNSBLHits = CounterVec("postern_dnsbl_hits_total", "Clients listed by a DNSBL zone, by zone.", "zone")

	// ProxyHeaderErrors counts connections from trusted proxies cut
	// because their PROXY protocol header was missing, bad or late, by
	// listener.
	ProxyHeaderErrors = CounterVec("postern_proxy_header_errors_total", "Connections from trusted proxies cut over a missing, bad or late PROXY protocol header, by listener.", "listener")
)

// RegisterScreen registers the checks before the greeting (a listener
// with greet_delay or dnsbl).
func RegisterScreen(reg prometheus.Registerer) {
	reg.MustRegister(ScreenResults, DNSBLHits)
}

// RegisterProxy registers the PROXY protocol's errors ([proxy] trusted).
func RegisterProxy(reg prometheus.Registerer) {
	reg.MustRegister(ProxyHeaderErrors)
}
