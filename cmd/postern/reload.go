package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"postern/internal/admin"
)

// reloadFlags is `postern reload`: it asks the running server over its
// admin socket to reload its certificates, users and trace list, as
// SIGHUP does, and reports what was kept when something failed to load.
func reloadFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	return func([]string) error {
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		sock := cfg.AdminSocket()
		err = (&admin.Client{SocketPath: sock}).Reload(context.Background())
		switch {
		case errors.Is(err, admin.ErrNotRunning):
			return notRunning(sock)
		case err != nil:
			var se *admin.ServerError
			if errors.As(err, &se) {
				return fmt.Errorf("reload failed, the server serves on with what it had: %s", se.Msg)
			}
			return fmt.Errorf("reload: %w", err)
		}
		fmt.Fprintln(c.stdout, "Reloaded the certificates, the users and the trace list.")
		return nil
	}
}
