package check

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"postern/internal/config"
	"postern/internal/userdb"
)

// PostmasterFix says how to make u's mail reach someone: the exact
// command that creates its user, or the alias that sends it to one.
func PostmasterFix(cfg *config.Config, u userdb.UnreachablePostmaster) string {
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

// checkPostmaster fails for each postmaster address whose mail reaches
// nobody. The embedded default's first start creates
// postmaster@localhost: no users yet is fine there.
func (c *Checker) checkPostmaster(ctx context.Context) {
	cfg := c.Config
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
	if c.Loaders.OpenUsers == nil {
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
		db, err = c.Loaders.OpenUsers(filepath.Join(tmp, "users.json"))
	} else {
		db, err = c.Loaders.OpenUsers("")
	}
	if err != nil {
		c.fail("postmaster", "", "users not read: "+err.Error(), "correct [directory] or the users file")
		return
	}
	defer db.Close()
	dcfg := c.Loaders.Directory
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
		c.fail("postmaster", domain, msg, PostmasterFix(cfg, u))
	}
	if len(list) == 0 {
		c.ok("postmaster", "", "postmaster@ every local domain reaches a user")
	}
}
