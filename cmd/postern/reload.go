package main

// postern reload: ask the running server to read its configuration file
// again, as SIGHUP does (internal/server's reload.go), and print its
// report: what changed, what needs a restart, what was refused or kept.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"postern/internal/admin"
	"postern/internal/server"
)

// reloadFlags is `postern reload`: it asks the running server over its
// admin socket to read its configuration again, as SIGHUP does, and
// prints what changed, what needs a restart, and what failed. It exits
// non-zero when the file is refused or a certificate or the users are
// kept.
func reloadFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	return func([]string) error {
		cfg, err := cf.load()
		if err != nil {
			var ue usageError
			if errors.As(err, &ue) {
				return err
			}
			// The server reads the same file: it would refuse it too.
			return fmt.Errorf("reload refused, nothing changed: %w", err)
		}
		sock := cfg.AdminSocket()
		rep, err := (&admin.Client{SocketPath: sock}).Reload(context.Background())
		var se *admin.ServerError
		switch {
		case errors.Is(err, admin.ErrNotRunning):
			return notRunning(sock)
		case errors.As(err, &se):
			writeReloadReport(c.stdout, rep)
			return fmt.Errorf("reload failed, the server serves on with what it had: %s", strings.Join(rep.Errors, "; "))
		case err != nil:
			return fmt.Errorf("reload: %w", err)
		}
		writeReloadReport(c.stdout, rep)
		return nil
	}
}

// writeReloadReport prints rep for people:
//
//	Reloaded /etc/postern/postern.toml:
//	  applied:
//	    aliases."info@example.com": (none) → ["alice@example.com"]
//	  needs a restart (not applied; postern restart applies it):
//	    listener[0].address: ":25" → ":2525"
//	  reloaded: certificates, users
func writeReloadReport(w io.Writer, rep admin.ReloadReport) {
	switch {
	case slices.ContainsFunc(rep.Errors, refusedFile):
		fmt.Fprintf(w, "Configuration %s refused; the running one serves on:\n", orDefault(rep.Config))
	case len(rep.Changed) == 0 && len(rep.NeedsRestart) == 0:
		fmt.Fprintf(w, "Reloaded %s:\n  the configuration is unchanged\n", orDefault(rep.Config))
	default:
		fmt.Fprintf(w, "Reloaded %s:\n", orDefault(rep.Config))
	}
	if len(rep.Changed) > 0 {
		fmt.Fprintln(w, "  applied:")
		for _, c := range rep.Changed {
			fmt.Fprintf(w, "    %s\n", c)
		}
	}
	if len(rep.NeedsRestart) > 0 {
		fmt.Fprintln(w, "  needs a restart (not applied; postern restart applies it):")
		for _, c := range rep.NeedsRestart {
			fmt.Fprintf(w, "    %s\n", c)
		}
	}
	if len(rep.Reloaded) > 0 {
		fmt.Fprintf(w, "  reloaded: %s\n", strings.Join(rep.Reloaded, ", "))
	}
}

func refusedFile(e string) bool { return strings.HasPrefix(e, server.RefusedPrefix) }
