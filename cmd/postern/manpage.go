package main

// The help command, and what postern(8) says besides the command table:
// internal/cli makes the usage and the manual page from the table;
// `postern help --man` prints the page in roff (man(7)), and
// scripts/package installs it.

import (
	"flag"
	"io"

	"postern"
	cmdline "postern/internal/cli"
)

// configText says how every command finds its configuration.
func (c *cli) configText() string {
	return "Every command finds the configuration the same way: the file --config names; else the file $" + configEnv +
		" names; else " + c.systemConfig + " if it exists; else the embedded default, a trial on this machine " +
		"(data in ./" + devDataDir + " or --data DIR, the domain localhost, ports 2525, 2587, 2465 and 2580 on 127.0.0.1), " +
		"which the command then says on stderr."
}

// helpFlags is the help command: the usage of a command or a group, the
// top-level usage, or the manual page.
func helpFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	man := fs.Bool("man", false, "print the manual page postern(8), in roff")
	return func(args []string) error {
		if *man {
			if len(args) > 0 {
				return usageError("help: --man takes no command")
			}
			return writeManPage(c.stdout, c)
		}
		if len(args) == 0 {
			c.program().Usage(c.stdout)
			return nil
		}
		return c.exec(append(args, "--help"))
	}
}

// writeManPage writes postern(8).
func writeManPage(w io.Writer, c *cli) error {
	text, code := cmdline.RoffText, cmdline.RoffCode
	return c.program().WriteManual(w, cmdline.Manual{
		Head: `.\" postern(8), made by "postern help --man" from the command table; do not edit.` + "\n" +
			`.TH POSTERN 8 "" "Postern ` + text(postern.ReadBuild().Version) + `" "System Administration"` + "\n" +
			".SH NAME\n" +
			`postern \- mail server for the submission and relay of mail, and its administration commands`,
		Before: []cmdline.Section{
			{Heading: "DESCRIPTION", Body: cmdline.RoffParagraphs(manDescription)},
			{Heading: "CONFIGURATION", Body: text(c.configText()) + "\n.PP\n" +
				text("Every key of the file is described in /usr/share/doc/postern/configuration.md; an annotated example is "+
					"/usr/share/doc/postern/examples/postern.example.toml. Unknown keys are an error. postern check reads the file as serve does.")},
		},
		After: []cmdline.Section{
			{Heading: "SIGNALS", Body: manSignals},
			{Heading: "FILES", Body: ".TP\n" + code(c.systemConfig) + "\nThe configuration file (see CONFIGURATION).\n" +
				".TP\n" + code("/var/lib/postern") + "\n" + text("The data directory (data_dir) of the packaged configuration: users.json, "+
				"the spool (queue/), the mailboxes (mail/), DKIM keys (dkim/), certificates made by Postern (tls/, acme/) and the admin socket admin.sock.")},
			{Heading: "ENVIRONMENT", Body: ".TP\n.B " + configEnv + "\nThe configuration file, when --config does not name one."},
			{Heading: "EXIT STATUS", Body: "0 on success, 1 on an error, 64 (EX_USAGE) on a command-line mistake; check exits 1 when a check failed; " +
				"queue delete, hold, release and retry exit 1 when the ids or the filter given changed nothing. " +
				"sendmail exits with the statuses of sysexits.h (see above)."},
			{Heading: "SEE ALSO", Body: text("sendmail(8), systemctl(1). The documentation in /usr/share/doc/postern/: operations.md (running Postern), " +
				"configuration.md, tls.md, authentication.md, security.md.")},
		},
	})
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
