package check

// Start failures of serve that an operator meets in the first week,
// turned into messages that name the cause and the fix.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"

	bolterrors "go.etcd.io/bbolt/errors"

	"postern/internal/admin"
	"postern/internal/config"
)

// InUse refuses to start on a data directory that another postern
// serves (its admin socket answers), naming that process. A new process
// of a graceful restart does not ask: its parent serves there until the
// hand-over.
func InUse(cfg *config.Config) error {
	pid, err := admin.ServerPID(cfg.AdminSocket())
	if err != nil {
		return nil // nobody answers, or we may not ask: the spool's lock decides
	}
	return inUseError(cfg, pid)
}

func inUseError(cfg *config.Config, pid int) error {
	if pid <= 0 {
		return fmt.Errorf("serve: data directory %s is in use by another postern: stop it first, or give this one another data_dir", cfg.DataDir)
	}
	return fmt.Errorf("serve: data directory %s is in use by another postern (pid %d): stop it first (kill -TERM %d), "+
		"or let it apply your changes: postern reload, or a graceful restart (kill -USR2 %d)", cfg.DataDir, pid, pid, pid)
}

// SpoolError explains a spool that does not open because another
// process holds its lock.
func SpoolError(cfg *config.Config, err error) error {
	if !errors.Is(err, bolterrors.ErrTimeout) {
		return err
	}
	if pid, perr := admin.ServerPID(cfg.AdminSocket()); perr == nil {
		return inUseError(cfg, pid)
	}
	return fmt.Errorf("serve: the spool in %s is locked by another process (another postern starting on this data directory?): stop it first: %w",
		cfg.SpoolDir(), err)
}

// ListenError says how to bind a port that failed: below 1024 without
// privilege, or taken by another program.
func ListenError(what, addr string, err error) error {
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	switch {
	case errors.Is(err, syscall.EACCES) && port > 0 && port < 1024 && os.Geteuid() != 0:
		exe, _ := os.Executable()
		return fmt.Errorf("serve: %s: %w\n(fix: ports below 1024 need privilege: start postern as root with user = \"postern\" in the configuration "+
			"(it binds the ports, then runs as that user), or give it CAP_NET_BIND_SERVICE (AmbientCapabilities=CAP_NET_BIND_SERVICE "+
			"in its systemd unit, or setcap cap_net_bind_service=+ep %s), or let systemd bind them (contrib/postern.socket))", what, err, exe)
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("serve: %s: %w\n(fix: another program listens on %s: ss -ltnp 'sport = :%d' names it; stop it, or change the address)", what, err, addr, port)
	}
	return fmt.Errorf("serve: %s: %w", what, err)
}
