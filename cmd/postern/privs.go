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
	"net"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"postern/internal/config"
	"postern/internal/fsutil"
	"postern/internal/handover"
)

// preBound holds the listeners serve got before it opened anything
// else: passed by systemd or the old process of a graceful restart, or
// bound as root before the privilege drop.
type preBound struct {
	named   map[string]net.Listener // by listener name; "http" for [http]
	unnamed []net.Listener          // passed without a name we know
	from    string                  // who passed them: "systemd" or "the old process"
}

// passedListeners returns the sockets passed to this process (by the
// old process of a graceful restart when child is not nil, else by
// systemd): a socket named like a [[listener]] (or "http", "admin", "autoconfig",
// "acme-http-01", "acme-tls-alpn-01") serves that listener; a socket
// without a known name serves the listener on its port.
func passedListeners(cfg *config.Config, log *slog.Logger, child *handover.Child) (*preBound, error) {
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
	p := &preBound{named: map[string]net.Listener{}, from: passed.From}
	for _, s := range passed.Sockets {
		if known[s.Name] && p.named[s.Name] == nil {
			p.named[s.Name] = s.Listener
		} else {
			p.unnamed = append(p.unnamed, s.Listener)
		}
	}
	return p, nil
}

// listen returns the listener for name at addr: one systemd passed under
// that name (or, without a matching name, on the same port), one bound
// before the privilege drop, or a new one bound now.
func (p *preBound) listen(name, addr string) (net.Listener, error) {
	if l, ok := p.named[name]; ok {
		delete(p.named, name)
		return l, nil
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "0" {
		for i, l := range p.unnamed {
			if _, lp, _ := net.SplitHostPort(l.Addr().String()); lp == port {
				p.unnamed = append(p.unnamed[:i], p.unnamed[i+1:]...)
				return l, nil
			}
		}
	}
	return net.Listen("tcp", addr)
}

// closeUnused closes the listeners nobody took.
func (p *preBound) closeUnused(log *slog.Logger) {
	for name, l := range p.named {
		log.Warn("socket passed by "+p.from+" matches no listener: closed", "name", name, "address", l.Addr().String())
		l.Close()
	}
	for _, l := range p.unnamed {
		log.Warn("socket passed by "+p.from+" matches no listener: closed", "address", l.Addr().String())
		l.Close()
	}
	p.named, p.unnamed = nil, nil
}

// closeAll closes every listener held, on a failed start.
func (p *preBound) closeAll() {
	for _, l := range p.named {
		l.Close()
	}
	for _, l := range p.unnamed {
		l.Close()
	}
	p.named, p.unnamed = nil, nil
}

// prepareProcess runs before serve opens anything: it takes the sockets
// passed (by systemd, or by the old process of a graceful restart when
// child is not nil), and when running as root with user set, binds the
// remaining listeners, creates the data directory for the user and
// switches to the user and group. Then it checks the data directory.
func prepareProcess(cfg *config.Config, log *slog.Logger, child *handover.Child) (*preBound, error) {
	p, err := passedListeners(cfg, log, child)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			p.closeAll()
		}
	}()
	root := os.Geteuid() == 0
	switch {
	case cfg.Process.User == "" && root:
		log.Warn("running as root: set user (for example user = \"postern\") to serve as an unprivileged user")
	case cfg.Process.User != "":
		id, err := lookupIdentity(cfg.Process)
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		if !root {
			if os.Geteuid() != id.uid {
				return nil, fmt.Errorf("serve: user = %q (uid %d), but started as uid %d: start as root, or as that user", cfg.Process.User, id.uid, os.Geteuid())
			}
			break
		}
		for _, lc := range cfg.Listeners {
			if _, ok := p.named[lc.Name]; ok {
				continue
			}
			l, err := p.listen(lc.Name, lc.Address)
			if err != nil {
				return nil, fmt.Errorf("serve: listener %s: %w", lc.Name, err)
			}
			p.named[lc.Name] = l
		}
		for name, addr := range extraListeners(cfg) {
			if _, ok := p.named[name]; !ok {
				l, err := p.listen(name, addr)
				if err != nil {
					return nil, fmt.Errorf("serve: %s: %w", name, err)
				}
				p.named[name] = l
			}
		}
		if _, err := os.Stat(cfg.DataDir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
				return nil, fmt.Errorf("serve: data directory: %w", err)
			}
			if err := os.Chown(cfg.DataDir, id.uid, id.gid); err != nil {
				return nil, fmt.Errorf("serve: data directory: %w", err)
			}
		}
		if err := dropPrivileges(id); err != nil {
			return nil, err
		}
		log.Info("privileges dropped", "user", cfg.Process.User, "uid", id.uid, "gid", id.gid)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("serve: data directory: %w", err)
	}
	if err := checkDataDir(cfg.DataDir, cfg.Process, os.Geteuid()); err != nil {
		return nil, err
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

// identity is a resolved user and group.
type identity struct {
	uid, gid int
	groups   []int // supplementary groups
}

// lookupIdentity resolves user and group names (or numbers) in the
// system's user database.
func lookupIdentity(pc config.Process) (identity, error) {
	u, err := user.Lookup(pc.User)
	if err != nil {
		if _, nerr := strconv.Atoi(pc.User); nerr == nil {
			u, err = user.LookupId(pc.User)
		}
	}
	if err != nil {
		return identity{}, fmt.Errorf("user = %q: %w (create it: useradd --system --home-dir /var/lib/postern --shell /usr/sbin/nologin postern)", pc.User, err)
	}
	var id identity
	id.uid, _ = strconv.Atoi(u.Uid)
	id.gid, _ = strconv.Atoi(u.Gid)
	if pc.Group != "" {
		g, err := user.LookupGroup(pc.Group)
		if err != nil {
			if _, nerr := strconv.Atoi(pc.Group); nerr == nil {
				g, err = user.LookupGroupId(pc.Group)
			}
		}
		if err != nil {
			return identity{}, fmt.Errorf("group = %q: %w", pc.Group, err)
		}
		id.gid, _ = strconv.Atoi(g.Gid)
	}
	id.groups = []int{id.gid}
	if gids, err := u.GroupIds(); err == nil {
		for _, s := range gids {
			if n, err := strconv.Atoi(s); err == nil && n != id.gid {
				id.groups = append(id.groups, n)
			}
		}
	}
	return id, nil
}

// dataOwner returns whom the files and directories a command creates or
// replaces in the data directory must belong to, or the server could not
// read them: when it runs as root, the configured user and group, or
// without user in the configuration the data directory's owner (the
// server runs as that uid, or serve refuses to start: checkDataDir).
// Otherwise, or when the directory does not exist yet or belongs to
// root, nil: they are the process's, which is the server's identity too.
func dataOwner(cfg *config.Config) (*fsutil.Owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	if cfg.Process.User != "" {
		id, err := lookupIdentity(cfg.Process)
		if err != nil {
			return nil, err
		}
		return &fsutil.Owner{UID: id.uid, GID: id.gid}, nil
	}
	fi, err := os.Stat(cfg.DataDir)
	if err != nil {
		return nil, nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil, nil
	}
	return &fsutil.Owner{UID: int(st.Uid), GID: int(st.Gid)}, nil
}

// dropPrivileges switches the process to id: supplementary groups, then
// the group, then the user (after which the first two could not be
// changed). On Linux Go applies each to every thread (since Go 1.16).
func dropPrivileges(id identity) error {
	if err := syscall.Setgroups(id.groups); err != nil {
		return fmt.Errorf("serve: setgroups: %w", err)
	}
	if err := syscall.Setgid(id.gid); err != nil {
		return fmt.Errorf("serve: setgid %d: %w", id.gid, err)
	}
	if err := syscall.Setuid(id.uid); err != nil {
		return fmt.Errorf("serve: setuid %d: %w", id.uid, err)
	}
	if id.uid != 0 && syscall.Setuid(0) == nil {
		return errors.New("serve: privileges not dropped: setuid(0) still works")
	}
	return nil
}
