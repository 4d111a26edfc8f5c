package main

import (
	"flag"
)

// command is one entry of the command table: a command (`postern
// check`), a group of subcommands (`postern queue`) or a subcommand
// (`postern queue show`). The usage that -h and --help print, the
// top-level usage and the manual page (help.go) are all made from it.
type command struct {
	// name is the words after "postern": "queue show".
	name string
	// args are the positional arguments as the usage line shows them:
	// "ID", "ALIAS TARGET...". minArgs and maxArgs bound their number;
	// maxArgs -1 means any.
	args             string
	minArgs, maxArgs int
	// section is the heading a top-level command or group is listed
	// under.
	section string
	// summary says what it does, in one line without a final period.
	summary string
	// text says more, in paragraphs separated by blank lines.
	text string
	// examples are command lines, each with an optional comment after
	// "  # ".
	examples []string
	// setup declares the command's flags on fs and returns what runs
	// it, with the positional arguments. Nil for a group.
	setup func(c *cli, fs *flag.FlagSet) func(args []string) error
	// raw, for a command that parses its own arguments (sendmail), runs
	// it and returns the exit status; options then documents them.
	raw     func(c *cli, args []string) int
	options []option
}

// option documents an option of a command that parses its own
// arguments.
type option struct{ name, usage string }

// group reports whether cmd is a group of subcommands.
func (cmd *command) group() bool { return cmd.setup == nil && cmd.raw == nil }

// Headings of the top-level usage and of the manual page's commands.
const (
	sectionServer = "Running the server"
	sectionUsers  = "Users"
	sectionQueue  = "The queue"
	sectionBans   = "Bans"
	sectionDKIM   = "DKIM keys"
	sectionLocal  = "Mail from local programs"
	sectionOther  = "Help and version"
)

