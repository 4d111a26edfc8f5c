package main

import (
	"log/slog"
	"math"
)

// durationSeconds is the log handlers' ReplaceAttr: every duration is
// written as seconds, a decimal number rounded to the microsecond
// ("duration":0.133 in JSON, duration=0.133 in text), in both formats
// and for every key (duration, delay, delay_*, window, deadline...).
// slog's JSON handler would write integer nanoseconds, its text
// handler Go's "133ms": one form keeps a log collector's parsing and
// arithmetic simple, and seconds are what Postfix's delay= uses.
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		s := a.Value.Duration().Seconds()
		a.Value = slog.Float64Value(math.Round(s*1e6) / 1e6)
	}
	return a
}
