package server

import (
	"context"
	"log/slog"
	"time"

	"postern/internal/config"
	"postern/internal/privs"
	"postern/internal/userdb"
)

// OpenUsers opens the user directory cfg names, as serve opens it: the
// users file, given to the user Postern runs as, or PostgreSQL.
// With [directory] backend = "postgres" it connects to the database named
// in postgres_dsn_file and migrates its schema.
func OpenUsers(cfg *config.Config, log *slog.Logger) (*userdb.DB, error) {
	opts := usersOptions(cfg)
	opts.Logger = log
	if cfg.Directory.Backend != config.DirectoryPostgres {
		owner, err := privs.DataOwner(cfg.DataDir, cfg.Process.User, cfg.Process.Group)
		if err != nil {
			return nil, err
		}
		opts.Owner = owner // users.json and users.lock, for the server's user
		return userdb.Open(cfg.UsersFile(), opts)
	}
	dsn, err := cfg.PostgresDSN()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return userdb.OpenPostgres(ctx, dsn, opts)
}
