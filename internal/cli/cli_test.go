package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"
)

// env is the environment of the test table's commands: what they ran.
type env struct{ ran []string }

// testProgram is a program over a table of its own: a command with
// flags, a group with a subgroup, a raw command and version.
func testProgram() (*Program[*env], *bytes.Buffer, *bytes.Buffer) {
	var stdout, stderr bytes.Buffer
	e := &env{}
	record := func(name string) func(*env, *flag.FlagSet) func([]string) error {
		return func(e *env, fs *flag.FlagSet) func([]string) error {
			n := fs.Int("n", 3, "how many `N`")
			v := fs.Bool("v", false, "say more")
			fs.String("config", "", "the configuration `FILE`")
			fs.String("data", "", "the data `DIR`")
			every := fs.Duration("every", 0, "how often")
			return func(args []string) error {
				switch {
				case len(args) > 0 && args[0] == "bad":
					return UsageError(name + ": bad is not an argument")
				case len(args) > 0 && args[0] == "fail":
					return errors.New(name + ": it failed")
				case len(args) > 0 && args[0] == "quiet":
					return quiet{errors.New("logged")}
				}
				e.ran = append(e.ran, fmt.Sprintf("%s n=%d v=%t every=%s %q", name, *n, *v, *every, args))
				return nil
			}
		}
	}
	p := &Program[*env]{
		Name: "prog", Env: e, Stdout: &stdout, Stderr: &stderr,
		Intro:      "Prog does things.",
		Note:       "A note about every command, long enough that it has to be wrapped at seventy-eight characters.",
		ManSection: "1",
		Exclusive:  []string{"config", "data"},
		Commands: []*Command[*env]{
			{Name: "do", Args: "ARG...", MinArgs: 1, MaxArgs: -1, Section: "Doing", Summary: "do things",
				Text: "First paragraph.\n\nSecond -paragraph.", Examples: []string{"prog do x -n 2"}, Setup: record("do")},
			{Name: "one", Args: "ID", MinArgs: 1, MaxArgs: 1, Summary: "take one", Setup: record("one")},
			{Name: "grp", Section: "Groups", Summary: "a group", Text: "What the group is for."},
			{Name: "grp sub", Summary: "a subcommand", Setup: record("grp sub")},
			{Name: "grp inner", Summary: "a subgroup"},
			{Name: "grp inner leaf", Args: "[X]", MaxArgs: 1, Summary: "a leaf", Setup: record("grp inner leaf")},
			{Name: "raw", Args: "[RCPT...]", Summary: "parse its own arguments",
				Raw: func(e *env, args []string) int {
					e.ran = append(e.ran, fmt.Sprintf("raw %q", args))
					return len(args)
				},
				Options: []Option{{Name: "-t", Usage: "a flag"}, {Name: "-f ADDR", Usage: "a value"}, {Name: "-x, -y", Usage: "ignored"}}},
			{Name: "version", Section: "Other", Summary: "print the version", Setup: record("version")},
		},
	}
	return p, &stdout, &stderr
}

type quiet struct{ error }

func (quiet) Reported() {}

