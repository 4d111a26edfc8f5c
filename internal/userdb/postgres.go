package userdb

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgQueryTimeout bounds one query, so a lookup against a database that
// stopped answering fails (sasl.ErrTemporary for a login) instead of
// hanging the session.
const pgQueryTimeout = 10 * time.Second

// pgUniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const pgUniqueViolation = "23505"

// OpenPostgres opens the user directory in the PostgreSQL database at dsn
// (a libpq URL or key=value string, as pgx reads it), creating or
// migrating its schema first (see migrate). Several Postern nodes may share
// the database: every lookup reads the current row, so users added,
// deleted or given a new password on one node count at once on all; the
// database also keeps aliases and send-as grants (AddAlias, AddSendAs),
// which a Directory adds to the configured ones. opts are as for Open.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*DB, error) {
	d, err := newDB(opts)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors do not repeat the password of the DSN.
		return nil, fmt.Errorf("userdb: postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: %w", err)
	}
	if err := migrate(ctx, pool, d.log); err != nil {
		pool.Close()
		return nil, err
	}
	d.st = &pgStore{pool: pool}
	return d, nil
}

// pgStore is the PostgreSQL store. It keeps nothing in memory.
type pgStore struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
}

// userColumns are the columns get reads, in scanRecord's order.
const userColumns = `address, password, created, updated,
	scram_sha256_salt, scram_sha256_iterations, scram_sha256_stored_key, scram_sha256_server_key,
	scram_sha1_salt, scram_sha1_iterations, scram_sha1_stored_key, scram_sha1_server_key,
	cram_md5_inner, cram_md5_outer`

func (s *pgStore) get(ctx context.Context, k string) (*record, error) {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	var r record
	var s256, s1 pgSCRAM
	var inner, outer []byte
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE key = $1`, k).Scan(
		&r.user.Address, &r.hash, &r.user.Created, &r.user.Updated,
		&s256.salt, &s256.iterations, &s256.storedKey, &s256.serverKey,
		&s1.salt, &s1.iterations, &s1.storedKey, &s1.serverKey,
		&inner, &outer)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: %w", s.pgErr(err))
	}
	r.user.Created, r.user.Updated = r.user.Created.UTC(), r.user.Updated.UTC()
	if r.phc, err = parsePHC(r.hash); err != nil {
		return nil, fmt.Errorf("userdb: postgres: user %q: %w", r.user.Address, err)
	}
	if r.scram256, err = s256.secret(sha256Size); err != nil {
		return nil, fmt.Errorf("userdb: postgres: user %q: scram_sha256: %w", r.user.Address, err)
	}
	if r.scram1, err = s1.secret(sha1Size); err != nil {
		return nil, fmt.Errorf("userdb: postgres: user %q: scram_sha1: %w", r.user.Address, err)
	}
	if inner != nil || outer != nil {
		if len(inner) != 16 || len(outer) != 16 {
			return nil, fmt.Errorf("userdb: postgres: user %q: cram_md5: contexts are not 16 bytes each", r.user.Address)
		}
		r.cram = &cramSecret{}
		copy(r.cram.inner[:], inner)
		copy(r.cram.outer[:], outer)
	}
	return &r, nil
}

// pgSCRAM is a SCRAM verifier's nullable columns.
type pgSCRAM struct {
	salt, storedKey, serverKey []byte
	iterations                 *int32
}

// secret checks and converts the columns; all NULL gives nil.
func (p pgSCRAM) secret(size int) (*scramSecret, error) {
	if p.salt == nil && p.iterations == nil && p.storedKey == nil && p.serverKey == nil {
		return nil, nil
	}
	if p.iterations == nil {
		return nil, errors.New("iterations missing")
	}
	s := &scramSecret{salt: p.salt, iterations: int(*p.iterations), storedKey: p.storedKey, serverKey: p.serverKey}
	if err := s.check(size); err != nil {
		return nil, err
	}
	return s, nil
}

// scramArgs returns the column values of s (all nil for nil).
func scramArgs(s *scramSecret) []any {
	if s == nil {
		return []any{nil, nil, nil, nil}
	}
	return []any{s.salt, int32(s.iterations), s.storedKey, s.serverKey}
}

// secretArgs returns the values of the secret columns in userColumns'
// order, after password, created and updated.
func secretArgs(sec secrets) []any {
	args := append(scramArgs(sec.scram256), scramArgs(sec.scram1)...)
	if sec.cram != nil {
		return append(args, sec.cram.inner[:], sec.cram.outer[:])
	}
	return append(args, nil, nil)
}

func (s *pgStore) list(ctx context.Context) ([]User, error) {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT address, created, updated FROM users ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: %w", s.pgErr(err))
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) {
		var u User
		err := row.Scan(&u.Address, &u.Created, &u.Updated)
		u.Created, u.Updated = u.Created.UTC(), u.Updated.UTC()
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("userdb: postgres: %w", s.pgErr(err))
	}
	return users, nil
}

func (s *pgStore) insert(ctx context.Context, r *record) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	args := append([]any{userKey(r.user.Address), r.user.Address, r.hash, r.user.Created, r.user.Updated}, secretArgs(r.secrets)...)
	_, err := s.pool.Exec(ctx, `INSERT INTO users (key, `+userColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`, args...)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == pgUniqueViolation {
		return fmt.Errorf("userdb: add %s: %w", r.user.Address, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("userdb: postgres: add %s: %w", r.user.Address, s.pgErr(err))
	}
	return nil
}

func (s *pgStore) setSecrets(ctx context.Context, k string, sec secrets, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	args := append([]any{k, sec.hash, now}, secretArgs(sec)...)
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password = $2, updated = $3,
		scram_sha256_salt = $4, scram_sha256_iterations = $5, scram_sha256_stored_key = $6, scram_sha256_server_key = $7,
		scram_sha1_salt = $8, scram_sha1_iterations = $9, scram_sha1_stored_key = $10, scram_sha1_server_key = $11,
		cram_md5_inner = $12, cram_md5_outer = $13
		WHERE key = $1`, args...)
	if err != nil {
		return fmt.Errorf("userdb: postgres: set password of %s: %w", k, s.pgErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("userdb: set password of %s: %w", k, ErrNotFound)
	}
	return nil
}

func (s *pgStore) remove(ctx context.Context, k string) error {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `DELETE FROM users WHERE key = $1`, k)
	if err != nil {
		return fmt.Errorf("userdb: postgres: delete %s: %w", k, s.pgErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("userdb: delete %s: %w", k, ErrNotFound)
	}
	return nil
}

// reload does nothing: every lookup reads the database.
func (s *pgStore) reload() error { return nil }

func (s *pgStore) close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}

// pgErr marks err as ErrClosed when the store has been closed (the pool
// then fails every call).
func (s *pgStore) pgErr(err error) error {
	if s.closed.Load() {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
