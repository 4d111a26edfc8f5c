package server

import (
	"context"
	"log/slog"

	"postern/internal/check"
	"postern/internal/config"
	"postern/internal/userdb"
)

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
			"address", u.Address, "via", u.Via, "fix", check.PostmasterFix(cfg, u))
	}
}
