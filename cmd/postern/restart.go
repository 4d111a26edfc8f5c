package main

// postern restart: a graceful restart (as SIGUSR2) asked over the admin
// socket, and the wait for its outcome. The server side
// (internal/server's restart.go) hands the request to the loop that
// handles the signals, which answers once the new process is ready or has failed; the
// command then waits until the new process answers on the admin socket.

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"postern/internal/admin"
	"postern/internal/handover"
)

// restartFlags is `postern restart`.
func restartFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	return func([]string) error {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		sock := cfg.AdminSocket()
		cl := &admin.Client{SocketPath: sock}
		ctx := context.Background()
		old, err := cl.Process(ctx)
		switch {
		case errors.Is(err, admin.ErrNotRunning):
			return notRunning(sock)
		case err != nil:
			return fmt.Errorf("restart: %w", err)
		}
		pid, err := cl.Restart(ctx)
		if se := (*admin.ServerError)(nil); errors.As(err, &se) {
			return fmt.Errorf("restart failed: %s; pid %d serves on", se.Msg, old.PID)
		} else if err != nil {
			return fmt.Errorf("restart: %w", err)
		}
		// The old process lets its sessions finish (restart_drain_timeout),
		// stops (shutdown_timeout), and the new one opens the spool.
		limit := cfg.Limits.RestartDrainTimeout + cfg.Limits.ShutdownTimeout + handover.ServingTimeout
		p, err := cl.AwaitServing(ctx, pid, limit)
		switch {
		case errors.Is(err, admin.ErrExited):
			return fmt.Errorf("restart: the new process (pid %d) exited before it served; pid %d serves again (its log says why)", pid, old.PID)
		case err != nil:
			return fmt.Errorf("restart: the new process (pid %d) does not serve after %v", pid, limit)
		}
		fmt.Fprintf(c.stdout, "Restarted: pid %d serves (postern %s); pid %d handed over.\n", p.PID, p.Version, old.PID)
		return nil
	}
}
