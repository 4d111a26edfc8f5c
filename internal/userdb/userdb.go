// Package userdb implements Postern's user directory: the users who may
// authenticate, their Argon2id password hashes (RFC 9106) and the secrets
// SCRAM (RFC 5802, RFC 7677) and CRAM-MD5 (RFC 2195) need, and the
// Directory that answers the SMTP session's questions about local
// addresses, aliases and who may send as whom.
//
// Users live in one of two stores. The embedded store (Open), the default,
// is one JSON file; PostgreSQL (OpenPostgres) is a directory several
// Postern nodes share, which also keeps aliases and send-as grants.
//
// The embedded store is one JSON file (mode 0600) that two kinds of process
// share: the server reads it, and `postern user ...` commands change it
// while the server runs. Writers take an exclusive flock on a lock file
// next to it, read the current file, change it, and replace it atomically
// (temporary file, fsync, rename, fsync of the directory). Readers keep the
// users in memory and notice a replaced file by its inode, size and
// modification time, checked at most once a second on lookups; Reload
// re-reads at once (the server calls it on SIGHUP).
package userdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"postern/internal/fsutil"
)

// Errors of the directory. CheckPassword's errors wrap sasl's sentinels
// instead (sasl.ErrInvalidCredentials, sasl.ErrTemporary).
var (
	// ErrExists means Add found the address already taken (ignoring case).
	ErrExists = errors.New("userdb: user exists")
	// ErrNotFound means no user has the address.
	ErrNotFound = errors.New("userdb: no such user")
	// ErrInvalidAddress means an address failed NormalizeAddress.
	ErrInvalidAddress = errors.New("userdb: invalid address")
	// ErrInvalidPassword means a new password failed CheckNewPassword.
	ErrInvalidPassword = errors.New("userdb: invalid password")
	// ErrClosed means the DB was used after Close.
	ErrClosed = errors.New("userdb: closed")
)

// Limits and defaults of Options.
const (
	// DefaultCacheSize is how many verified credentials are remembered.
	DefaultCacheSize = 10000
	// MinSCRAMIterations is the least SCRAMIterations accepted (RFC 7677
	// §4).
	MinSCRAMIterations = 4096
	// maxSCRAMIterations bounds the iterations of a configured or stored
	// verifier, so a hostile store cannot make a login spin; clients
	// compute them too.
	maxSCRAMIterations = 1 << 20
	// reloadCheckInterval is the least time between two stat checks of the
	// users file on lookups.
	reloadCheckInterval = time.Second
)

// Options configure a DB. The values Postern's configuration sets
// ([auth]: CacheTTL, Argon2, SCRAMIterations) mean what they say and
// have no default here (the configuration resolves the defaults, in
// internal/config): a CacheTTL of 0 is no cache, and Argon2 and
// SCRAMIterations are required. The others, which no key sets, default
// when zero.
type Options struct {
	// Now returns the current time; nil means time.Now. It stamps users'
	// Created and Updated times, expires cached credentials and paces the
	// checks for a changed file.
	Now func() time.Time
	// CacheTTL is how long a verified username and password are remembered,
	// so a client that logs in again does not cost another hash; 0 is
	// no cache.
	CacheTTL time.Duration
	// CacheSize bounds the remembered credentials; the least recently used
	// is evicted first. Zero means DefaultCacheSize; negative disables the
	// cache.
	CacheSize int
	// Argon2 are the parameters for new hashes. Required.
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds the Argon2 computations in flight, so that
	// a flood of logins queues instead of taking Argon2.MemoryKiB each.
	// Zero means runtime.GOMAXPROCS(0).
	MaxConcurrentHashes int
	// SCRAMIterations is the iteration count of the SCRAM verifiers made
	// for new passwords, from MinSCRAMIterations on. Required.
	SCRAMIterations int
	// Logger receives reload events and store errors; nil discards them.
	// No password, hash or secret is ever logged.
	Logger *slog.Logger
	// Owner, when not nil, is given the users file and its lock file
	// each time the DB creates or replaces them: a command run as root
	// for a server that runs as another user. It needs root.
	Owner *fsutil.Owner
}

// User is one user of the directory.
type User struct {
	// Address is the user's address and login name: the domain
	// lower-cased, the local part as first given. It is the canonical name
	// CheckPassword returns.
	Address string
	// Created is when the user was added.
	Created time.Time
	// Updated is when the user's password was last set.
	Updated time.Time
}

// DB is the user directory over one store: the users file (Open) or a
// PostgreSQL database (OpenPostgres). Its methods are safe for concurrent
// use, and several DBs (in one process or several, on one machine or
// several for PostgreSQL) may share one store.
type DB struct {
	st        store
	now       func() time.Time
	log       *slog.Logger
	hasher    *hasher
	dummy     phc
	cache     *credCache // nil when disabled
	hashes    atomic.Int64
	scramIter int
}

