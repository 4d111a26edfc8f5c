package main

// The usage of the commands, made from the command table (commands.go):
// the top-level usage, a group's, a command's (-h, --help, postern help
// COMMAND); manpage.go makes the manual page from the same table.

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// configText says how every command finds its configuration.
func (c *cli) configText() string {
	return "Every command finds the configuration the same way: the file --config names; else the file $" + configEnv +
		" names; else " + c.systemConfig + " if it exists; else the embedded default, a trial on this machine " +
		"(data in ./" + devDataDir + " or --data DIR, the domain localhost, ports 2525, 2587, 2465 and 2580 on 127.0.0.1), " +
		"which the command then says on stderr."
}

// usage writes the top-level usage: every command with its summary.
func (c *cli) usage(w io.Writer) {
	fmt.Fprint(w, "Postern is a mail server. This command runs it and administers it.\n\n")
	fmt.Fprint(w, "Usage: postern COMMAND [ARGUMENTS] [FLAGS]\n")
	var rows []row
	section := ""
	for _, cmd := range commands() {
		if cmd.section != "" && cmd.section != section {
			section = cmd.section
			rows = append(rows, row{section: section})
		}
		if !cmd.group() {
			rows = append(rows, row{name: cmd.name, text: cmd.summary})
		}
	}
	writeRows(w, rows)
	fmt.Fprintf(w, "\n%s\n\nRun 'postern COMMAND --help' for a command's usage and an example;\nthe manual page is postern(8).\n",
		wrap(c.configText(), 78, ""))
}

// groupUsage writes the usage of a group: its subcommands.
func (c *cli) groupUsage(w io.Writer, cmds []*command, group *command) {
	fmt.Fprintf(w, "Usage: postern %s COMMAND [ARGUMENTS] [FLAGS]\n\n%s\n", group.name, sentence(group.summary))
	for _, p := range paragraphs(group.text) {
		fmt.Fprintf(w, "\n%s\n", wrap(p, 78, ""))
	}
	rows := []row{{section: "Commands"}}
	for _, cmd := range subcommands(cmds, group) {
		if !cmd.group() {
			rows = append(rows, row{name: cmd.name, text: cmd.summary})
		}
	}
	writeRows(w, rows)
	fmt.Fprintf(w, "\nRun 'postern %s COMMAND --help' for a command's usage and an example.\n", group.name)
}

// row is a line of a list of commands: a heading, or a command and what
// it does.
type row struct{ section, name, text string }

// writeRows writes rows in two columns, wrapping the second at 78
// characters.
func writeRows(w io.Writer, rows []row) {
	width := 0
	for _, r := range rows {
		width = max(width, len(r.name))
	}
	for _, r := range rows {
		if r.section != "" {
			fmt.Fprintf(w, "\n%s:\n", r.section)
			continue
		}
		fmt.Fprintf(w, "  %-*s  %s\n", width, r.name, wrap(r.text, max(78-width-4, 30), strings.Repeat(" ", width+4)))
	}
}

// subcommands returns the commands under group, in table order.
func subcommands(cmds []*command, group *command) []*command {
	var out []*command
	for _, cmd := range cmds {
		if strings.HasPrefix(cmd.name, group.name+" ") {
			out = append(out, cmd)
		}
	}
	return out
}

// flagDoc is one flag or option as the usage and the manual page show it.
type flagDoc struct {
	name  string // "--config FILE", "-f ADDR"
	usage string
}

// flagDocs returns the flags of cmd: from fs, --config and --data last,
// or the documented options of a raw command.
func flagDocs(cmd *command, fs *flag.FlagSet) []flagDoc {
	if cmd.raw != nil {
		out := make([]flagDoc, len(cmd.options))
		for i, o := range cmd.options {
			out[i] = flagDoc{o.name, o.usage}
		}
		return out
	}
	var out, last []flagDoc
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		switch {
		case isBool(f):
			value = ""
		case value == "value" || value == "":
			value = "VALUE"
		}
		if !zeroDefault(f) {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		d := flagDoc{strings.TrimSpace("--" + f.Name + " " + value), usage}
		if f.Name == "config" || f.Name == "data" {
			last = append(last, d)
		} else {
			out = append(out, d)
		}
	})
	return append(out, last...)
}

// isBool reports whether f is a boolean flag (no value).
func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// zeroDefault reports whether f's default is its type's zero value, not
// worth showing.
func zeroDefault(f *flag.Flag) bool {
	t := reflect.TypeOf(f.Value)
	var z reflect.Value
	if t.Kind() == reflect.Pointer {
		z = reflect.New(t.Elem())
	} else {
		z = reflect.Zero(t)
	}
	v, ok := z.Interface().(flag.Value)
	return ok && f.DefValue == v.String()
}

// synopsis is cmd's usage line after "postern ": its name, arguments
// and flags; a raw command's options come before its arguments, as
// sendmail(8) writes them.
func synopsis(cmd *command, docs []flagDoc) string {
	var flags []string
	hasConfig := false
	for _, d := range docs {
		switch {
		case cmd.raw != nil && strings.Contains(d.name, ","): // a list of options
		case cmd.raw == nil && strings.HasPrefix(d.name, "--config "):
			hasConfig = true
		case cmd.raw == nil && strings.HasPrefix(d.name, "--data "):
		default:
			flags = append(flags, "["+d.name+"]")
		}
	}
	if hasConfig {
		flags = append(flags, "[--config FILE | --data DIR]")
	}
	parts := []string{cmd.name}
	if cmd.raw != nil {
		parts = append(parts, flags...)
		flags = nil
	}
	if cmd.args != "" {
		parts = append(parts, cmd.args)
	}
	return strings.Join(append(parts, flags...), " ")
}

// writeUsage writes the usage of a command: what it does, its synopsis,
// its flags and examples. fs holds its flags (nil for a raw command).
func writeUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	docs := flagDocs(cmd, fs)
	fmt.Fprintf(w, "Usage: postern %s\n\n%s\n", synopsis(cmd, docs), wrap(sentence(cmd.summary), 78, ""))
	for _, p := range paragraphs(cmd.text) {
		fmt.Fprintf(w, "\n%s\n", wrap(p, 78, ""))
	}
	if len(docs) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		width := 0
		for _, d := range docs {
			width = max(width, len(d.name))
		}
		for _, d := range docs {
			fmt.Fprintf(w, "  %-*s  %s\n", width, d.name, wrap(d.usage, 74-width, strings.Repeat(" ", width+4)))
		}
	}
	if len(cmd.examples) > 0 {
		fmt.Fprintln(w, "\nExample:")
		for _, e := range cmd.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// sentence makes a summary a sentence: capitalised, with a period.
func sentence(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:] + "."
}

// paragraphs splits text at blank lines.
func paragraphs(text string) []string {
	var out []string
	for p := range strings.SplitSeq(text, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// wrap breaks s into lines of at most width characters (a longer word
// stays whole), starting each line after the first with indent.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteString("\n" + indent)
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}

// helpFlags is the help command: the usage of a command or a group, the
// top-level usage, or the manual page.
func helpFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	man := fs.Bool("man", false, "print the manual page postern(8), in roff")
	return func(args []string) error {
		if *man {
			if len(args) > 0 {
				return usageError{"help: --man takes no command"}
			}
			return writeManPage(c.stdout, c)
		}
		if len(args) == 0 {
			c.usage(c.stdout)
			return nil
		}
		return c.exec(append(args, "--help"))
	}
}
