package main

import (
	"context"
	"errors"
	"flag"

	"postern/internal/server"
)

// serveFlags is `postern serve`: it runs the server (internal/server)
// until SIGTERM or SIGINT, or until a graceful restart has handed over
// to a new process.
func serveFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	allowBroken := fs.Bool("allow-broken-chain", false, "serve certificates that fail the chain checks (emergencies only; logged at ERROR)")
	return func([]string) error {
		err := server.Run(context.Background(), server.Params{Load: cf.load, AllowBrokenChain: *allowBroken, Stdout: c.stdout, Stderr: c.stderr})
		if le := (server.LoggedError{}); errors.As(err, &le) {
			return loggedError{err}
		}
		return err
	}
}