// TestRun: the exit status, what ran with which flags and arguments,
// and what is said on stderr for each kind of command line.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		ran    string
		stderr []string
	}{
		{[]string{"do", "a", "-n", "5", "b", "--v"}, 0, `do n=5 v=true every=0s ["a" "b"]`, nil},
		{[]string{"do", "--every=1m", "a"}, 0, `do n=3 v=false every=1m0s ["a"]`, nil},
		{[]string{"grp", "inner", "leaf", "x"}, 0, `grp inner leaf n=3 v=false every=0s ["x"]`, nil},
		{[]string{"--version", "z"}, 64, "", []string{`prog: version: unexpected argument "z"`, "Run 'prog version --help'"}},
		{[]string{"-version"}, 0, `version n=3 v=false every=0s []`, nil},
		{[]string{"raw", "-t", "a"}, 2, `raw ["-t" "a"]`, nil},
		{[]string{"raw"}, 0, `raw []`, nil},
		{nil, 64, "", []string{"Usage: prog COMMAND", "prog: no command given", "Run 'prog --help' for the commands."}},
		{[]string{"frob"}, 64, "", []string{`prog: unknown command "frob"`, "Run 'prog --help' for the commands."}},
		{[]string{"grp"}, 64, "", []string{"Usage: prog grp COMMAND", "prog: grp: missing command", "Run 'prog grp --help' for its usage."}},
		{[]string{"grp", "frob"}, 64, "", []string{`prog: grp: unknown command "frob"`}},
		{[]string{"do"}, 64, "", []string{"prog: do: want ARG..., got 0 argument(s)", "Run 'prog do --help' for its usage."}},
		{[]string{"one"}, 64, "", []string{"prog: one: missing ID"}},
		{[]string{"one", "a", "b"}, 64, "", []string{`prog: one: unexpected argument "b"`}},
		{[]string{"do", "a", "--bogus"}, 64, "", []string{"prog: do: flag provided but not defined: --bogus"}},
		{[]string{"do", "a", "-n"}, 64, "", []string{"prog: do: flag needs an argument: --n"}},
		{[]string{"do", "a", "-n", "x"}, 64, "", []string{`prog: do: invalid value "x" for flag --n`}},
		{[]string{"do", "bad"}, 64, "", []string{"prog: do: bad is not an argument", "Run 'prog do --help' for its usage."}},
		{[]string{"do", "fail"}, 1, "", []string{"prog: do: it failed"}},
		{[]string{"do", "quiet"}, 1, "", nil},
	} {
		p, stdout, stderr := testProgram()
		code := p.Run(tc.args)
		ran := strings.Join(p.Env.ran, "; ")
		if code != tc.code || ran != tc.ran || stdout.Len() > 0 {
			t.Errorf("%q: exit %d, ran %s, stdout %q; want %d, %s", tc.args, code, ran, stdout, tc.code, tc.ran)
		}
		for _, w := range tc.stderr {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%q: stderr lacks %q:\n%s", tc.args, w, stderr)
			}
		}
		if tc.stderr == nil && stderr.Len() > 0 {
			t.Errorf("%q: stderr %q, want nothing", tc.args, stderr)
		}
	}
}

// TestExecUsageError: a mistake is a UsageError for the caller, the
// framework's and a command's alike.
func TestExecUsageError(t *testing.T) {
	for _, args := range [][]string{{"frob"}, {"do"}, {"do", "--bogus", "a"}, {"do", "bad"}, {"grp"}} {
		p, _, _ := testProgram()
		if err := p.Exec(args); !errors.As(err, new(UsageError)) {
			t.Errorf("%q: %v, want a UsageError", args, err)
		}
	}
}

// TestHelp: -h, --help and a group's help print on stdout, exit 0, and
// run nothing; the usage of a command, a group and the program.
func TestHelp(t *testing.T) {
	usage := map[string]string{
		"do --help": `Usage: prog do ARG... [--every duration] [--n N] [--v] [--config FILE | --data DIR]

Do things.

First paragraph.

Second -paragraph.

Flags:
  -every duration  how often
  -n N             how many N (default 3)
  -v               say more
  -config FILE     the configuration FILE
  -data DIR        the data DIR

Example:
  prog do x -n 2
`,
		"grp help": `Usage: prog grp COMMAND [ARGUMENTS] [FLAGS]

A group.

What the group is for.

Commands:
  grp sub         a subcommand
  grp inner leaf  a leaf

Run 'prog grp COMMAND --help' for a command's usage and an example.
`,
		"raw --help": "", // a raw command parses its own -h
		"--help": `Prog does things.

Usage: prog COMMAND [ARGUMENTS] [FLAGS]

Doing:
  do              do things
  one             take one

Groups:
  grp sub         a subcommand
  grp inner leaf  a leaf
  raw             parse its own arguments

Other:
  version         print the version

A note about every command, long enough that it has to be wrapped at
seventy-eight characters.

Run 'prog COMMAND --help' for a command's usage and an example;
the manual page is prog(1).
`,
	}
	usage["do -h"] = usage["do --help"]
	usage["do a -h"] = usage["do --help"]
	usage["grp --help"] = usage["grp help"]
	usage["-h"] = usage["--help"]
	for line, want := range usage {
		p, stdout, stderr := testProgram()
		code := p.Run(strings.Fields(line))
		if line == "raw --help" {
			if code != 1 || stdout.Len() > 0 {
				t.Errorf("%s: exit %d, stdout %q", line, code, stdout)
			}
			continue
		}
		if code != 0 || stderr.Len() > 0 || len(p.Env.ran) > 0 {
			t.Errorf("%s: exit %d, stderr %q, ran %q", line, code, stderr, p.Env.ran)
		}
		// The flag package names flags with one hyphen; the usage with two.
		want = strings.ReplaceAll(want, "\n  -", "\n  --")
		if got := stdout.String(); got != want {
			t.Errorf("%s:\n%s\nwant:\n%s", line, got, want)
		}
	}
}

