package main

import (
	"fmt"
	"log/slog"

	"postern/internal/config"
	"postern/internal/smtpd"
)

// newTrace returns the protocol trace of [log] trace, which every SMTP
// listener shares and reloadTrace updates.
func newTrace(cfg *config.Config) (*smtpd.Trace, error) {
	l, err := smtpd.ParseTraceList(cfg.Log.Trace)
	if err != nil {
		return nil, fmt.Errorf("log.trace: %w", err)
	}
	t := &smtpd.Trace{}
	t.Set(l)
	return t, nil
}

// reloadTrace reads the configuration again (load) and makes its [log]
// trace list the one new sessions use; on any error the list in use is
// kept. It is the one setting a reload takes from the configuration
// file so far: certificates and users are reloaded on their own.
func reloadTrace(log *slog.Logger, load func() (*config.Config, error), t *smtpd.Trace) error {
	cfg, err := load()
	if err != nil {
		log.Error("reload: trace list kept", "err", err)
		return fmt.Errorf("trace list kept: %w", err)
	}
	l, err := smtpd.ParseTraceList(cfg.Log.Trace)
	if err != nil {
		log.Error("reload: trace list kept", "err", err)
		return fmt.Errorf("trace list kept: log.trace: %w", err)
	}
	t.Set(l)
	log.Info("reload: trace list loaded", "entries", l.Len())
	return nil
}
