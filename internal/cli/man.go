package cli

// The manual page, made from the command table as the usage is (man(7)
// roff): a SYNOPSIS line and a COMMANDS entry for each command, between
// sections the program writes.

import (
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Manual is what a manual page says besides the command table.
type Manual struct {
	// Head is the page's first lines, in roff: a comment, .TH and the
	// NAME section.
	Head string
	// Before are the sections between SYNOPSIS and COMMANDS; After,
	// those after COMMANDS.
	Before, After []Section
}

// Section is a section of a manual page: its heading and its body in
// roff (RoffText and RoffParagraphs escape text for it).
type Section struct{ Heading, Body string }

// RoffText escapes text for roff: backslashes, and a period or quote
// that would start a request at the start of a line.
func RoffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	var b strings.Builder
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			b.WriteByte('\n')
		}
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			b.WriteString(`\&`)
		}
		b.WriteString(line)
	}
	return b.String()
}

// RoffCode escapes a command line, a flag or a path, whose hyphens are
// minus signs that a reader copies.
func RoffCode(s string) string {
	return strings.ReplaceAll(RoffText(s), "-", `\-`)
}

// placeholder matches the placeholders of a synopsis: FILE, ID, ADDR.
var placeholder = regexp.MustCompile(`\b[A-Z][A-Z0-9_]*\b`)

// roffSynopsis is a synopsis in bold, with its placeholders in italics.
func roffSynopsis(s string) string {
	return `\fB` + placeholder.ReplaceAllString(RoffCode(s), `\fI$0\fB`) + `\fR`
}

// RoffParagraphs is text's paragraphs (separated by blank lines),
// escaped, separated by .PP.
func RoffParagraphs(text string) string {
	ps := paragraphs(text)
	for i, p := range ps {
		ps[i] = RoffText(p)
	}
	return strings.Join(ps, "\n.PP\n")
}

// WriteManual writes the manual page: m.Head, the SYNOPSIS of every
// command, m.Before, the COMMANDS under their sections' headings, and
// m.After.
func (p *Program[E]) WriteManual(w io.Writer, m Manual) error {
	pr := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	pr("%s", m.Head)
	pr(".SH SYNOPSIS")
	for i, cmd := range p.Commands {
		if cmd.Group() {
			continue
		}
		if i > 0 {
			pr(".br")
		}
		pr(`\fB%s\fR %s`, p.Name, roffSynopsis(p.Synopsis(cmd, p.FlagDocs(cmd, p.Flags(cmd)))))
	}
	writeSections(w, m.Before)
	pr(".SH COMMANDS")
	section := ""
	for _, cmd := range p.Commands {
		if cmd.Section != "" && cmd.Section != section {
			section = cmd.Section
			pr(".SS %q", section)
		}
		if cmd.Group() {
			pr(".PP")
			pr(`\fB%s %s\fR: %s`, p.Name, RoffCode(cmd.Name), RoffText(Sentence(cmd.Summary)))
			for _, para := range paragraphs(cmd.Text) {
				pr("%s", RoffText(para))
			}
			continue
		}
		p.writeManCommand(w, cmd, p.FlagDocs(cmd, p.Flags(cmd)))
	}
	writeSections(w, m.After)
	return nil
}

// writeSections writes sections, quoting a heading of several words.
func writeSections(w io.Writer, ss []Section) {
	for _, s := range ss {
		h := s.Heading
		if strings.Contains(h, " ") {
			h = `"` + h + `"`
		}
		fmt.Fprintf(w, ".SH %s\n%s\n", h, s.Body)
	}
}

// writeManCommand writes one command: its synopsis, what it does, its
// flags and its examples.
func (p *Program[E]) writeManCommand(w io.Writer, cmd *Command[E], docs []FlagDoc) {
	pr := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	pr(".TP")
	pr(`\fB%s\fR %s`, p.Name, roffSynopsis(p.Synopsis(cmd, docs)))
	pr("%s", RoffText(Sentence(cmd.Summary)))
	for _, para := range paragraphs(cmd.Text) {
		pr(".IP")
		pr("%s", RoffText(para))
	}
	if len(docs) > 0 || len(cmd.Examples) > 0 {
		pr(".RS")
	}
	for _, d := range docs {
		name, value, _ := strings.Cut(d.Name, " ")
		if value != "" {
			pr(".TP\n"+`\fB%s\fR \fI%s\fR`, RoffCode(name), RoffCode(value))
		} else {
			pr(".TP\n"+`\fB%s\fR`, RoffCode(name))
		}
		pr("%s", RoffText(d.Usage))
	}
	if len(cmd.Examples) > 0 {
		pr(".PP\nExample:\n.RS 2\n.nf")
		for _, e := range cmd.Examples {
			pr("%s", RoffCode(e))
		}
		pr(".fi\n.RE")
	}
	if len(docs) > 0 || len(cmd.Examples) > 0 {
		pr(".RE")
	}
}