// TestSynopsis: a raw command's options come first, a list of options
// is left out; the exclusive flags are one choice, and only those
// present.
func TestSynopsis(t *testing.T) {
	p, _, _ := testProgram()
	for name, want := range map[string]string{
		"raw":            "raw [-t] [-f ADDR] [RCPT...]",
		"do":             "do ARG... [--every duration] [--n N] [--v] [--config FILE | --data DIR]",
		"grp inner leaf": "grp inner leaf [X] [--every duration] [--n N] [--v] [--config FILE | --data DIR]",
	} {
		cmd, _ := Lookup(p.Commands, strings.Fields(name))
		if got := p.Synopsis(cmd, p.FlagDocs(cmd, p.Flags(cmd))); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	p.Exclusive = []string{"data"}
	cmd, _ := Lookup(p.Commands, []string{"one"})
	if got, want := p.Synopsis(cmd, p.FlagDocs(cmd, p.Flags(cmd))), "one ID [--config FILE] [--every duration] [--n N] [--v] [--data DIR]"; got != want {
		t.Errorf("one: %q, want %q", got, want)
	}
}

// TestFlagDocsDefaults: a default is shown unless it is the zero value
// of the flag's type.
func TestFlagDocsDefaults(t *testing.T) {
	p := &Program[int]{}
	cmd := &Command[int]{Name: "x", Setup: func(_ int, fs *flag.FlagSet) func([]string) error {
		fs.Duration("zero", 0, "a zero duration")
		fs.Duration("hour", time.Hour, "an hour")
		fs.Bool("on", true, "on by default")
		fs.String("s", "", "a `WORD`")
		fs.String("t", "x", "a word")
		return nil
	}}
	var got []string
	for _, d := range p.FlagDocs(cmd, p.Flags(cmd)) {
		got = append(got, d.Name+": "+d.Usage)
	}
	want := []string{"--hour duration: an hour (default 1h0m0s)", "--on: on by default (default true)", "--s WORD: a WORD",
		"--t string: a word (default x)", "--zero duration: a zero duration"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWrap: lines of at most the width, a longer word whole, the
// indent after the first line.
func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		s     string
		width int
		want  string
	}{
		{"a bb ccc dddd", 6, "a bb\n> ccc\n> dddd"},
		{"averyveryverylongword b", 5, "averyveryverylongword\n> b"},
		{"  spaced   out  ", 20, "spaced out"},
		{"", 10, ""},
	} {
		if got := wrap(tc.s, tc.width, "> "); got != tc.want {
			t.Errorf("wrap(%q, %d) = %q, want %q", tc.s, tc.width, got, tc.want)
		}
	}
	if got := Sentence("do things"); got != "Do things." {
		t.Errorf("Sentence: %q", got)
	}
}

// FuzzExec: no command line makes the framework panic, and every one
// ends in 0, 1, 64 or a raw command's status.
func FuzzExec(f *testing.F) {
	for _, s := range []string{"do a -n 5", "grp inner leaf x", "raw -t", "--help", "grp", "do --n=x a", "-version", "one -- -a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, " ")
		p, _, _ := testProgram()
		code := p.Run(args)
		if code != 0 && code != 1 && code != ExitUsage && !(len(args) > 0 && args[0] == "raw" && code == len(args)-1) {
			t.Errorf("%q: exit %d", args, code)
		}
	})
}
