package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"postern/internal/admin"
)

// cmdReload implements `postern reload`: it asks the running server over
// its admin socket to reload its certificates and users, as SIGHUP does,
// and reports what was kept when something failed to load.
func cmdReload(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf configFlags
	cf.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError{"reload: unexpected argument " + pos[0]}
	}
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
			return fmt.Errorf("reload failed, the server serves on with what it had: %s", se.Message)
		}
		return fmt.Errorf("reload: %w", err)
	}
	fmt.Fprintln(stdout, "Reloaded the certificates and the users.")
	return nil
}
