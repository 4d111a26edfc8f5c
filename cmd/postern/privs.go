package main

// Starting as root, running as a user: serve binds its listeners first
// (or takes them from systemd or the old process of a graceful restart,
// internal/handover), then switches to the
// configured user and group, and only then opens the data directory, so
// every file Postern creates belongs to that user.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"postern/internal/config"
	"postern/internal/fsutil"
	"postern/internal/handover"
	"postern/internal/privs"
)

// passedListeners returns the sockets passed to this process (by the
// old process of a graceful restart when child is not nil, else by
// systemd): a socket named like a [[listener]] (or "http", "admin", "autoconfig",
// "acme-http-01", "acme-tls-alpn-01") serves that listener; a socket
// without a known name serves the listener on its port.
func passedListeners(cfg *config.Config, log *slog.Logger, child *handover.Child) (*handover.Prebound, error) {
	passed, err := handover.PassedSockets(child, log)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	known := map[string]bool{}
	for name := range extraListeners(cfg) {
		known[name] = true
	}
	for _, lc := range cfg.Listeners {
		known[lc.Name] = true
	}
	return handover.NewPrebound(passed, func(name string) bool { return known[name] }), nil
}

// prepareProcess runs before serve opens anything: it takes the sockets
// passed (by systemd, or by the old process of a graceful restart when
// child is not nil), and when running as root with user set, binds the
// remaining listeners, creates the data directory for the user and
// switches to the user and group. Then it checks the data directory.
func prepareProcess(cfg *config.Config, log *slog.Logger, child *handover.Child) (*handover.Prebound, error) {
	p, err := passedListeners(cfg, log, child)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			p.CloseAll()
		}
	}()
	root := os.Geteuid() == 0
	switch {
	case cfg.Process.User == "" && root:
		log.Warn("running as root: set user (for example user = \"postern\") to serve as an unprivileged user")
	case cfg.Process.User != "":
		id, err := privs.Lookup(cfg.Process.User, cfg.Process.Group)
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		if !root {
			if os.Geteuid() != id.UID {
				return nil, fmt.Errorf("serve: user = %q (uid %d), but started as uid %d: start as root, or as that user", cfg.Process.User, id.UID, os.Geteuid())
			}
			break
		}
		for _, lc := range cfg.Listeners {
			if p.Has(lc.Name) {
				continue
			}
			l, err := p.Listen(lc.Name, lc.Address)
			if err != nil {
				return nil, fmt.Errorf("serve: listener %s: %w", lc.Name, err)
			}
			p.Hold(lc.Name, l)
		}
		for name, addr := range extraListeners(cfg) {
			if !p.Has(name) {
				l, err := p.Listen(name, addr)
				if err != nil {
					return nil, fmt.Errorf("serve: %s: %w", name, err)
				}
				p.Hold(name, l)
			}
		}
		if _, err := os.Stat(cfg.DataDir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return nil, fmt.Errorf("serve: data directory: %w", err)
			}
			if err := os.Chown(cfg.DataDir, id.UID, id.GID); err != nil {
				return nil, fmt.Errorf("serve: data directory: %w", err)
			}
		}
		if err := privs.Drop(id); err != nil {
			return nil, err
		}
		log.Info("privileges dropped", "user", cfg.Process.User, "uid", id.UID, "gid", id.GID)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("serve: data directory: %w", err)
	}
	if err := fsutil.CheckDataDir(cfg.DataDir, cfg.Process.User, cfg.Process.Group, os.Geteuid()); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	ok = true
	return p, nil
}

// extraListeners returns the sockets serve binds besides the
// [[listener]]s, by name: the HTTP endpoint ("http"), the admin API
// over HTTP ("admin"), the mail clients' settings ("autoconfig") and the
// ACME challenge responder ("acme-http-01" or "acme-tls-alpn-01"), the
// ones configured.
func extraListeners(cfg *config.Config) map[string]string {
	m := map[string]string{}
	if cfg.HTTP.Address != "" {
		m["http"] = cfg.HTTP.Address
	}
	if cfg.Admin.HTTPAddress != "" {
		m["admin"] = cfg.Admin.HTTPAddress
	}
	if cfg.Autoconfig.Enabled {
		m["autoconfig"] = cfg.Autoconfig.Address
	}
	if cfg.ACME.Enabled {
		switch cfg.ACME.Challenge {
		case config.ChallengeHTTP01:
			m["acme-http-01"] = cfg.ACME.HTTPAddress
		case config.ChallengeTLSALPN01:
			m["acme-tls-alpn-01"] = cfg.ACME.TLSALPNAddress
		}
	}
	return m
}

// dataOwner returns whom the files and directories a command creates or
// replaces in the data directory must belong to (privs.DataOwner).
func dataOwner(cfg *config.Config) (*fsutil.Owner, error) {
	return privs.DataOwner(cfg.DataDir, cfg.Process.User, cfg.Process.Group)
}