// newDB returns a DB with opts' defaults filled in and no store yet.
func newDB(opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opts.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("userdb: options: %w", err)
	}
	if opts.SCRAMIterations < MinSCRAMIterations || opts.SCRAMIterations > maxSCRAMIterations {
		return nil, fmt.Errorf("userdb: options: SCRAM iterations %d outside %d..%d", opts.SCRAMIterations, MinSCRAMIterations, maxSCRAMIterations)
	}
	if opts.MaxConcurrentHashes <= 0 {
		opts.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	d := &DB{now: opts.Now, log: opts.Logger, scramIter: opts.SCRAMIterations}
	d.hasher = &hasher{
		params: opts.Argon2,
		sem:    make(chan struct{}, opts.MaxConcurrentHashes),
		count:  func() { d.hashes.Add(1) },
	}
	var err error
	if d.dummy, err = dummyHash(opts.Argon2); err != nil {
		return nil, err
	}
	if opts.CacheTTL > 0 && opts.CacheSize > 0 {
		if d.cache, err = newCredCache(opts.CacheSize, opts.CacheTTL); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Open opens the users file at path, creating an empty one (mode 0600) when
// it is missing; its directory must exist. The lock file is path with
// ".json" replaced by ".lock" (or with ".lock" appended).
func Open(path string, opts Options) (*DB, error) {
	d, err := newDB(opts)
	if err != nil {
		return nil, err
	}
	if d.st, err = openFileStore(path, d.now, d.log, opts.Owner); err != nil {
		return nil, err
	}
	return d, nil
}

// Close releases the store; later calls fail (CheckPassword with an error
// wrapping sasl.ErrTemporary) or find nobody. It does not wait for calls in
// progress.
func (d *DB) Close() error {
	if d.cache != nil {
		d.cache.clear()
	}
	return d.st.close()
}

// Reload re-reads the users file now (the server calls it on SIGHUP). On
// error the DB keeps the users it had. With PostgreSQL, which is read on
// every lookup, it does nothing.
func (d *DB) Reload() error {
	return d.st.reload()
}

// get returns the record for addr (any case), or nil.
func (d *DB) get(ctx context.Context, addr string) (*record, error) {
	return d.st.get(ctx, userKey(addr))
}

// Lookup returns the user with address addr, matched ignoring case. When
// the store cannot answer, it logs the error and reports no user.
func (d *DB) Lookup(addr string) (User, bool) {
	r, err := d.get(context.Background(), addr)
	if err != nil {
		d.log.Error("userdb: lookup", "err", err)
		return User{}, false
	}
	if r == nil {
		return User{}, false
	}
	return r.user, true
}

// Exists reports whether a user has address addr, ignoring case. When the
// store cannot answer, it logs the error and reports false.
func (d *DB) Exists(addr string) bool {
	_, ok := d.Lookup(addr)
	return ok
}

// exists is Exists with the store's error.
func (d *DB) exists(ctx context.Context, addr string) (bool, error) {
	r, err := d.get(ctx, addr)
	return r != nil, err
}

// List returns all users, sorted by lower-cased address. When the store
// cannot answer, it logs the error and returns none; ListUsers returns the
// error.
func (d *DB) List() []User {
	users, err := d.ListUsers(context.Background())
	if err != nil {
		d.log.Error("userdb: list", "err", err)
	}
	return users
}

// ListUsers returns all users, sorted by lower-cased address.
func (d *DB) ListUsers(ctx context.Context) ([]User, error) {
	return d.st.list(ctx)
}

// SetOptions choose the secrets kept for a password besides its Argon2id
// hash and the SCRAM verifiers, which every user gets.
type SetOptions struct {
	// CRAMMD5 keeps the password's HMAC-MD5 contexts so the user can log in
	// with CRAM-MD5 (RFC 2195). They are equivalent to the password for
	// CRAM-MD5, so only users who ask get them.
	CRAMMD5 bool
}

// Add adds a user with address addr (see NormalizeAddress) and password
// (see CheckNewPassword), keeping its Argon2id hash, its SCRAM-SHA-256 and
// SCRAM-SHA-1 verifiers and, when opts (at most one) asks, its CRAM-MD5
// secret. It fails with ErrExists when the address is taken, ignoring
// case.
func (d *DB) Add(addr, password string, opts ...SetOptions) error {
	addr, err := NormalizeAddress(addr)
	if err != nil {
		return err
	}
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	s, err := d.newSecrets(addr, password, opts)
	if err != nil {
		return err
	}
	now := d.now().UTC()
	return d.st.insert(context.Background(), &record{user: User{Address: addr, Created: now, Updated: now}, secrets: s})
}

// SetPassword replaces the password of the user with address addr
// (ignoring case), and with it every secret derived from it: the Argon2id
// hash, the SCRAM verifiers, and the CRAM-MD5 secret, which is kept only
// when opts (at most one) asks again. It fails with ErrNotFound when there
// is no such user. Cached credentials of the old password stop counting at
// once: in this DB, in every DB on the same PostgreSQL database, and in
// other processes sharing the users file at their next reload (within a
// second).
func (d *DB) SetPassword(addr, password string, opts ...SetOptions) error {
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	s, err := d.newSecrets(addr, password, opts)
	if err != nil {
		return err
	}
	return d.st.setSecrets(context.Background(), userKey(addr), s, d.now().UTC())
}

// Delete removes the user with address addr (ignoring case). It fails with
// ErrNotFound when there is no such user.
func (d *DB) Delete(addr string) error {
	return d.st.remove(context.Background(), userKey(addr))
}

// hashCount returns the number of Argon2 computations so far (for tests).
func (d *DB) hashCount() int64 { return d.hashes.Load() }
