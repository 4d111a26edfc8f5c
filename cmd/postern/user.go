package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"postern/internal/config"
	"postern/internal/userdb"
)

// cmdUser implements `postern user add|list|delete|passwd`. It edits the
// user file directly (under its lock); a running server picks the change
// up within a second, or at once on SIGHUP.
func cmdUser(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"user: want add, list, delete or passwd"}
	}
	verb := args[0]
	fs := flag.NewFlagSet("user "+verb, flag.ContinueOnError)
	var cf configFlags
	cf.register(fs)
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("user: data directory: %w", err)
	}
	db, err := openUsers(cfg)
	if err != nil {
		return err
	}
	defer db.Close()

	want := 1
	if verb == "list" {
		want = 0
	}
	if len(pos) != want {
		return usageError{fmt.Sprintf("user %s: want %d argument(s), got %d", verb, want, len(pos))}
	}
	switch verb {
	case "list":
		for _, u := range db.List() {
			fmt.Fprintln(stdout, u.Address)
		}
		return nil
	case "delete":
		if err := db.Delete(pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", pos[0])
		return nil
	case "add", "passwd":
		if verb == "add" {
			if _, domain, _ := strings.Cut(pos[0], "@"); !cfg.IsLocalDomain(strings.ToLower(domain)) {
				return fmt.Errorf("user add: %q is not a local domain (local_domains: %s)", domain, strings.Join(cfg.LocalDomains, ", "))
			}
		}
		pw, err := readPassword(stdin, stdout)
		if err != nil {
			return err
		}
		if verb == "add" {
			err = db.Add(pos[0], pw)
		} else {
			err = db.SetPassword(pos[0], pw)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s\n", map[string]string{"add": "added", "passwd": "password changed for"}[verb], pos[0])
		return nil
	}
	return usageError{fmt.Sprintf("user: unknown command %q", verb)}
}

// openUsers opens the user directory the configuration names.
func openUsers(cfg *config.Config) (*userdb.DB, error) {
	ttl := cfg.Auth.CacheTTL
	if ttl == 0 { // auth.cache_ttl = "0s" turns the cache off; userdb reads 0 as its default
		ttl = -1
	}
	return userdb.Open(cfg.UsersFile(), userdb.Options{
		CacheTTL: ttl,
		Argon2: userdb.Argon2Params{
			Time:      cfg.Auth.Argon2Time,
			MemoryKiB: cfg.Auth.Argon2MemoryKiB,
			Threads:   cfg.Auth.Argon2Threads,
		},
	})
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