// commands returns the command table, in the order of the usage and of
// the manual page.
func commands() []*command {
	return []*command{
		{
			name: "serve", section: sectionServer,
			summary: "run the server",
			text: "Serves the listeners of the configuration until SIGTERM or SIGINT. SIGHUP reloads the configuration, the certificates and the users (see reload); " +
				"SIGUSR2 restarts gracefully (see restart). It binds every listener before it serves any: a port that is taken, " +
				"a certificate that does not load or a configuration error stops the start with a message naming the cause.\n\n" +
				"On the embedded default's first start it creates a self-signed certificate and the user postmaster@localhost, " +
				"whose password it prints once and writes to DATA/initial-password.",
			examples: []string{
				"postern serve --config /etc/postern/postern.toml",
				"postern serve  # the embedded default: a trial on this machine",
			},
			setup: serveFlags,
		},
		{
			name: "check", section: sectionServer,
			summary: "check the configuration, the data directory, the certificates and the DNS records",
			text: "Prints one line per check (OK, WARN or FAIL) with what to fix, often the DNS record to publish. " +
				"It exits 0 only when nothing failed; it writes nothing.",
			examples: []string{
				"postern check --config /etc/postern/postern.toml",
				"postern check --json | jq '.[] | select(.status != \"OK\")'",
			},
			setup: checkFlags,
		},
		{
			name: "config", section: sectionServer,
			summary: "print the configuration in effect as TOML, every key with its value (as postconf)",
			text: "Defaults included, paths resolved, derived values filled in; what it prints loads back as the same configuration. " +
				"-n prints only the keys whose value differs from the defaults (as postconf -n), -d the defaults (as postconf -d).",
			examples: []string{
				"postern config -n --config /etc/postern/postern.toml",
				"postern config -d | grep -A3 '^\\[delivery\\]'",
			},
			setup: configPrintFlags,
		},
		{
			name: "reload", section: sectionServer,
			summary: "reload the configuration, the certificates and the users of the running server, as SIGHUP does",
			text: "The server reads its configuration file again and applies at once what can change live (aliases, send_as, DKIM keys, limits, " +
				"admission, abuse, send limits, mail_auth, delivery, smarthost, the log level); it prints each changed key with its old and new value, " +
				"and names the keys that need a restart (listeners, data_dir, hostname, [tls], ...), which it does not apply. " +
				"Waits for the outcome: it exits 1 when the file is refused (it is refused whole: the server serves on with the configuration it had) " +
				"or a certificate or the users file did not load.",
			examples: []string{
				"postern reload",
			},
			setup: reloadFlags,
		},
		{
			name: "restart", section: sectionServer,
			summary: "restart the running server gracefully, as SIGUSR2 does, and wait for the outcome",
			text: "A new process, of the binary on disk now and with the configuration file as it is now, takes over the " +
				"listening sockets without refusing a connection; the old process lets its sessions finish and exits. " +
				"restart returns once the new process serves, and exits 1 with the cause when it failed: the old process " +
				"then goes on serving. Use it after an upgrade of the binary or a change to the configuration file.",
			examples: []string{
				"postern restart --config /etc/postern/postern.toml",
			},
			setup: restartFlags,
		},
		{
			name: "user", section: sectionUsers,
			summary: "the users who may log in, and their mailboxes",
			text: "The user commands edit the users file (DATA/users.json) under its lock, or the PostgreSQL directory; " +
				"the running server is told before the command returns (one it cannot reach reads the file again within a second).",
		},
		{
			name: "user add", args: "EMAIL", minArgs: 1, maxArgs: 1,
			summary:  "add a user; the password is read from stdin, or prompted for twice on a terminal",
			examples: []string{"postern user add alice@example.com", "printf '%s\\n' \"$PASSWORD\" | postern user add alice@example.com"},
			setup:    userAddFlags,
		},
		{
			name: "user passwd", args: "EMAIL", minArgs: 1, maxArgs: 1,
			summary:  "change a user's password; the password is read from stdin, or prompted for twice on a terminal",
			examples: []string{"postern user passwd alice@example.com"},
			setup:    userPasswdFlags,
		},
		{
			name: "user delete", args: "EMAIL", minArgs: 1, maxArgs: 1,
			summary:  "delete a user (the mailbox stays on disk)",
			examples: []string{"postern user delete alice@example.com"},
			setup:    userDeleteFlags,
		},
		{
			name:     "user list",
			summary:  "list the users",
			examples: []string{"postern user list"},
			setup:    userListFlags,
		},
		{
			name:    "user alias",
			summary: "aliases kept in the PostgreSQL directory (with the users file they are [aliases] in the configuration)",
		},
		{
			name: "user alias add", args: "ALIAS TARGET...", minArgs: 2, maxArgs: -1,
			summary:  "make ALIAS deliver to each TARGET",
			examples: []string{"postern user alias add info@example.com alice@example.com bob@example.com"},
			setup:    userDirectoryFlags("alias", "add"),
		},
		{
			name: "user alias delete", args: "ALIAS [TARGET...]", minArgs: 1, maxArgs: -1,
			summary:  "delete an alias, or only the targets named",
			examples: []string{"postern user alias delete info@example.com bob@example.com"},
			setup:    userDirectoryFlags("alias", "delete"),
		},
		{
			name:     "user alias list",
			summary:  "list the aliases and their targets",
			examples: []string{"postern user alias list"},
			setup:    userDirectoryFlags("alias", "list"),
		},
		{
			name:    "user sendas",
			summary: "send-as grants kept in the PostgreSQL directory (with the users file they are [send_as] in the configuration)",
		},
		{
			name: "user sendas add", args: "USER ADDRESS|DOMAIN...", minArgs: 2, maxArgs: -1,
			summary:  "let USER send as each address, or as any address of each domain",
			examples: []string{"postern user sendas add alice@example.com sales@example.com example.org"},
			setup:    userDirectoryFlags("sendas", "add"),
		},
		{
			name: "user sendas delete", args: "USER [ADDRESS|DOMAIN...]", minArgs: 1, maxArgs: -1,
			summary:  "withdraw the grants named, or all of USER's",
			examples: []string{"postern user sendas delete alice@example.com example.org"},
			setup:    userDirectoryFlags("sendas", "delete"),
		},
		{
			name:     "user sendas list",
			summary:  "list the send-as grants",
			examples: []string{"postern user sendas list"},
			setup:    userDirectoryFlags("sendas", "list"),
		},
		{
			name: "queue", section: sectionQueue,
			summary: "the messages waiting for delivery, on the running server",
			text: "The queue commands act through the running server, over its admin socket (DATA/admin.sock): the server " +
				"owns the spool. When it is not running they say so and exit 1.\n\n" +
				"delete, hold, release and retry take ids, a filter (--from, --to, --domain, --state) or --all, and print " +
				"the count. A filter picks recipients: --domain down.example holds the recipients at down.example and leaves " +
				"the other recipients of the same messages alone. A change of more than 5 messages asks first on a terminal, " +
				"and without one is refused, unless --yes. By id or by filter, a command that changes nothing exits 1.",
		},
		{
			name:    "queue list",
			summary: "list the messages waiting, with each recipient's state; the filters pick recipients",
			examples: []string{
				"postern queue list",
				"postern queue list --domain example.org --state deferred",
				"postern queue list --json | jq -r '.[].id'",
			},
			setup: queueFlags("list"),
		},
		{
			name: "queue show", args: "ID", minArgs: 1, maxArgs: 1,
			summary:  "show one message: its envelope, each recipient's state and last error, its header section",
			examples: []string{"postern queue show 0ab1c2d3e4f5g6h7i8j9"},
			setup:    queueFlags("show"),
		},
		{
			name: "queue cat", args: "ID", minArgs: 1, maxArgs: 1,
			summary: "print a message as the spool holds it, headers the server added included (as postcat)",
			text: "Byte for byte into a file or a pipe; on a terminal, control characters are shown (\\x1b, \\r), " +
				"not obeyed, so that a hostile message cannot rewrite the screen.",
			examples: []string{"postern queue cat 0ab1c2d3e4f5g6h7i8j9 | less", "postern queue cat 0ab1c2d3e4f5g6h7i8j9 --header"},
			setup:    queueFlags("cat"),
		},
		{
			name: "queue delete", args: "[ID...]", maxArgs: -1,
			summary: "stop delivering messages, by id, by filter or --all; no bounce is sent",
			examples: []string{
				"postern queue delete 0ab1c2d3e4f5g6h7i8j9",
				"postern queue delete --from spammer@example.com --yes",
			},
			setup: queueFlags("delete"),
		},
		{
			name: "queue hold", args: "[ID...]", maxArgs: -1,
			summary: "hold messages, by id, by filter or --all: nothing is tried for them until they are released",
			examples: []string{
				"postern queue hold --domain example.org",
				"postern queue hold 0ab1c2d3e4f5g6h7i8j9",
			},
			setup: queueFlags("hold"),
		},
		{
			name: "queue release", args: "[ID...]", maxArgs: -1,
			summary: "deliver held messages now, by id, by filter or --all (held by an operator, a send limit or a milter)",
			examples: []string{
				"postern queue release 0ab1c2d3e4f5g6h7i8j9",
				"postern queue release --domain example.org",
			},
			setup: queueFlags("release"),
		},
		{
			name: "queue retry", args: "[ID...]", maxArgs: -1,
			summary: "try deferred messages now, by id, by filter or --all; it never asks",
			examples: []string{
				"postern queue retry 0ab1c2d3e4f5g6h7i8j9",
				"postern queue retry --domain example.org",
			},
			setup: queueFlags("retry"),
		},
		{
			name:     "queue flush",
			summary:  "try every deferred recipient now (retry --all, as postqueue -f)",
			examples: []string{"postern queue flush"},
			setup:    queueFlags("flush"),
		},
		{
			name: "ban", section: sectionBans,
			summary: "addresses and ranges refused when they connect, before any TLS",
			text:    "The ban commands ask the running server over its admin socket, so that a ban lands in the store the server uses (memory, or Redis shared by every node).",
		},
		{
			name: "ban add", args: "ADDR|CIDR", minArgs: 1, maxArgs: 1,
			summary:  "ban an address or a range",
			examples: []string{"postern ban add 192.0.2.7 --for 48h --reason 'password guessing'", "postern ban add 2001:db8::/48"},
			setup:    banFlags("add"),
		},
		{
			name:     "ban list",
			summary:  "list the bans: why, until when, how many strikes",
			examples: []string{"postern ban list"},
			setup:    banFlags("list"),
		},
		{
			name: "ban show", args: "ADDR", minArgs: 1, maxArgs: 1,
			summary:  "show the ban that covers an address, if any",
			examples: []string{"postern ban show 192.0.2.7"},
			setup:    banFlags("show"),
		},
		{
			name: "ban delete", args: "ADDR|CIDR", minArgs: 1, maxArgs: 1,
			summary:  "lift the ban of exactly this address or range",
			examples: []string{"postern ban delete 192.0.2.7"},
			setup:    banFlags("delete"),
		},
		{
			name: "dkim", section: sectionDKIM,
			summary: "the keys that sign outgoing mail (DKIM, RFC 6376)",
		},
		{
			name: "dkim keygen", args: "DOMAIN", minArgs: 1, maxArgs: 1,
			summary: "make a new DKIM key for DOMAIN and print the DNS record to publish",
			text: "Writes the private key to DATA/dkim/DOMAIN/SELECTOR.ALGORITHM.pem (mode 0600). " +
				"Publish the record, then run postern reload: the server signs with the key from then on.",
			examples: []string{"postern dkim keygen example.com", "postern dkim keygen example.com --algorithm ed25519 --selector s2"},
			setup:    dkimKeygenFlags,
		},
		{
			name: "sendmail", args: "[RCPT...]", section: sectionLocal,
			summary: "queue a message read from stdin, as sendmail(8) does for local programs",
			text: "The message goes to the running server over its admin socket, which spools it before sendmail exits 0. " +
				"A link named sendmail to the binary is this command. " +
				"Without -C, --config or --data it finds the configuration as every command does. " +
				"Exit statuses are those of sysexits.h: 64 a bad command line, 65 a bad message or no recipient, " +
				"69 the server is not running, 75 try again later, 77 no permission, 78 the configuration does not load.",
			examples: []string{"printf 'To: alice@example.com\\nSubject: backup\\n\\ndone\\n' | postern sendmail -t -i"},
			raw:      func(c *cli, args []string) int { return c.sendmail(args) },
			options:  sendmailOptions(),
		},
		{
			name: "version", section: sectionOther,
			summary:  "print the version, the revision it was built from and the Go version",
			examples: []string{"postern version"},
			setup:    versionFlags,
		},
		{
			name: "help", args: "[COMMAND...]", maxArgs: -1, section: sectionOther,
			summary:  "print the usage of a command, or with --man the manual page postern(8)",
			examples: []string{"postern help queue list", "postern help --man | man -l -"},
			setup:    helpFlags,
		},
	}
}
