// Package cli is a small command-line framework: a table of commands,
// each with its synopsis, flags, help text and examples, from which it
// runs a command line (the longest command name that matches, then its
// flags, before or after the positional arguments) and renders every
// kind of help: the top-level usage, a group's, a command's (-h,
// --help, "PROGRAM help COMMAND") and the manual page in roff.
//
// It is its own package, apart from the program that uses it
// (cmd/postern), because it is a mechanism, not a command: it knows
// nothing of mail or of the configuration, so the program keeps only
// the table (data) and the functions that run each command, and the
// help, the manual page and the usage errors cannot drift apart, being
// made from the one table by the one renderer, tested here on a table
// of its own.
//
// Commands are generic in E, the environment a command runs in (its
// standard streams, its clock, where it finds its configuration): the
// program passes its own type, and its commands receive it unchanged.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ExitUsage is sysexits.h's EX_USAGE, the exit status of a command-line
// mistake.
const ExitUsage = 64

// Command is one entry of the command table: a command ("check"), a
// group of subcommands ("queue") or a subcommand ("queue show"). The
// usage that -h and --help print, the top-level usage and the manual
// page are all made from it.
type Command[E any] struct {
	// Name is the words after the program's name: "queue show".
	Name string
	// Args are the positional arguments as the usage line shows them:
	// "ID", "ALIAS TARGET...". MinArgs and MaxArgs bound their number;
	// MaxArgs -1 means any.
	Args             string
	MinArgs, MaxArgs int
	// Section is the heading a top-level command or group is listed
	// under.
	Section string
	// Summary says what it does, in one line without a final period.
	Summary string
	// Text says more, in paragraphs separated by blank lines.
	Text string
	// Examples are command lines, each with an optional comment after
	// "  # ".
	Examples []string
	// Setup declares the command's flags on fs and returns what runs
	// it, with the positional arguments. Nil for a group.
	Setup func(env E, fs *flag.FlagSet) func(args []string) error
	// Raw, for a command that parses its own arguments (sendmail), runs
	// it and returns the exit status; Options then documents them.
	Raw     func(env E, args []string) int
	Options []Option
}

// Option documents an option of a command that parses its own
// arguments.
type Option struct{ Name, Usage string }

// Group reports whether cmd is a group of subcommands.
func (cmd *Command[E]) Group() bool { return cmd.Setup == nil && cmd.Raw == nil }

// Program is a command-line program: its command table, the environment
// its commands run in, and the texts of its usage around the table.
type Program[E any] struct {
	// Name is the program's name as the user types it: "postern".
	Name string
	// Env is passed to every command's Setup and Raw.
	Env E
	// Commands is the command table, in the order of the usage and of
	// the manual page. A group precedes its subcommands.
	Commands       []*Command[E]
	Stdout, Stderr io.Writer
	// Intro is the top-level usage's first paragraph.
	Intro string
	// Note is a paragraph after the top-level usage's list of commands
	// (how every command finds its configuration, say); "" for none.
	Note string
	// ManSection is the section of the manual page: "8".
	ManSection string
	// Exclusive are flags that exclude each other ("config", "data"):
	// listed last in a command's flags, and in its synopsis as one
	// choice, "[--config FILE | --data DIR]".
	Exclusive []string
}

// Run runs a command line (the arguments after the program's name) and
// returns the process's exit status: 0, 1 for an error, 64 (ExitUsage)
// for a command-line mistake, or what a raw command returns. It prints
// the error on Stderr, and for a mistake where to find the usage.
func (p *Program[E]) Run(args []string) int {
	err := p.Exec(args)
	if err == nil {
		return 0
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	var ue UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(p.Stderr, "%s: %s\n", p.Name, ue)
		var ce commandUsageError
		if errors.As(err, &ce) {
			fmt.Fprintf(p.Stderr, "Run '%s %s --help' for its usage.\n", p.Name, ce.cmd)
		} else {
			fmt.Fprintf(p.Stderr, "Run '%s --help' for the commands.\n", p.Name)
		}
		return ExitUsage
	}
	if !errors.As(err, new(Reported)) {
		fmt.Fprintf(p.Stderr, "%s: %v\n", p.Name, err)
	}
	return 1
}

