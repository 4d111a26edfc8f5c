package userdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"postern/internal/testkit"
)

// opener opens a DB on one test's store; every call gives another DB on
// the same store (another node, or another process).
type opener func(t testing.TB, clk *testkit.Clock, mod func(*Options)) *DB

// eachBackend runs f against a fresh users file and a fresh PostgreSQL
// database (see testDatabase).
func eachBackend(t *testing.T, f func(t *testing.T, open opener)) {
	t.Run("file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "users.json")
		f(t, func(t testing.TB, clk *testkit.Clock, mod func(*Options)) *DB { return openTest(t, path, clk, mod) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := testDatabase(t)
		f(t, func(t testing.TB, clk *testkit.Clock, mod func(*Options)) *DB { return openPGTest(t, dsn, clk, mod) })
	})
}

// testDatabase creates an empty database for t on the server that
// POSTERN_TEST_POSTGRES names (a DSN whose role may CREATE DATABASE;
// scripts/test sets it), drops it when t ends, and returns its DSN. Without
// the variable the test is skipped, or fails under POSTERN_INTEGRATION=1.
func testDatabase(t testing.TB) string {
	t.Helper()
	admin := testkit.Service(t, "POSTERN_TEST_POSTGRES")
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("POSTERN_TEST_POSTGRES must be a postgres:// URL")
	}
	b := make([]byte, 8)
	rand.Read(b)
	name := "test_userdb_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to POSTERN_TEST_POSTGRES: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// openPGTest opens a DB on the database at dsn, closed when t ends.
func openPGTest(t testing.TB, dsn string, clk *testkit.Clock, mod func(*Options)) *DB {
	t.Helper()
	opts := Options{Now: clk.Now, Argon2: fastArgon2, SCRAMIterations: testSCRAMIterations, CacheTTL: 5 * time.Minute}
	if mod != nil {
		mod(&opts)
	}
	db, err := OpenPostgres(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestPostgresURLHidden(t *testing.T) {
	// A DSN that cannot be parsed: the error must not repeat its password.
	_, err := OpenPostgres(context.Background(), "postgres://u:hunter2@127.0.0.1:bad/x", Options{Argon2: fastArgon2, SCRAMIterations: MinSCRAMIterations})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("OpenPostgres error %v", err)
	}
}
