package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"postern/internal/testkit"
)

// postgresDSN creates a fresh database on the server scripts/test starts
// (POSTERN_TEST_POSTGRES) and returns a DSN for it.
func postgresDSN(t *testing.T) string {
	t.Helper()
	base := testkit.Service(t, "POSTERN_TEST_POSTGRES")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "postern_bin_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// TestPostgresDirectory runs the server on the PostgreSQL directory: users
// and aliases managed with the CLI are used at once by the running
// server, and a password change is refused at once for the old password.
func TestPostgresDirectory(t *testing.T) {
	integration(t)
	dsn := postgresDSN(t)
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "pg.dsn")
	os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600)
	s := testConfig(t, dir, "\n[directory]\nbackend = \"postgres\"\npostgres_dsn_file = \"pg.dsn\"\n")
	// The schema is created by the first postern command that opens it.
	s.start()
	s.addUser("frank@example.test", "frank-one")

	if out, err := s.run("", "user", "alias", "add", "team@example.test", "frank@example.test"); err != nil {
		t.Fatalf("alias add: %v\n%s", err, out)
	}
	if out, err := s.run("", "user", "alias", "list"); err != nil || !strings.Contains(out, "team@example.test") {
		t.Fatalf("alias list: %v\n%s", err, out)
	}
	c := mustDial(t, s.sub, "frank@example.test", "frank-one")
	if err := send(c, "frank@example.test", "team@example.test", "From: frank@example.test\r\nSubject: pg-alias-marker\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("mail to a database alias: %v", err)
	}
	c.Quit()
	s.waitMaildir("frank@example.test", "pg-alias-marker")

	if out, err := s.run("frank-two\n", "user", "passwd", "frank@example.test"); err != nil {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	// No reload, no wait: every check reads the current row.
	if c, err := dial(t, s.sub, "frank@example.test", "frank-one"); err == nil {
		c.Close()
		t.Fatal("old password accepted right after passwd")
	}
	c, err := dial(t, s.sub, "frank@example.test", "frank-two")
	if err != nil {
		t.Fatalf("new password refused: %v", err)
	}
	c.Quit()
	if _, err := os.Stat(filepath.Join(s.data, "users.json")); err == nil {
		t.Error("users.json written although the directory is PostgreSQL")
	}
}
