package userdb

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the pg_advisory_xact_lock key that serializes schema
// migrations between nodes starting at once ("postern\x00u" as an int64).
const migrationLock int64 = 0x706f737465726e75

// migration is one step of the PostgreSQL schema. Steps are applied in
// order, each in its own transaction with its row in schema_migrations;
// a step once released never changes (add a new one instead).
type migration struct {
	version int
	sql     string
}

// migrations returns the schema, oldest first. Keys are the lower-cased
// address (userKey), computed by postern, so a local part matches ignoring
// case exactly as in the users file.
func migrations() []migration {
	return []migration{
		{1, `
CREATE TABLE users (
	key      text PRIMARY KEY,
	address  text NOT NULL,
	password text NOT NULL,
	created  timestamptz NOT NULL,
	updated  timestamptz NOT NULL
)`},
		{2, `
ALTER TABLE users
	ADD COLUMN scram_sha256_salt       bytea,
	ADD COLUMN scram_sha256_iterations integer,
	ADD COLUMN scram_sha256_stored_key bytea,
	ADD COLUMN scram_sha256_server_key bytea,
	ADD COLUMN scram_sha1_salt         bytea,
	ADD COLUMN scram_sha1_iterations   integer,
	ADD COLUMN scram_sha1_stored_key   bytea,
	ADD COLUMN scram_sha1_server_key   bytea,
	ADD COLUMN cram_md5_inner          bytea CHECK (octet_length(cram_md5_inner) = 16),
	ADD COLUMN cram_md5_outer          bytea CHECK (octet_length(cram_md5_outer) = 16),
	ADD CHECK ((cram_md5_inner IS NULL) = (cram_md5_outer IS NULL))`},
		{3, `
CREATE TABLE aliases (
	id         bigserial PRIMARY KEY,
	alias_key  text NOT NULL,
	alias      text NOT NULL,
	target_key text NOT NULL,
	target     text NOT NULL,
	UNIQUE (alias_key, target_key)
);
CREATE TABLE send_as (
	user_key text NOT NULL,
	"user"   text NOT NULL,
	kind     text NOT NULL CHECK (kind IN ('address', 'domain')),
	value    text NOT NULL,
	PRIMARY KEY (user_key, kind, value)
)`},
	}
}

// schemaVersion is the version the migrations above reach.
func schemaVersion() int {
	m := migrations()
	return m[len(m)-1].version
}

// migrate brings the schema up to date. Each step runs in a transaction
// that first takes the advisory lock, so nodes starting at once apply each
// step exactly once, and checks schema_migrations again under it; running
// it on an up-to-date database changes nothing. A database migrated by a
// newer postern is used as it is, with a warning.
func migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	for _, m := range migrations() {
		if err := applyMigration(ctx, pool, m); err != nil {
			return err
		}
	}
	var newest int
	err := pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&newest)
	if err != nil {
		return fmt.Errorf("userdb: postgres: schema version: %w", err)
	}
	if newest > schemaVersion() {
		log.Warn("userdb: postgres schema is newer than this postern knows", "schema", newest, "known", schemaVersion())
	}
	return nil
}

// applyMigration applies m unless schema_migrations says it has been.
func applyMigration(ctx context.Context, pool *pgxpool.Pool, m migration) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("userdb: postgres: migration lock: %w", err)
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`)
		if err != nil {
			return fmt.Errorf("userdb: postgres: create schema_migrations: %w", err)
		}
		var done bool
		err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.version).Scan(&done)
		if err != nil {
			return fmt.Errorf("userdb: postgres: migration %d: %w", m.version, err)
		}
		if done {
			return nil
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("userdb: postgres: migration %d: %w", m.version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
			return fmt.Errorf("userdb: postgres: record migration %d: %w", m.version, err)
		}
		return nil
	})
}
