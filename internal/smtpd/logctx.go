package smtpd

import (
	"context"
	"log/slog"
)

// loggerKey is the context key of the session's logger.
type loggerKey struct{}

// SessionLogger returns the logger of the SMTP session whose context
// ctx is (the context a Filter, Spooler or Directory is called with):
// its events carry the listener and the session id, as every session
// event does. It returns nil for any other context.
func SessionLogger(ctx context.Context) *slog.Logger {
	l, _ := ctx.Value(loggerKey{}).(*slog.Logger)
	return l
}

// withLogger returns ctx carrying the session's logger l.
func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}
