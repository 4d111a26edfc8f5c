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
	// run, when set, is a step in Go, run after sql in the same
	// transaction.
	run func(ctx context.Context, tx pgx.Tx, log *slog.Logger) error
}

// migrations returns the schema, oldest first. Keys are userKey of the
// address, computed by postern, so an address matches exactly as in the
// users file.
func migrations() []migration {
	return []migration{
		{1, `
CREATE TABLE users (
	key      text PRIMARY KEY,
	address  text NOT NULL,
	password text NOT NULL,
	created  timestamptz NOT NULL,
	updated  timestamptz NOT NULL
)`, nil},
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
	ADD CHECK ((cram_md5_inner IS NULL) = (cram_md5_outer IS NULL))`, nil},
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
)`, nil},
		// Keys were strings.ToLower of the address up to here, which
		// folds non-ASCII letters and the Kelvin sign (issue 12): they
		// become userKey's.
		{4, "", rekey},
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
		if err := applyMigration(ctx, pool, m, log); err != nil {
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
func applyMigration(ctx context.Context, pool *pgxpool.Pool, m migration, log *slog.Logger) error {
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
		if m.sql != "" {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("userdb: postgres: migration %d: %w", m.version, err)
			}
		}
		if m.run != nil {
			if err := m.run(ctx, tx, log); err != nil {
				return fmt.Errorf("userdb: postgres: migration %d: %w", m.version, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version); err != nil {
			return fmt.Errorf("userdb: postgres: record migration %d: %w", m.version, err)
		}
		return nil
	})
}

// rekey recomputes the stored keys of users, aliases and send-as grants
// with userKey, from the addresses stored beside them. A row whose new
// key another row already has keeps its old key, and is logged: the
// operator merges the two.
func rekey(ctx context.Context, tx pgx.Tx, log *slog.Logger) error {
	type update struct {
		what string // for the log
		q    string
		args []any
	}
	var updates []update
	scan := func(q string, n int, each func(v []string)) error {
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v := make([]string, n)
			dst := make([]any, n)
			for i := range v {
				dst[i] = &v[i]
			}
			if err := rows.Scan(dst...); err != nil {
				return err
			}
			each(v)
		}
		return rows.Err()
	}
	err := scan(`SELECT key, address FROM users`, 2, func(v []string) {
		if k := userKey(v[1]); k != v[0] {
			updates = append(updates, update{"user " + v[1], `UPDATE users SET key = $1 WHERE key = $2`, []any{k, v[0]}})
		}
	})
	if err == nil {
		err = scan(`SELECT id::text, alias_key, alias, target_key, target FROM aliases`, 5, func(v []string) {
			if ak, tk := userKey(v[2]), userKey(v[4]); ak != v[1] || tk != v[3] {
				updates = append(updates, update{"alias " + v[2] + " -> " + v[4],
					`UPDATE aliases SET alias_key = $1, target_key = $2 WHERE id = $3::bigint`, []any{ak, tk, v[0]}})
			}
		})
	}
	if err == nil {
		err = scan(`SELECT user_key, "user", kind, value FROM send_as`, 4, func(v []string) {
			uk, val := userKey(v[1]), v[3]
			if v[2] == "address" {
				val = userKey(val)
			}
			if uk != v[0] || val != v[3] {
				updates = append(updates, update{"send-as grant of " + v[1],
					`UPDATE send_as SET user_key = $1, value = $2 WHERE user_key = $3 AND kind = $4 AND value = $5`,
					[]any{uk, val, v[0], v[2], v[3]}})
			}
		})
	}
	if err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	for _, u := range updates {
		// Each in a savepoint: a row that would take another's key
		// stays as it was.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("rekey: %w", err)
		}
		if _, err := sp.Exec(ctx, u.q, u.args...); err != nil {
			sp.Rollback(ctx)
			log.Error("userdb: postgres: an entry keeps its old key: another has its new one; merge them", "entry", u.what, "err", err)
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("rekey: %w", err)
		}
	}
	return nil
}
