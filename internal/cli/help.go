package cli

// The usage of the commands, made from the command table: the top-level
// usage, a group's, a command's (-h, --help, PROGRAM help COMMAND);
// man.go makes the manual page from the same table.

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Usage writes the top-level usage: every command with its summary,
// under its section's heading.
func (p *Program[E]) Usage(w io.Writer) {
	fmt.Fprintf(w, "%s\n\n", p.Intro)
	fmt.Fprintf(w, "Usage: %s COMMAND [ARGUMENTS] [FLAGS]\n", p.Name)
	var rows []row
	section := ""
	for _, cmd := range p.Commands {
		if cmd.Section != "" && cmd.Section != section {
			section = cmd.Section
			rows = append(rows, row{section: section})
		}
		if !cmd.Group() {
			rows = append(rows, row{name: cmd.Name, text: cmd.Summary})
		}
	}
	writeRows(w, rows)
	if p.Note != "" {
		fmt.Fprintf(w, "\n%s\n", wrap(p.Note, 78, ""))
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's usage and an example;\nthe manual page is %s(%s).\n",
		p.Name, p.Name, p.ManSection)
}

// groupUsage writes the usage of a group: its subcommands.
func (p *Program[E]) groupUsage(w io.Writer, group *Command[E]) {
	fmt.Fprintf(w, "Usage: %s %s COMMAND [ARGUMENTS] [FLAGS]\n\n%s\n", p.Name, group.Name, Sentence(group.Summary))
	for _, para := range paragraphs(group.Text) {
		fmt.Fprintf(w, "\n%s\n", wrap(para, 78, ""))
	}
	rows := []row{{section: "Commands"}}
	for _, cmd := range p.Subcommands(group) {
		if !cmd.Group() {
			rows = append(rows, row{name: cmd.Name, text: cmd.Summary})
		}
	}
	writeRows(w, rows)
	fmt.Fprintf(w, "\nRun '%s %s COMMAND --help' for a command's usage and an example.\n", p.Name, group.Name)
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

// Subcommands returns the commands under group, in table order, those
// of its subgroups included.
func (p *Program[E]) Subcommands(group *Command[E]) []*Command[E] {
	var out []*Command[E]
	for _, cmd := range p.Commands {
		if strings.HasPrefix(cmd.Name, group.Name+" ") {
			out = append(out, cmd)
		}
	}
	return out
}

// FlagDoc is one flag or option as the usage and the manual page show
// it.
type FlagDoc struct {
	Name  string // "--config FILE", "-f ADDR"
	Usage string
}

// Flags returns a flag set with cmd's flags declared (none for a raw
// command or a group), for its usage.
func (p *Program[E]) Flags(cmd *Command[E]) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	if cmd.Setup != nil {
		cmd.Setup(p.Env, fs)
	}
	return fs
}

// FlagDocs returns the flags of cmd: from fs, the Exclusive flags last,
// or the documented options of a raw command. A flag's default is shown
// unless it is its type's zero value.
func (p *Program[E]) FlagDocs(cmd *Command[E], fs *flag.FlagSet) []FlagDoc {
	if cmd.Raw != nil {
		out := make([]FlagDoc, len(cmd.Options))
		for i, o := range cmd.Options {
			out[i] = FlagDoc(o)
		}
		return out
	}
	var out, last []FlagDoc
	fs.VisitAll(func(f *flag.Flag) {
		value, usage := flag.UnquoteUsage(f)
		switch {
		case IsBoolFlag(f):
			value = ""
		case value == "value" || value == "":
			value = "VALUE"
		}
		if !zeroDefault(f) {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		d := FlagDoc{strings.TrimSpace("--" + f.Name + " " + value), usage}
		if slices.Contains(p.Exclusive, f.Name) {
			last = append(last, d)
		} else {
			out = append(out, d)
		}
	})
	return append(out, last...)
}

// IsBoolFlag reports whether f is a boolean flag (no value).
func IsBoolFlag(f *flag.Flag) bool {
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

// Synopsis is cmd's usage line after the program's name: its name,
// arguments and flags, the Exclusive ones as one choice; a raw
// command's options come before its arguments, as sendmail(8) writes
// them, and an option documenting a list of them ("-oX, -v, ...") is
// left out.
func (p *Program[E]) Synopsis(cmd *Command[E], docs []FlagDoc) string {
	var flags, choice []string
	for _, d := range docs {
		name, _, _ := strings.Cut(d.Name, " ")
		switch {
		case cmd.Raw != nil && strings.Contains(d.Name, ","): // a list of options
		case cmd.Raw == nil && slices.Contains(p.Exclusive, strings.TrimPrefix(name, "--")):
			choice = append(choice, d.Name)
		default:
			flags = append(flags, "["+d.Name+"]")
		}
	}
	if len(choice) > 0 {
		flags = append(flags, "["+strings.Join(choice, " | ")+"]")
	}
	parts := []string{cmd.Name}
	if cmd.Raw != nil {
		parts = append(parts, flags...)
		flags = nil
	}
	if cmd.Args != "" {
		parts = append(parts, cmd.Args)
	}
	return strings.Join(append(parts, flags...), " ")
}

// WriteUsage writes the usage of a command, as -h and --help do: for a
// raw command, whose own parser answers --help.
func (p *Program[E]) WriteUsage(w io.Writer, cmd *Command[E]) {
	p.writeUsage(w, cmd, p.Flags(cmd))
}

// writeUsage writes the usage of a command: its synopsis, what it does,
// its flags (declared on fs) and examples.
func (p *Program[E]) writeUsage(w io.Writer, cmd *Command[E], fs *flag.FlagSet) {
	docs := p.FlagDocs(cmd, fs)
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n", p.Name, p.Synopsis(cmd, docs), wrap(Sentence(cmd.Summary), 78, ""))
	for _, para := range paragraphs(cmd.Text) {
		fmt.Fprintf(w, "\n%s\n", wrap(para, 78, ""))
	}
	if len(docs) > 0 {
		fmt.Fprintln(w, "\nFlags:")
		width := 0
		for _, d := range docs {
			width = max(width, len(d.Name))
		}
		for _, d := range docs {
			fmt.Fprintf(w, "  %-*s  %s\n", width, d.Name, wrap(d.Usage, 74-width, strings.Repeat(" ", width+4)))
		}
	}
	if len(cmd.Examples) > 0 {
		fmt.Fprintln(w, "\nExample:")
		for _, e := range cmd.Examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

// Sentence makes a summary a sentence: capitalised, with a period.
func Sentence(s string) string {
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
