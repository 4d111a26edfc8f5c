package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"postern/internal/addrkey"
	"postern/internal/admin"
	"postern/internal/config"
	"postern/internal/fsutil"
	"postern/internal/server"
	"postern/internal/userdb"
)

// The user commands edit the user file directly (under its lock), or
// the PostgreSQL directory; then they tell a running server, which
// reads the file before the command returns (tellServer). --cram-md5 (add, passwd) also keeps the
// password's CRAM-MD5 secret; without it passwd removes any kept before.

// userAddFlags is `postern user add`.
func userAddFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	cram := fs.Bool("cram-md5", false, "also keep the password's CRAM-MD5 secret, for clients that log in with CRAM-MD5")
	force := fs.Bool("force", false, fmt.Sprintf("accept a password shorter than %d characters", minPasswordLength))
	return func(pos []string) error { return userSetPassword(c, cf, "add", pos[0], *cram, *force) }
}

// userPasswdFlags is `postern user passwd`.
func userPasswdFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	cram := fs.Bool("cram-md5", false, "also keep the password's CRAM-MD5 secret; without it, one kept before is removed")
	force := fs.Bool("force", false, fmt.Sprintf("accept a password shorter than %d characters", minPasswordLength))
	return func(pos []string) error { return userSetPassword(c, cf, "passwd", pos[0], *cram, *force) }
}

// minPasswordLength is the fewest characters `user add` and `user
// passwd` accept without --force (NIST SP 800-63B §5.1.1.1).
const minPasswordLength = 8

// userSetPassword adds a user (verb "add") or changes a user's password
// ("passwd"); force accepts a password shorter than minPasswordLength.
func userSetPassword(c *cli, cf *configFlags, verb, addr string, cram, force bool) error {
	cfg, db, err := openUserDB(cf, true)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := userdb.NormalizeAddress(addr); err != nil {
		return fmt.Errorf("user %s: %q is not an address: write it as local@domain, as in alice@%s", verb, addr, cfg.LocalDomains[0])
	}
	if verb == "add" {
		if _, domain, _ := strings.Cut(addr, "@"); !isLocalDomain(cfg, domain) {
			return fmt.Errorf("user add: %q is not a local domain (local_domains: %s)", domain, strings.Join(cfg.LocalDomains, ", "))
		}
	}
	pw, err := readPassword(c.stdin, c.stdout)
	if err != nil {
		return err
	}
	if n := utf8.RuneCountInString(pw); n < minPasswordLength && !force {
		return fmt.Errorf("user %s: the password has %d characters; at least %d are required (--force sets it anyway)", verb, n, minPasswordLength)
	}
	opts := userdb.SetOptions{CRAMMD5: cram}
	if verb == "add" {
		err = db.Add(addr, pw, opts)
	} else {
		err = db.SetPassword(addr, pw, opts)
	}
	if err != nil {
		return userError(verb, addr, err)
	}
	tellServer(cfg, c.stdout)
	fmt.Fprintf(c.stdout, "%s %s\n", map[string]string{"add": "added", "passwd": "password changed for"}[verb], addr)
	return nil
}

// userError says what went wrong with a user command, without the
// package prefixes of the errors it wraps.
func userError(verb, addr string, err error) error {
	switch {
	case errors.Is(err, userdb.ErrExists):
		return fmt.Errorf("user %s: %s exists already (postern user passwd %s sets a new password)", verb, addr, addr)
	case errors.Is(err, userdb.ErrNotFound):
		return fmt.Errorf("user %s: there is no user %s (postern user list shows them)", verb, addr)
	case errors.Is(err, userdb.ErrInvalidPassword):
		return fmt.Errorf("user %s: %s", verb, strings.TrimSuffix(strings.TrimPrefix(err.Error(), "userdb: "), ": "+userdb.ErrInvalidPassword.Error()))
	}
	return err
}

// tellServer makes the running server read the users file now, so that
// the change holds for the next login (a deleted user is refused at
// once); without a running server there is nothing to tell. With
// PostgreSQL the server asks the database at each login anyway.
func tellServer(cfg *config.Config, stdout io.Writer) {
	if cfg.Directory.Backend == config.DirectoryPostgres {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := (&admin.Client{SocketPath: cfg.AdminSocket()}).ReloadUsers(ctx)
	// ErrNotFound: a server older than this command, without the call.
	if err != nil && !errors.Is(err, admin.ErrNotRunning) && !errors.Is(err, admin.ErrNotFound) {
		fmt.Fprintf(stdout, "warning: the running server was not told (%v); it reads the users file within a second\n", err)
	}
}

// userDeleteFlags is `postern user delete`.
func userDeleteFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	return func(pos []string) error {
		cfg, db, err := openUserDB(cf, true)
		if err != nil {
			return err
		}
		defer db.Close()
		if err := db.Delete(pos[0]); err != nil {
			return userError("delete", pos[0], err)
		}
		tellServer(cfg, c.stdout)
		fmt.Fprintf(c.stdout, "deleted %s\n", pos[0])
		return nil
	}
}

// userListFlags is `postern user list`.
func userListFlags(c *cli, fs *flag.FlagSet) func([]string) error {
	cf := c.configFlags(fs)
	return func([]string) error {
		_, db, err := openUserDB(cf, false)
		if err != nil || db == nil {
			return err
		}
		defer db.Close()
		users, err := db.ListUsers(context.Background())
		if err != nil {
			return err
		}
		for _, u := range users {
			fmt.Fprintln(c.stdout, u.Address)
		}
		return nil
	}
}

