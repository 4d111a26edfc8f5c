package main

// The command table: Postern's commands, with their synopses, help
// texts and examples, and the functions that run them. internal/cli
// runs it and makes the usage and the manual page from it.

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
			Name: "serve", Section: sectionServer,
			Summary: "run the server",
			Text: "Serves the listeners of the configuration until SIGTERM or SIGINT. SIGHUP reloads the configuration, the certificates and the users (see reload); " +
				"SIGUSR2 restarts gracefully (see restart). It binds every listener before it serves any: a port that is taken, " +
				"a certificate that does not load or a configuration error stops the start with a message naming the cause.\n\n" +
				"On the embedded default's first start it creates a self-signed certificate and the user postmaster@localhost, " +
				"whose password it prints once and writes to DATA/initial-password.",
			Examples: []string{
				"postern serve --config /etc/postern/postern.toml",
				"postern serve  # the embedded default: a trial on this machine",
			},
			Setup: serveFlags,
		},
		{
			Name: "check", Section: sectionServer,
			Summary: "check the configuration, the data directory, the certificates and the DNS records",
			Text: "Prints one line per check (OK, WARN or FAIL) with what to fix, often the DNS record to publish. " +
				"It exits 0 only when nothing failed; it writes nothing.",
			Examples: []string{
				"postern check --config /etc/postern/postern.toml",
				"postern check --json | jq '.[] | select(.status != \"OK\")'",
			},
			Setup: checkFlags,
		},
		{
			Name: "config", Section: sectionServer,
			Summary: "print the configuration in effect as TOML, every key with its value (as postconf)",
			Text: "Defaults included, paths resolved, derived values filled in; what it prints loads back as the same configuration. " +
				"-n prints only the keys whose value differs from the defaults (as postconf -n), -d the defaults (as postconf -d).",
			Examples: []string{
				"postern config -n --config /etc/postern/postern.toml",
				"postern config -d | grep -A3 '^\\[delivery\\]'",
			},
			Setup: configPrintFlags,
		},
		{
			Name: "reload", Section: sectionServer,
			Summary: "reload the configuration, the certificates and the users of the running server, as SIGHUP does",
			Text: "The server reads its configuration file again and applies at once what can change live (aliases, send_as, DKIM keys, limits, " +
				"admission, abuse, send limits, mail_auth, delivery, smarthost, the log level); it prints each changed key with its old and new value, " +
				"and names the keys that need a restart (listeners, data_dir, hostname, [tls], ...), which it does not apply. " +
				"Waits for the outcome: it exits 1 when the file is refused (it is refused whole: the server serves on with the configuration it had) " +
				"or a certificate or the users file did not load.",
			Examples: []string{
				"postern reload",
			},
			Setup: reloadFlags,
		},
		{
			Name: "restart", Section: sectionServer,
			Summary: "restart the running server gracefully, as SIGUSR2 does, and wait for the outcome",
			Text: "A new process, of the binary on disk now and with the configuration file as it is now, takes over the " +
				"listening sockets without refusing a connection; the old process lets its sessions finish and exits. " +
				"restart returns once the new process serves, and exits 1 with the cause when it failed: the old process " +
				"then goes on serving. Use it after an upgrade of the binary or a change to the configuration file.",
			Examples: []string{
				"postern restart --config /etc/postern/postern.toml",
			},
			Setup: restartFlags,
		},
		{
			Name: "user", Section: sectionUsers,
			Summary: "the users who may log in, and their mailboxes",
			Text: "The user commands edit the users file (DATA/users.json) under its lock, or the PostgreSQL directory; " +
				"the running server is told before the command returns (one it cannot reach reads the file again within a second).",
		},
		{
			Name: "user add", Args: "EMAIL", MinArgs: 1, MaxArgs: 1,
			Summary:  "add a user; the password is read from stdin, or prompted for twice on a terminal",
			Examples: []string{"postern user add alice@example.com", "printf '%s\\n' \"$PASSWORD\" | postern user add alice@example.com"},
			Setup:    userAddFlags,
		},
		{
			Name: "user passwd", Args: "EMAIL", MinArgs: 1, MaxArgs: 1,
			Summary:  "change a user's password; the password is read from stdin, or prompted for twice on a terminal",
			Examples: []string{"postern user passwd alice@example.com"},
			Setup:    userPasswdFlags,
		},
		{
			Name: "user delete", Args: "EMAIL", MinArgs: 1, MaxArgs: 1,
			Summary:  "delete a user (the mailbox stays on disk)",
			Examples: []string{"postern user delete alice@example.com"},
			Setup:    userDeleteFlags,
		},
		{
			Name:     "user list",
			Summary:  "list the users",
			Examples: []string{"postern user list"},
			Setup:    userListFlags,
		},
		{
			Name:    "user alias",
			Summary: "aliases kept in the PostgreSQL directory (with the users file they are [aliases] in the configuration)",
		},
		{
			Name: "user alias add", Args: "ALIAS TARGET...", MinArgs: 2, MaxArgs: -1,
			Summary:  "make ALIAS deliver to each TARGET",
			Examples: []string{"postern user alias add info@example.com alice@example.com bob@example.com"},
			Setup:    userDirectoryFlags("alias", "add"),
		},
		{
			Name: "user alias delete", Args: "ALIAS [TARGET...]", MinArgs: 1, MaxArgs: -1,
			Summary:  "delete an alias, or only the targets named",
			Examples: []string{"postern user alias delete info@example.com bob@example.com"},
			Setup:    userDirectoryFlags("alias", "delete"),
		},
		{
			Name:     "user alias list",
			Summary:  "list the aliases and their targets",
			Examples: []string{"postern user alias list"},
			Setup:    userDirectoryFlags("alias", "list"),
		},
		{
			Name:    "user sendas",
			Summary: "send-as grants kept in the PostgreSQL directory (with the users file they are [send_as] in the configuration)",
		},
		{
			Name: "user sendas add", Args: "USER ADDRESS|DOMAIN...", MinArgs: 2, MaxArgs: -1,
			Summary:  "let USER send as each address, or as any address of each domain",
			Examples: []string{"postern user sendas add alice@example.com sales@example.com example.org"},
			Setup:    userDirectoryFlags("sendas", "add"),
		},
		{
			Name: "user sendas delete", Args: "USER [ADDRESS|DOMAIN...]", MinArgs: 1, MaxArgs: -1,
			Summary:  "withdraw the grants named, or all of USER's",
			Examples: []string{"postern user sendas delete alice@example.com example.org"},
			Setup:    userDirectoryFlags("sendas", "delete"),
		},
		{
			Name:     "user sendas list",
			Summary:  "list the send-as grants",
			Examples: []string{"postern user sendas list"},
			Setup:    userDirectoryFlags("sendas", "list"),
		},
		{
			Name: "queue", Section: sectionQueue,
			Summary: "the messages waiting for delivery, on the running server",
			Text: "The queue commands act through the running server, over its admin socket (DATA/admin.sock): the server " +
				"owns the spool. When it is not running they say so and exit 1.\n\n" +
				"delete, hold, release and retry take ids, a filter (--from, --to, --domain, --state) or --all, and print " +
				"the count. A filter picks recipients: --domain down.example holds the recipients at down.example and leaves " +
				"the other recipients of the same messages alone. A change of more than 5 messages asks first on a terminal, " +
				"and without one is refused, unless --yes. By id or by filter, a command that changes nothing exits 1.",
		},
		{
			Name:    "queue list",
			Summary: "list the messages waiting, with each recipient's state; the filters pick recipients",
			Examples: []string{
				"postern queue list",
				"postern queue list --domain example.org --state deferred",
				"postern queue list --json | jq -r '.[].id'",
			},
			Setup: queueFlags("list"),
		},
		{
			Name: "queue show", Args: "ID", MinArgs: 1, MaxArgs: 1,
			Summary:  "show one message: its envelope, each recipient's state and last error, its header section",
			Examples: []string{"postern queue show 0ab1c2d3e4f5g6h7i8j9"},
			Setup:    queueFlags("show"),
		},
		{
			Name: "queue cat", Args: "ID", MinArgs: 1, MaxArgs: 1,
			Summary: "print a message as the spool holds it, headers the server added included (as postcat)",
			Text: "Byte for byte into a file or a pipe; on a terminal, control characters are shown (\\x1b, \\r), " +
				"not obeyed, so that a hostile message cannot rewrite the screen.",
			Examples: []string{"postern queue cat 0ab1c2d3e4f5g6h7i8j9 | less", "postern queue cat 0ab1c2d3e4f5g6h7i8j9 --header"},
			Setup:    queueFlags("cat"),
		},
		{
			Name: "queue delete", Args: "[ID...]", MaxArgs: -1,
			Summary: "stop delivering messages, by id, by filter or --all; no bounce is sent",
			Examples: []string{
				"postern queue delete 0ab1c2d3e4f5g6h7i8j9",
				"postern queue delete --from spammer@example.com --yes",
			},
			Setup: queueFlags("delete"),
		},
		{
			Name: "queue hold", Args: "[ID...]", MaxArgs: -1,
			Summary: "hold messages, by id, by filter or --all: nothing is tried for them until they are released",
			Examples: []string{
				"postern queue hold --domain example.org",
				"postern queue hold 0ab1c2d3e4f5g6h7i8j9",
			},
			Setup: queueFlags("hold"),
		},
		{
			Name: "queue release", Args: "[ID...]", MaxArgs: -1,
			Summary: "deliver held messages now, by id, by filter or --all (held by an operator, a send limit or a milter)",
			Examples: []string{
				"postern queue release 0ab1c2d3e4f5g6h7i8j9",
				"postern queue release --domain example.org",
			},
			Setup: queueFlags("release"),
		},
		{
			Name: "queue retry", Args: "[ID...]", MaxArgs: -1,
			Summary: "try deferred messages now, by id, by filter or --all; it never asks",
			Examples: []string{
				"postern queue retry 0ab1c2d3e4f5g6h7i8j9",
				"postern queue retry --domain example.org",
			},
			Setup: queueFlags("retry"),
		},
		{
			Name:     "queue flush",
			Summary:  "try every deferred recipient now (retry --all, as postqueue -f)",
			Examples: []string{"postern queue flush"},
			Setup:    queueFlags("flush"),
		},
		{
			Name: "ban", Section: sectionBans,
			Summary: "addresses and ranges refused when they connect, before any TLS",
			Text:    "The ban commands ask the running server over its admin socket, so that a ban lands in the store the server uses (memory, or Redis shared by every node).",
		},
		{
			Name: "ban add", Args: "ADDR|CIDR", MinArgs: 1, MaxArgs: 1,
			Summary:  "ban an address or a range",
			Examples: []string{"postern ban add 192.0.2.7 --for 48h --reason 'password guessing'", "postern ban add 2001:db8::/48"},
			Setup:    banFlags("add"),
		},
		{
			Name:     "ban list",
			Summary:  "list the bans: why, until when, how many strikes",
			Examples: []string{"postern ban list"},
			Setup:    banFlags("list"),
		},
		{
			Name: "ban show", Args: "ADDR", MinArgs: 1, MaxArgs: 1,
			Summary:  "show the ban that covers an address, if any",
			Examples: []string{"postern ban show 192.0.2.7"},
			Setup:    banFlags("show"),
		},
		{
			Name: "ban delete", Args: "ADDR|CIDR", MinArgs: 1, MaxArgs: 1,
			Summary:  "lift the ban of exactly this address or range",
			Examples: []string{"postern ban delete 192.0.2.7"},
			Setup:    banFlags("delete"),
		},
		{
			Name: "dkim", Section: sectionDKIM,
			Summary: "the keys that sign outgoing mail (DKIM, RFC 6376)",
		},
		{
			Name: "dkim keygen", Args: "DOMAIN", MinArgs: 1, MaxArgs: 1,
			Summary: "make a new DKIM key for DOMAIN and print the DNS record to publish",
			Text: "Writes the private key to DATA/dkim/DOMAIN/SELECTOR.ALGORITHM.pem (mode 0600). " +
				"Publish the record, then run postern reload: the server signs with the key from then on.",
			Examples: []string{"postern dkim keygen example.com", "postern dkim keygen example.com --algorithm ed25519 --selector s2"},
			Setup:    dkimKeygenFlags,
		},
		{
			Name: "sendmail", Args: "[RCPT...]", Section: sectionLocal,
			Summary: "queue a message read from stdin, as sendmail(8) does for local programs",
			Text: "The message goes to the running server over its admin socket, which spools it before sendmail exits 0. " +
				"A link named sendmail to the binary is this command. " +
				"Without -C, --config or --data it finds the configuration as every command does. " +
				"Exit statuses are those of sysexits.h: 64 a bad command line, 65 a bad message or no recipient, " +
				"69 the server is not running, 75 try again later, 77 no permission, 78 the configuration does not load.",
			Examples: []string{"printf 'To: alice@example.com\\nSubject: backup\\n\\ndone\\n' | postern sendmail -t -i"},
			Raw:      func(c *cli, args []string) int { return c.sendmail(args) },
			Options:  sendmailOptions(),
		},
		{
			Name: "version", Section: sectionOther,
			Summary:  "print the version, the revision it was built from and the Go version",
			Examples: []string{"postern version"},
			Setup:    versionFlags,
		},
		{
			Name: "help", Args: "[COMMAND...]", MaxArgs: -1, Section: sectionOther,
			Summary:  "print the usage of a command, or with --man the manual page postern(8)",
			Examples: []string{"postern help queue list", "postern help --man | man -l -"},
			Setup:    helpFlags,
		},
	}
}
