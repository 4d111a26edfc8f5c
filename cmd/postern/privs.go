package main

import (
	"postern/internal/config"
	"postern/internal/fsutil"
	"postern/internal/privs"
)

// dataOwner returns whom the files and directories a command creates or
// replaces in the data directory must belong to (privs.DataOwner).
func dataOwner(cfg *config.Config) (*fsutil.Owner, error) {
	return privs.DataOwner(cfg.DataDir, cfg.Process.User, cfg.Process.Group)
}
