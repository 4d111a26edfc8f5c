package main

// How a command line runs: internal/cli runs the command table
// (commands.go) with a *cli as the commands' environment, and every
// command finds its configuration the same way (configFlags.load).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	cmdline "postern/internal/cli"
	"postern/internal/config"
)

// exitUsage is sysexits.h's EX_USAGE.
const exitUsage = cmdline.ExitUsage

// systemConfigPath is the configuration file every command reads when
// neither --config nor $POSTERN_CONFIG names one, if it exists. It is
// set at build time for a system that keeps it elsewhere, and by the
// tests of test/, which must not read the machine's own:
//
//	go build -ldflags "-X main.systemConfigPath=/usr/local/etc/postern/postern.toml" ./cmd/postern
var systemConfigPath = "/etc/postern/postern.toml"

// configEnv names the environment variable that names the configuration
// file when --config does not.
const configEnv = "POSTERN_CONFIG"

// devDataDir is the embedded default's data directory without --data.
const devDataDir = "postern-data"

// cli is what a command line runs with: its standard streams, its
// clock, and where it looks for the configuration. Tests make their own.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// getenv reads the environment ($POSTERN_CONFIG).
	getenv func(string) string
	// systemConfig is the configuration file read when neither --config
	// nor $POSTERN_CONFIG names one, if it exists: systemConfigPath.
	systemConfig string
	now          func() time.Time
}

// newCLI returns the cli of this process, over the given streams.
func newCLI(stdin io.Reader, stdout, stderr io.Writer) *cli {
	return &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv, systemConfig: systemConfigPath, now: time.Now}
}

// command is an entry of the command table.
type command = cmdline.Command[*cli]

// program is the postern command: its command table run with c.
func (c *cli) program() *cmdline.Program[*cli] {
	return &cmdline.Program[*cli]{
		Name: "postern", Env: c, Commands: commands(), Stdout: c.stdout, Stderr: c.stderr,
		Intro:      "Postern is a mail server. This command runs it and administers it.",
		Note:       c.configText(),
		ManSection: "8",
		Exclusive:  []string{"config", "data"},
	}
}

// run runs a command line (the arguments after the program name) and
// returns the process's exit status: 0, 1 for an error, 64 (EX_USAGE)
// for a command-line mistake; sendmail has its own (sendmail.go).
func (c *cli) run(args []string) int { return c.program().Run(args) }

// exec runs a command line and returns its error: a usageError for a
// command-line mistake.
func (c *cli) exec(args []string) error { return c.program().Exec(args) }

// usageError is a command-line mistake (exit status 64).
type usageError = cmdline.UsageError

// loggedError is an error reported already (by the old process of a
// graceful restart, in its log): exit status 1, nothing printed.
type loggedError struct{ error }

// Reported marks the error as reported already (cmdline.Reported).
func (loggedError) Reported() {}

// configFlags are the flags by which every command finds the
// configuration (load).
type configFlags struct {
	config string
	data   string
	c      *cli
}

// configFlags declares --config and --data on fs.
func (c *cli) configFlags(fs *flag.FlagSet) *configFlags {
	cf := &configFlags{c: c}
	fs.StringVar(&cf.config, "config", "", "the configuration `FILE`; without it $"+configEnv+", else "+c.systemConfig+" if it exists, else the embedded default")
	fs.StringVar(&cf.data, "data", "", "use the embedded default (a trial on this machine), with its data in `DIR` (default ./"+devDataDir+")")
	return cf
}

// load returns the configuration a command acts on, found the same way
// by every command: the file --config names; else the file
// $POSTERN_CONFIG names; else the system's file (/etc/postern/postern.toml)
// if it exists; else the embedded default, with its data in --data DIR
// or ./postern-data. --data alone chooses the embedded default. Falling
// back to the embedded default is said on stderr: a command that acts on
// a trial instance in the current directory instead of the live server
// must not do so quietly.
func (cf *configFlags) load() (*config.Config, error) {
	if cf.config != "" && cf.data != "" {
		return nil, usageError("--data and --config exclude each other: set data_dir in the file")
	}
	path, err := cf.file()
	if err != nil {
		return nil, err
	}
	if path != "" {
		return config.Load(path)
	}
	dir := cf.data
	if dir == "" {
		dir = devDataDir
		fmt.Fprintf(cf.c.stderr, "postern: no configuration file (no --config, no $%s, no %s): using the embedded default, with its data in ./%s\n",
			configEnv, cf.c.systemConfig, dir)
	}
	cfg := config.Dev(dir)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// file returns the configuration file to load, "" for the embedded
// default.
func (cf *configFlags) file() (string, error) {
	switch {
	case cf.config != "":
		return cf.config, nil
	case cf.data != "":
		return "", nil
	}
	if p := cf.c.getenv(configEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("$%s names %s: %w", configEnv, p, err)
		}
		return p, nil
	}
	_, err := os.Stat(cf.c.systemConfig)
	switch {
	case err == nil:
		return cf.c.systemConfig, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	}
	// Not readable, for example: never the embedded default then.
	return "", fmt.Errorf("%w (run as root or as the server's user, or name the file with --config)", err)
}