// Exec runs a command line and returns its error: a UsageError for a
// command-line mistake. -h, --help and a group's "help" print the usage
// on Stdout; -version and --version run the command "version".
func (p *Program[E]) Exec(args []string) error {
	if len(args) == 0 {
		p.Usage(p.Stderr)
		return UsageError("no command given")
	}
	switch args[0] {
	case "-h", "-help", "--help":
		p.Usage(p.Stdout)
		return nil
	case "-version", "--version":
		args = append([]string{"version"}, args[1:]...)
	}
	cmd, rest := Lookup(p.Commands, args)
	if cmd == nil {
		return UsageError(fmt.Sprintf("unknown command %q", args[0]))
	}
	if cmd.Raw != nil {
		if st := cmd.Raw(p.Env, rest); st != 0 {
			return exitStatus(st)
		}
		return nil
	}
	if cmd.Group() { // `postern user`, `postern user frob`
		switch {
		case len(rest) == 0:
			p.groupUsage(p.Stderr, cmd)
			return commandUsageError{cmd.Name, UsageError(cmd.Name + ": missing command")}
		case IsHelp(rest[0]):
			p.groupUsage(p.Stdout, cmd)
			return nil
		}
		return commandUsageError{cmd.Name, UsageError(fmt.Sprintf("%s: unknown command %q", cmd.Name, rest[0]))}
	}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	act := cmd.Setup(p.Env, fs)
	pos, err := ParseArgs(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		p.writeUsage(p.Stdout, cmd, fs)
		return nil
	}
	if err != nil {
		return commandUsageError{cmd.Name, UsageError(cmd.Name + ": " + FlagError(err))}
	}
	if err := cmd.checkArgs(pos); err != nil {
		return commandUsageError{cmd.Name, UsageError(err.Error())}
	}
	err = act(pos)
	var ue UsageError
	if errors.As(err, &ue) {
		return commandUsageError{cmd.Name, ue}
	}
	return err
}

// Lookup finds the command that args name, the longest match in the
// table, and returns it with the arguments after its name; nil if the
// first word names none.
func Lookup[E any](cmds []*Command[E], args []string) (*Command[E], []string) {
	var found *Command[E]
	n := 0
	for i := range args {
		name := strings.Join(args[:i+1], " ")
		var cmd *Command[E]
		for _, c := range cmds {
			if c.Name == name {
				cmd = c
			}
		}
		if cmd == nil {
			break
		}
		found, n = cmd, i+1
		if !cmd.Group() {
			break
		}
	}
	return found, args[n:]
}

// IsHelp reports whether arg asks for help: -h, -help, --help or help.
func IsHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// FlagError words the flag package's errors in the --flag style of the
// usage: "flag provided but not defined: -x" names --x.
func FlagError(err error) string {
	s := err.Error()
	s = strings.Replace(s, "not defined: -", "not defined: --", 1)
	s = strings.Replace(s, "for flag -", "for flag --", 1)
	return strings.Replace(s, "needs an argument: -", "needs an argument: --", 1)
}

// checkArgs checks the number of positional arguments.
func (cmd *Command[E]) checkArgs(pos []string) error {
	switch {
	case len(pos) < cmd.MinArgs && cmd.MinArgs == 1 && cmd.MaxArgs == 1:
		return fmt.Errorf("%s: missing %s", cmd.Name, cmd.Args)
	case len(pos) < cmd.MinArgs:
		return fmt.Errorf("%s: want %s, got %d argument(s)", cmd.Name, cmd.Args, len(pos))
	case cmd.MaxArgs >= 0 && len(pos) > cmd.MaxArgs:
		return fmt.Errorf("%s: unexpected argument %q", cmd.Name, pos[cmd.MaxArgs])
	}
	return nil
}

// ParseArgs parses flags that may come before or after positional
// arguments ("user add EMAIL --data DIR" and "user add --data DIR EMAIL")
// and returns the positional arguments. -h and --help return
// flag.ErrHelp.
func ParseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
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

// exitStatus is the exit status of a raw command, which reports its own
// errors.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Reported is an error reported already (in a log, say): Run exits 1
// and prints nothing for it.
type Reported interface {
	error
	Reported()
}

// UsageError is a command-line mistake: Run prints it, says where the
// usage is, and exits 64.
type UsageError string

func (e UsageError) Error() string { return string(e) }

// commandUsageError is a usage error of the command cmd, whose --help
// tells more.
type commandUsageError struct {
	cmd string
	err UsageError
}

func (e commandUsageError) Error() string { return string(e.err) }
func (e commandUsageError) Unwrap() error { return e.err }
