package metrics

import "github.com/prometheus/client_golang/prometheus"

// AutoconfigRequests counts the requests of the [autoconfig] listener by
// format ("mozilla", "autodiscover", "apple", "unknown" for another
// path) and result ("ok", "not_found", "bad_request", "bad_method",
// "too_large").
var AutoconfigRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "postern_autoconfig_requests_total",
	Help: "Mail client autoconfiguration requests, by format and result.",
}, []string{"format", "result"})

// RegisterAutoconfig registers AutoconfigRequests ([autoconfig]).
func RegisterAutoconfig(reg prometheus.Registerer) {
	reg.MustRegister(AutoconfigRequests)
}
