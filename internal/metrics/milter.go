package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	// MilterErrors counts milter failures by listener, milter, stage
	// ("negotiate", "connect", "helo", "mail", "rcpt", "data", "header",
	// "body", "eom") and error ("unavailable", "timeout", "protocol",
	// "io"); each is followed by the milter's default action.
	MilterErrors = CounterVec("postern_milter_errors_total", "Milter failures (down, too slow, broken), by listener, milter, stage and error.", "listener", "milter", "stage", "error")

	// MilterDefaultActions counts the default actions taken for failed
	// milters, by listener, milter and action ("tempfail", "accept").
	MilterDefaultActions = CounterVec("postern_milter_default_actions_total", "Default actions taken because a milter failed, by listener, milter and action.", "listener", "milter", "action")

	// MilterVerdicts counts what milters decided other than continue, by
	// listener, milter, stage and verdict ("accept", "reject",
	// "tempfail", "discard", "quarantine").
	MilterVerdicts = CounterVec("postern_milter_verdicts_total", "Milter decisions other than continue, by listener, milter, stage and verdict.", "listener", "milter", "stage", "verdict")
)

// RegisterMilters registers the milters' metrics ([[milter]]). Each of
// defaults is a listener, one of its milters and that milter's default
// action: that count starts at 0, so that an alert on its rate sees the
// first one.
func RegisterMilters(reg prometheus.Registerer, defaults [][3]string) {
	reg.MustRegister(MilterErrors, MilterDefaultActions, MilterVerdicts)
	for _, d := range defaults {
		MilterDefaultActions.WithLabelValues(d[0], d[1], d[2])
	}
}
