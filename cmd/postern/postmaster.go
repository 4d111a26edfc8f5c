package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"postern/internal/config"
	"postern/internal/userdb"
)

// postmasterFix says how to make u's mail reach someone: the exact
// command that creates its user, or the alias that sends it to one.
func postmasterFix(cfg *config.Config, u userdb.UnreachablePostmaster) string {
	flags := " --config " + cfg.Source
	if cfg.Source == "" {
		flags = " --data " + cfg.DataDir
	}
	fix := "postern user add " + u.Via + flags
	_, domain, _ := strings.Cut(u.Via, "@")
	switch {
	case cfg.Directory.Backend == config.DirectoryPostgres:
		fix += ", or an alias to an existing user: postern user alias add " + u.Via + " USER@" + domain + flags
	case cfg.Source != "":
		fix += `, or an alias to an existing user in ` + cfg.Source + `: [aliases] "` + u.Via + `" = ["USER@` + domain + `"]`
	}
	return fix
}

// warnPostmasters logs at WARN, when serve starts, each postmaster
// address whose mail reaches nobody, with the fix: RCPT refuses them
// until then (RFC 5321 §4.5.1 requires them).
func warnPostmasters(ctx context.Context, cfg *config.Config, dir *userdb.Directory, log *slog.Logger) {
	list, err := dir.UnreachablePostmasters(ctx)
	if err != nil {
		log.Warn("postmaster addresses not checked", "err", err)
		return
	}
	for _, u := range list {
		log.Warn("postmaster address reaches nobody: RCPT TO it gets 550 5.1.1 (RFC 5321 §4.5.1 requires it)",
			"address", u.Address, "via", u.Via, "fix", postmasterFix(cfg, u))
	}
}

// checkPostmaster fails for each postmaster address whose mail reaches
// nobody. The embedded default's first start creates
// postmaster@localhost: no users yet is fine there.
func (c *checker) checkPostmaster(ctx context.Context) {
	cfg := c.cfg
	noUsers := false
	if cfg.Directory.Backend != config.DirectoryPostgres {
		if _, err := os.Stat(cfg.UsersFile()); errors.Is(err, fs.ErrNotExist) {
			noUsers = true
		}
	}
	if noUsers && cfg.Source == "" {
		c.ok("postmaster", "", cfg.Postmaster+" is created at the first start of postern serve")
		return
	}
	var db *userdb.DB
	var err error
	if noUsers {
		// Nobody yet: an empty users file, made outside the data
		// directory, which check leaves as it is.
		tmp, terr := os.MkdirTemp("", "postern-check-")
		if terr != nil {
			c.fail("postmaster", "", terr.Error(), "")
			return
		}
		defer os.RemoveAll(tmp)
		db, err = userdb.Open(filepath.Join(tmp, "users.json"), usersOptions(cfg))
	} else {
		db, err = openUsers(cfg, slog.New(slog.DiscardHandler))
	}
	if err != nil {
		c.fail("postmaster", "", "users not read: "+err.Error(), "correct [directory] or the users file")
		return
	}
	defer db.Close()
	dcfg := directoryConfig(cfg)
	if err := dcfg.Validate(); err != nil {
		c.fail("postmaster", "", err.Error(), "correct [aliases] and [send_as]")
		return
	}
	list, err := userdb.NewDirectory(db, dcfg).UnreachablePostmasters(ctx)
	if err != nil {
		c.fail("postmaster", "", "users not read: "+err.Error(), "correct [directory]")
		return
	}
	for _, u := range list {
		_, domain, _ := strings.Cut(u.Address, "@")
		msg := u.Address + " reaches nobody: RCPT TO it gets 550 5.1.1, and RFC 5321 §4.5.1 requires it"
		if u.Via != u.Address {
			msg += " (its mail goes to " + u.Via + ")"
		}
		c.fail("postmaster", domain, msg, postmasterFix(cfg, u))
	}
	if len(list) == 0 {
		c.ok("postmaster", "", "postmaster@ every local domain reaches a user")
	}
}
