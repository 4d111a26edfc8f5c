// Command postern is the Postern mail server and its administration tool.
//
//	postern serve [--config FILE | --data DIR]
//	postern user add|list|delete|passwd [EMAIL] [--config FILE | --data DIR]
//	postern queue list|show ID|retry ID|delete ID|release ID [--config FILE | --data DIR]
//	postern ban add ADDR|CIDR [--for D] [--reason TEXT] | list | show ADDR | delete ADDR|CIDR
//	postern reload [--config FILE | --data DIR]
//	postern check [--config FILE | --data DIR] [--json]
//	postern config [-n | -d] [--config FILE | --data DIR]
//	postern bench -addr HOST:PORT -rcpt ADDR [-mode plain|starttls|tls] [-c N] [-n N] [-m N] ...
//	postern sendmail [-t] [-i] [-f ADDR] [-F NAME] [RCPT...]   (also as a "sendmail" symlink)
//	postern version
//
// With no --config, postern runs on its embedded default: data in
// ./postern-data (or --data DIR), domain localhost, listeners on
// 127.0.0.1:2525 (mx), :2587 (submission), :2465 (submissions) and HTTP on
// :2580. This is the only package that reads the configuration; it wires
// the other packages together and passes them plain values.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"postern/internal/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitUsage is sysexits.h's EX_USAGE.
const exitUsage = 64

func main() {
	switch filepath.Base(os.Args[0]) { // sendmail and mailq symlinks (sendmail.go)
	case "sendmail":
		os.Exit(cmdSendmail(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	case "mailq":
		os.Exit(cmdSendmail(append([]string{"-bp"}, os.Args[1:]...), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the process exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "sendmail":
		return cmdSendmail(args[1:], stdin, stdout, stderr)
	case "serve":
		err = cmdServe(args[1:], stdout, stderr)
	case "user":
		err = cmdUser(args[1:], stdin, stdout)
	case "queue":
		err = cmdQueue(args[1:], stdout)
	case "ban":
		err = cmdBan(args[1:], stdout)
	case "reload":
		err = cmdReload(args[1:], stdout)
	case "dkim":
		err = cmdDKIM(args[1:], stdout)
	case "check":
		err = cmdCheck(args[1:], stdout)
	case "config":
		err = cmdConfig(args[1:], stdout) // configcmd.go
	case "bench":
		err = cmdBench(args[1:], stdout)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "postern", version)
	case "help", "-h", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "postern: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
	if err != nil {
		if !errors.As(err, new(loggedError)) {
			fmt.Fprintln(stderr, "postern:", err)
		}
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return 1
	}
	return 0
}

// loggedError is an error reported already (by the old process of a
// graceful restart, in its log): exit status 1, nothing printed.
type loggedError struct{ error }

// usageError is a command-line mistake (exit status 64).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  postern serve [--config FILE | --data DIR]     run the server
  postern user add EMAIL [--config FILE | --data DIR]
  postern user passwd EMAIL [...]                password from stdin, or prompted on a terminal
  postern user delete EMAIL [...]
  postern user list [...]
  postern user alias add|delete|list ...      aliases in the PostgreSQL directory
  postern user sendas add|delete|list ...     send-as grants in the PostgreSQL directory
  postern queue list [--config FILE | --data DIR]
                                                 the messages waiting, each recipient's state
  postern queue show|retry|delete ID [...]       one message; try it now; drop it (no bounce)
  postern queue release ID [...]                 deliver a message held for review (send limits)
  postern ban add ADDR|CIDR [--for 24h] [--reason TEXT] [...]
                                                 refuse an address or range at accept
  postern ban list|show ADDR|delete ADDR|CIDR [...]
                                                 the bans (why, until when); one address; lift one
  postern reload [--config FILE | --data DIR]    reload certificates and users now (as SIGHUP)
  postern dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519] [...]
                                                 new DKIM key; prints the DNS record
  postern check [--config FILE | --data DIR] [--json]
                                                 check the configuration, certificates and DNS records;
                                                 prints the records to publish; exit 0 only when nothing failed
  postern config [-n | -d] [--config FILE | --data DIR]
                                                 the configuration in effect, as TOML (as postconf); -n only what
                                                 differs from the defaults (postconf -n); -d the defaults (postconf -d)
  postern bench -addr HOST:PORT -rcpt ADDR [-mode plain|starttls|tls] [-user U -pass P]
               [-c 8] [-n 1000] [-m 1] [-s 10240] [-t D] [-insecure] [-json]
                                                 load any SMTP server: msgs/s, latency p50/p90/p99
  postern bench -idle N [-hold 10s] [-pid SERVERPID] -addr ... [-mode ...] [-user U -pass P]
                                                 open N sessions, hold them, check each is alive
  postern sendmail [-t] [-i] [-f ADDR] [-F NAME] [-C FILE] [RCPT ...]
                                                 queue a message from stdin (sendmail(8); also as a "sendmail" symlink)
  postern version

Without --config, postern uses its embedded default (see README.md):
data in ./postern-data, domain localhost, ports 2525/2587/2465, HTTP 2580.
`)
}

// configFlags are the flags every subcommand takes to find the configuration.
type configFlags struct {
	config string
	data   string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "configuration file (TOML); none: the embedded default")
	fs.StringVar(&c.data, "data", "", "data directory for the embedded default (default ./postern-data)")
}

// load returns the configuration the flags name.
func (c *configFlags) load() (*config.Config, error) {
	if c.config != "" {
		if c.data != "" {
			return nil, usageError{"--data and --config exclude each other: set data_dir in the file"}
		}
		return config.Load(c.config)
	}
	dir := c.data
	if dir == "" {
		dir = "postern-data"
	}
	cfg := config.Dev(dir)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseArgs parses flags that may come before or after positional
// arguments ("user add EMAIL --data DIR" and "user add --data DIR EMAIL").
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
