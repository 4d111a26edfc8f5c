package main

// The manual page postern(8), made from the command table (commands.go)
// as the usage is: `postern help --man` prints it in roff (man(7)), and
// scripts/package installs it.

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"postern"
)

// roffText escapes text for roff: backslashes, and a period or quote
// that would start a request at the start of a line.
func roffText(s string) string {
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

// roffCode escapes a command line, a flag or a path, whose hyphens are
// minus signs that a reader copies.
func roffCode(s string) string {
	return strings.ReplaceAll(roffText(s), "-", `\-`)
}

// placeholder matches the placeholders of a synopsis: FILE, ID, ADDR.
var placeholder = regexp.MustCompile(`\b[A-Z][A-Z0-9_]*\b`)

// roffSynopsis is a synopsis in bold, with its placeholders in italics.
func roffSynopsis(s string) string {
	return `\fB` + placeholder.ReplaceAllString(roffCode(s), `\fI$0\fB`) + `\fR`
}

// roffParagraphs is text's paragraphs, separated by .PP.
func roffParagraphs(text string) string {
	ps := paragraphs(text)
	for i, p := range ps {
		ps[i] = roffText(p)
	}
	return strings.Join(ps, "\n.PP\n")
}

// writeManPage writes postern(8).
func writeManPage(w io.Writer, c *cli) error {
	v := postern.ReadBuild()
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p(`.\" postern(8), made by "postern help --man" from the command table; do not edit.`)
	p(`.TH POSTERN 8 "" "Postern %s" "System Administration"`, roffText(v.Version))
	p(".SH NAME")
	p(`postern \- mail server for the submission and relay of mail, and its administration commands`)
	p(".SH SYNOPSIS")
	cmds := commands()
	for i, cmd := range cmds {
		if cmd.group() {
			continue
		}
		if i > 0 {
			p(".br")
		}
		p(`\fBpostern\fR %s`, roffSynopsis(synopsis(cmd, flagDocs(cmd, cmd.flags(c)))))
	}
	p(".SH DESCRIPTION")
	p("%s", roffParagraphs(manDescription))
	p(".SH CONFIGURATION")
	p("%s", roffText(c.configText()))
	p(".PP")
	p("%s", roffText("Every key of the file is described in /usr/share/doc/postern/configuration.md; an annotated example is "+
		"/usr/share/doc/postern/examples/postern.example.toml. Unknown keys are an error. postern check reads the file as serve does."))
	p(".SH COMMANDS")
	section := ""
	for _, cmd := range cmds {
		if cmd.section != "" && cmd.section != section {
			section = cmd.section
			p(".SS %q", section)
		}
		if cmd.group() {
			p(".PP")
			p(`\fBpostern %s\fR: %s`, roffCode(cmd.name), roffText(sentence(cmd.summary)))
			for _, para := range paragraphs(cmd.text) {
				p("%s", roffText(para))
			}
			continue
		}
		writeManCommand(w, cmd, flagDocs(cmd, cmd.flags(c)))
	}
	p(".SH SIGNALS")
	p("%s", manSignals)
	p(".SH FILES")
	p(".TP\n%s\nThe configuration file (see CONFIGURATION).", roffCode(c.systemConfig))
	p(".TP\n%s\n%s", roffCode("/var/lib/postern"), roffText("The data directory (data_dir) of the packaged configuration: users.json, "+
		"the spool (queue/), the mailboxes (mail/), DKIM keys (dkim/), certificates made by Postern (tls/, acme/) and the admin socket admin.sock."))
	p(".SH ENVIRONMENT")
	p(".TP\n.B %s\nThe configuration file, when --config does not name one.", configEnv)
	p(".SH \"EXIT STATUS\"")
	p("0 on success, 1 on an error, 64 (EX_USAGE) on a command-line mistake; check exits 1 when a check failed; " +
		"queue delete, hold, release and retry exit 1 when the ids or the filter given changed nothing. " +
		"sendmail exits with the statuses of sysexits.h (see above).")
	p(".SH \"SEE ALSO\"")
	p("%s", roffText("sendmail(8), systemctl(1). The documentation in /usr/share/doc/postern/: operations.md (running Postern), "+
		"configuration.md, tls.md, authentication.md, security.md."))
	return nil
}

// flags returns a flag set with cmd's flags declared (none for a raw
// command), for its usage.
func (cmd *command) flags(c *cli) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	if cmd.setup != nil {
		cmd.setup(c, fs)
	}
	return fs
}

// writeManCommand writes one command: its synopsis, what it does, its
// flags and its examples.
func writeManCommand(w io.Writer, cmd *command, docs []flagDoc) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p(".TP")
	p(`\fBpostern\fR %s`, roffSynopsis(synopsis(cmd, docs)))
	p("%s", roffText(sentence(cmd.summary)))
	for _, para := range paragraphs(cmd.text) {
		p(".IP")
		p("%s", roffText(para))
	}
	if len(docs) > 0 || len(cmd.examples) > 0 {
		p(".RS")
	}
	for _, d := range docs {
		name, value, _ := strings.Cut(d.name, " ")
		if value != "" {
			p(".TP\n"+`\fB%s\fR \fI%s\fR`, roffCode(name), roffCode(value))
		} else {
			p(".TP\n"+`\fB%s\fR`, roffCode(name))
		}
		p("%s", roffText(d.usage))
	}
	if len(cmd.examples) > 0 {
		p(".PP\nExample:\n.RS 2\n.nf")
		for _, e := range cmd.examples {
			p("%s", roffCode(e))
		}
		p(".fi\n.RE")
	}
	if len(docs) > 0 || len(cmd.examples) > 0 {
		p(".RE")
	}
}

// manDescription is the DESCRIPTION of postern(8).
const manDescription = `Postern takes mail from users' mail programs on the submission ports (587 with STARTTLS, 465 with implicit TLS), only over TLS and only after they authenticate, and from other servers on port 25 for its own domains, judged by SPF, DKIM and DMARC. It stores every accepted message durably before it answers 250, signs it with DKIM, and delivers it to other servers (MX, MTA-STS, DANE, or a smarthost) or to local Maildirs or an LMTP server.

The postern command runs the server (serve) and administers it: users, the queue, bans, DKIM keys, reloads and graceful restarts. The commands that act on the running server (queue, ban, reload, restart, sendmail) talk to it over its admin socket, DATA/admin.sock, which only root, the server's user and admin.socket_group may use.`

// manSignals is the SIGNALS section of postern(8).
const manSignals = `.TP
.B SIGHUP
Reload the configuration file (what can change live), the certificates and the users (as postern reload).
.TP
.B SIGTERM\fR, \fBSIGINT
Stop accepting, let the sessions finish within limits.shutdown_timeout, then exit.
.TP
.B SIGUSR2
Restart gracefully (as postern restart): a new process takes the listening sockets; the old one lets its sessions finish and exits, or goes on serving if the new one fails.`
