package main

// How a command line runs: the command table (commands.go) is looked up
// word by word, the command's flags are parsed, -h and --help print its
// usage (help.go), and every command finds its configuration the same
// way (configFlags.load).

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"postern/internal/config"
)

// exitUsage is sysexits.h's EX_USAGE.
const exitUsage = 64

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

// run runs a command line (the arguments after the program name) and
// returns the process's exit status: 0, 1 for an error, 64 (EX_USAGE)
// for a command-line mistake; sendmail has its own (sendmail.go).
func (c *cli) run(args []string) int {
	err := c.exec(args)
	if err == nil {
		return 0
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(c.stderr, "postern: %s\n", ue.msg)
		var ce commandUsageError
		if errors.As(err, &ce) {
			fmt.Fprintf(c.stderr, "Run 'postern %s --help' for its usage.\n", ce.cmd)
		} else {
			fmt.Fprintln(c.stderr, "Run 'postern --help' for the commands.")
		}
		return exitUsage
	}
	if !errors.As(err, new(loggedError)) {
		fmt.Fprintln(c.stderr, "postern:", err)
	}
	return 1
}

// exec runs a command line and returns its error: a usageError for a
// command-line mistake.
func (c *cli) exec(args []string) error {
	if len(args) == 0 {
		c.usage(c.stderr)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "-h", "-help", "--help":
		c.usage(c.stdout)
		return nil
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	cmds := commands()
	cmd, rest := lookup(cmds, args)
	if cmd == nil {
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	if cmd.raw != nil {
		if st := cmd.raw(c, rest); st != 0 {
			return exitStatus(st)
		}
		return nil
	}
	if cmd.group() { // `postern user`, `postern user frob`
		switch {
		case len(rest) == 0:
			c.groupUsage(c.stderr, cmds, cmd)
			return commandUsageError{cmd.name, usageError{cmd.name + ": missing command"}}
		case isHelp(rest[0]):
			c.groupUsage(c.stdout, cmds, cmd)
			return nil
		}
		return commandUsageError{cmd.name, usageError{fmt.Sprintf("%s: unknown command %q", cmd.name, rest[0])}}
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	act := cmd.setup(c, fs)
	pos, err := parseArgs(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		writeUsage(c.stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return commandUsageError{cmd.name, usageError{cmd.name + ": " + flagError(err)}}
	}
	if err := cmd.checkArgs(pos); err != nil {
		return commandUsageError{cmd.name, usageError{err.Error()}}
	}
	err = act(pos)
	var ue usageError
	if errors.As(err, &ue) {
		return commandUsageError{cmd.name, ue}
	}
	return err
}

// lookup finds the command that args name, the longest match in the
// table, and returns it with the arguments after its name.
func lookup(cmds []*command, args []string) (*command, []string) {
	var found *command
	n := 0
	for i := range args {
		name := strings.Join(args[:i+1], " ")
		var cmd *command
		for _, c := range cmds {
			if c.name == name {
				cmd = c
			}
		}
		if cmd == nil {
			break
		}
		found, n = cmd, i+1
		if !cmd.group() {
			break
		}
	}
	return found, args[n:]
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// flagError words the flag package's errors in the --flag style of the
// usage: "flag provided but not defined: -x" names --x.
func flagError(err error) string {
	s := err.Error()
	s = strings.Replace(s, "not defined: -", "not defined: --", 1)
	s = strings.Replace(s, "for flag -", "for flag --", 1)
	return strings.Replace(s, "needs an argument: -", "needs an argument: --", 1)
}

// checkArgs checks the number of positional arguments.
func (cmd *command) checkArgs(pos []string) error {
	switch {
	case len(pos) < cmd.minArgs && cmd.minArgs == 1 && cmd.maxArgs == 1:
		return fmt.Errorf("%s: missing %s", cmd.name, cmd.args)
	case len(pos) < cmd.minArgs:
		return fmt.Errorf("%s: want %s, got %d argument(s)", cmd.name, cmd.args, len(pos))
	case cmd.maxArgs >= 0 && len(pos) > cmd.maxArgs:
		return fmt.Errorf("%s: unexpected argument %q", cmd.name, pos[cmd.maxArgs])
	}
	return nil
}

// parseArgs parses flags that may come before or after positional
// arguments ("user add EMAIL --data DIR" and "user add --data DIR EMAIL").
// -h and --help return flag.ErrHelp.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// exitStatus is the exit status of a command that parses its own
// arguments and reports its own errors (sendmail).
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// loggedError is an error reported already (by the old process of a
// graceful restart, in its log): exit status 1, nothing printed.
type loggedError struct{ error }

// usageError is a command-line mistake (exit status 64).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// commandUsageError is a usage error of the command cmd, whose --help
// tells more.
type commandUsageError struct {
	cmd string
	err usageError
}

func (e commandUsageError) Error() string { return e.err.msg }
func (e commandUsageError) Unwrap() error { return e.err }

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
		return nil, usageError{"--data and --config exclude each other: set data_dir in the file"}
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