// openUserDB opens the user directory for a user command; write is
// false for a command that only reads. As root, for a server that runs
// as another user, what is made here is given to that user (privs.go).
// A command that only reads creates nothing: with the users file, a
// missing data directory is an error, and a missing users file has no
// users (a nil DB).
func openUserDB(cf *configFlags, write bool) (*config.Config, *userdb.DB, error) {
	cfg, err := cf.load()
	if err != nil {
		return nil, nil, err
	}
	if cfg.Directory.Backend != config.DirectoryPostgres {
		if !write {
			if _, err := os.Stat(cfg.DataDir); err != nil {
				return nil, nil, fmt.Errorf("user: data directory: %w (the server has not run with this configuration, or this is not its configuration)", err)
			}
			if _, err := os.Stat(cfg.UsersFile()); errors.Is(err, fs.ErrNotExist) {
				return cfg, nil, nil
			}
		} else {
			owner, err := dataOwner(cfg)
			if err != nil {
				return nil, nil, fmt.Errorf("user: %w", err)
			}
			if err := fsutil.MkdirAll(cfg.DataDir, 0o700, owner); err != nil {
				return nil, nil, fmt.Errorf("user: data directory: %w", err)
			}
		}
	}
	db, err := server.OpenUsers(cfg, slog.New(slog.NewTextHandler(cf.c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return nil, nil, err
	}
	return cfg, db, nil
}

// userDirectoryFlags is `postern user alias|sendas add|delete|list`, on
// a directory that keeps aliases and send-as grants (PostgreSQL); with
// the users file they are in the configuration, and it says so.
//
//	user alias add ALIAS TARGET...       user sendas add USER ADDRESS|DOMAIN...
//	user alias delete ALIAS [TARGET...]  user sendas delete USER [ADDRESS|DOMAIN...]
//	user alias list                      user sendas list
func userDirectoryFlags(verb, op string) func(*cli, *flag.FlagSet) func([]string) error {
	return func(c *cli, fs *flag.FlagSet) func([]string) error {
		cf := c.configFlags(fs)
		return func(pos []string) error {
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			if cfg.Directory.Backend != config.DirectoryPostgres {
				return fmt.Errorf("user %s %s: with the users file, aliases and send-as grants are [aliases] and [send_as] in the configuration (%s)",
					verb, op, orDefault(cfg.Source))
			}
			_, db, err := openUserDB(cf, op != "list")
			if err != nil {
				return err
			}
			defer db.Close()
			ctx := context.Background()
			if verb == "alias" {
				// The alias is local; a target in another domain
				// forwards there (forward.go).
				if op == "add" {
					if _, domain, _ := strings.Cut(pos[0], "@"); !isLocalDomain(cfg, domain) {
						return fmt.Errorf("user alias add: %q is not in a local domain (local_domains: %s)", pos[0], strings.Join(cfg.LocalDomains, ", "))
					}
				}
				return userAlias(ctx, db, op, pos, c.stdout)
			}
			return userSendAs(ctx, db, op, pos, c.stdout)
		}
	}
}

// orDefault names a configuration's source: its file, or the embedded
// default.
func orDefault(source string) string {
	if source == "" {
		return "the embedded default"
	}
	return source
}

// userAlias runs `user alias OP ARGS`.
func userAlias(ctx context.Context, db *userdb.DB, op string, pos []string, stdout io.Writer) error {
	switch op {
	case "add":
		if err := db.AddAlias(ctx, pos[0], pos[1:]...); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "alias %s -> %s\n", pos[0], strings.Join(pos[1:], ", "))
	case "delete":
		if err := db.DeleteAlias(ctx, pos[0], pos[1:]...); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted alias %s\n", strings.Join(pos, " "))
	case "list":
		aliases, err := db.Aliases(ctx)
		if err != nil {
			return err
		}
		for _, a := range aliases {
			fmt.Fprintf(stdout, "%s %s\n", a.Address, strings.Join(a.Targets, " "))
		}
	}
	return nil
}

// userSendAs runs `user sendas OP ARGS`; an argument with "@" is an
// address, one without a domain.
func userSendAs(ctx context.Context, db *userdb.DB, op string, pos []string, stdout io.Writer) error {
	var g userdb.SendAsGrant
	if op != "list" {
		for _, a := range pos[1:] {
			if strings.Contains(a, "@") {
				g.Addresses = append(g.Addresses, a)
			} else {
				g.Domains = append(g.Domains, a)
			}
		}
	}
	switch op {
	case "add":
		if err := db.AddSendAs(ctx, pos[0], g); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s may send as %s\n", pos[0], strings.Join(pos[1:], ", "))
	case "delete":
		if err := db.DeleteSendAs(ctx, pos[0], g); err != nil {
			return err
		}
		what := strings.Join(pos[1:], ", ")
		if what == "" {
			what = "every grant"
		}
		fmt.Fprintf(stdout, "withdrawn from %s: %s\n", pos[0], what)
	case "list":
		grants, err := db.SendAsGrants(ctx)
		if err != nil {
			return err
		}
		users := make([]string, 0, len(grants))
		for u := range grants {
			users = append(users, u)
		}
		slices.Sort(users)
		for _, u := range users {
			fmt.Fprintf(stdout, "%s %s\n", u, strings.Join(append(grants[u].Addresses, grants[u].Domains...), " "))
		}
	}
	return nil
}

// isLocalDomain reports whether domain is one of cfg's local domains,
// compared as A-labels (a U-label matches its A-label; the Kelvin sign
// of "wor\u212A.test" does not make work.test).
func isLocalDomain(cfg *config.Config, domain string) bool {
	d, err := addrkey.Domain(domain)
	return err == nil && cfg.IsLocalDomain(d)
}

// readPassword reads a password: prompted twice without echo on a
// terminal, else the first line of stdin.
func readPassword(stdin io.Reader, stdout io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stdout, "Again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", fmt.Errorf("passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fmt.Errorf("empty password")
	}
	return pw, nil
}
