package userdb

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCreateFirstUser: an empty directory gets the postmaster with the
// password written to the file (0600) and accepted at login; a second
// call, with a user there, changes nothing.
func TestCreateFirstUser(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, filepath.Join(dir, "users.json"), newClock(), nil)
	ctx := context.Background()
	pwFile := filepath.Join(dir, "initial-password")
	pw, err := db.CreateFirstUser(ctx, "postmaster@localhost", pwFile)
	if err != nil || len(pw) != GeneratedPasswordLen {
		t.Fatalf("first user: %q, %v", pw, err)
	}
	b, err := os.ReadFile(pwFile)
	if fi, _ := os.Stat(pwFile); err != nil || string(b) != pw+"\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file: %q %v", b, err)
	}
	if _, err := db.CheckPassword(ctx, "postmaster@localhost", pw); err != nil {
		t.Errorf("login with the first password: %v", err)
	}
	os.Remove(pwFile)
	if pw, err := db.CreateFirstUser(ctx, "other@localhost", pwFile); err != nil || pw != "" {
		t.Errorf("second call: %q, %v", pw, err)
	}
	if _, err := os.Stat(pwFile); err == nil {
		t.Error("second call wrote a password file")
	}
	if users, _ := db.ListUsers(ctx); len(users) != 1 {
		t.Errorf("users: %v", users)
	}
}
