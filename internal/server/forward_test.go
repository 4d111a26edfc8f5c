package server

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"postern/internal/config"
	"postern/internal/userdb"
)

// TestNewForwarderSecret: serve's forwarder makes the default
// srs.secret_file (0600, a random secret) when it is missing, and reads
// it; a secret_file named in the configuration must exist.
func TestNewForwarderSecret(t *testing.T) {
	cfg := config.Dev(filepath.Join(t.TempDir(), "data"))
	os.MkdirAll(cfg.DataDir, 0o700)
	db, err := userdb.Open(cfg.UsersFile(), usersOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dir := userdb.NewDirectory(db, directoryConfig(cfg))
	log := slog.New(slog.DiscardHandler)
	if _, err := newForwarder(cfg, dir, log); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "srs.secret")); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() < 40 {
		t.Errorf("srs.secret not made as it should be: %v %v", fi, err)
	}
	cfg.SRS.SecretFile = filepath.Join(cfg.DataDir, "other.secret")
	if _, err := newForwarder(cfg, dir, log); err == nil {
		t.Error("a missing srs.secret_file that is not the default was made or ignored")
	}
}
