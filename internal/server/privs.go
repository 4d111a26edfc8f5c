package server

// Starting as root, running as a user: serve binds its listeners first
// (or takes them from systemd or the old process of a graceful restart,
// internal/handover), then switches to the
// configured user and group, and only then opens the data directory, so
// every file Postern creates belongs to that user.

import (
	"fmt"
	"log/slog"

	"postern/internal/config"
	"postern/internal/handover"
	"postern/internal/privs"
)

// passedListeners returns the sockets passed to this process (by the
// old process of a graceful restart when child is not nil, else by
// systemd): a socket named like one of the configuration's sockets
// (config.Sockets: a [[listener]], or "http", "admin", "autoconfig",
// "acme-http-01", "acme-tls-alpn-01") serves that socket; a socket
// without a known name serves the listener on its port.
func passedListeners(cfg *config.Config, log *slog.Logger, child *handover.Child) (*handover.Prebound, error) {
	passed, err := handover.PassedSockets(child, log)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	known := map[string]bool{}
	for _, s := range cfg.Sockets() {
		known[s.Name] = true
	}
	return handover.NewPrebound(passed, func(name string) bool { return known[name] }), nil
}

// prepareProcess runs before serve opens anything: it takes the sockets
// passed (by systemd, or by the old process of a graceful restart when
// child is not nil); then, as root with user set, privs.Prepare binds
// the remaining sockets and switches to the user and group, and checks
// the data directory.
func prepareProcess(cfg *config.Config, log *slog.Logger, child *handover.Child) (*handover.Prebound, error) {
	p, err := passedListeners(cfg, log, child)
	if err != nil {
		return nil, err
	}
	bind := func() error {
		for _, s := range cfg.Sockets() {
			if p.Has(s.Name) {
				continue
			}
			l, err := p.Listen(s.Name, s.Address)
			if err != nil {
				return fmt.Errorf("serve: %s: %w", s.What, err)
			}
			p.Hold(s.Name, l)
		}
		return nil
	}
	pr := cfg.Process
	if err := privs.Prepare(privs.Setup{User: pr.User, Group: pr.Group, DataDir: cfg.DataDir, Bind: bind, Logger: log}); err != nil {
		p.CloseAll()
		return nil, err
	}
	return p, nil
}
