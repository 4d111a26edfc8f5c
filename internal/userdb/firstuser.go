package userdb

import (
	"context"
	"fmt"

	"postern/internal/fsutil"
)

// CreateFirstUser gives a directory without users its first one: addr
// (the postmaster) with a new random password (GeneratePassword),
// written first to passwordFile (0600), so the password is not lost
// when adding the user fails. It returns the password, or "" when the
// directory has users already and nothing was done.
func (d *DB) CreateFirstUser(ctx context.Context, addr, passwordFile string) (string, error) {
	users, err := d.ListUsers(ctx)
	if err != nil || len(users) > 0 {
		return "", err
	}
	pw, err := GeneratePassword()
	if err != nil {
		return "", err
	}
	if err := fsutil.WriteFile(passwordFile, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("userdb: initial password: %w", err)
	}
	if err := d.Add(addr, pw); err != nil {
		return "", err
	}
	return pw, nil
}
