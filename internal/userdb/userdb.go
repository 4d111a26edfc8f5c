// Package userdb implements Postern's user directory: the users who may
// authenticate, their Argon2id password hashes (RFC 9106), and the
// Directory that answers the SMTP session's questions about local
// addresses, aliases and who may send as whom.
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
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
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

// Defaults for Options.
const (
	// DefaultCacheTTL is how long a verified credential is remembered.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheSize is how many verified credentials are remembered.
	DefaultCacheSize = 10000
	// reloadCheckInterval is the least time between two stat checks of the
	// users file on lookups.
	reloadCheckInterval = time.Second
)

// Options configure a DB. The zero value gives the defaults.
type Options struct {
	// Now returns the current time; nil means time.Now. It stamps users'
	// Created and Updated times, expires cached credentials and paces the
	// checks for a changed file.
	Now func() time.Time
	// CacheTTL is how long a verified username and password are remembered,
	// so a client that logs in again does not cost another hash. Zero means
	// DefaultCacheTTL; negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the remembered credentials; the least recently used
	// is evicted first. Zero means DefaultCacheSize; negative disables the
	// cache.
	CacheSize int
	// Argon2 are the parameters for new hashes; the zero value means
	// DefaultArgon2Time, DefaultArgon2MemoryKiB and DefaultArgon2Threads.
	Argon2 Argon2Params
	// MaxConcurrentHashes bounds the Argon2 computations in flight, so that
	// a flood of logins queues instead of taking Argon2.MemoryKiB each.
	// Zero means runtime.GOMAXPROCS(0).
	MaxConcurrentHashes int
	// Logger receives reload events; nil discards them. No password or
	// hash is ever logged.
	Logger *slog.Logger
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

// DB is the embedded user store. Its methods are safe for concurrent use,
// and several DBs (in one process or several) may share one file.
type DB struct {
	path   string
	now    func() time.Time
	log    *slog.Logger
	hasher *hasher
	dummy  phc
	cache  *credCache // nil when disabled
	hashes atomic.Int64

	writeMu   sync.Mutex // serializes this DB's writers (the flock serializes processes)
	checkMu   sync.Mutex // one stat check at a time
	lastCheck atomic.Int64

	mu     sync.RWMutex
	users  map[string]*record // by userKey
	sig    fileSig
	closed bool
}

// Open opens the users file at path, creating an empty one (mode 0600) when
// it is missing; its directory must exist. The lock file is path with
// ".json" replaced by ".lock" (or with ".lock" appended).
func Open(path string, opts Options) (*DB, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Argon2 == (Argon2Params{}) {
		opts.Argon2 = Argon2Params{Time: DefaultArgon2Time, MemoryKiB: DefaultArgon2MemoryKiB, Threads: DefaultArgon2Threads}
	}
	if err := opts.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("userdb: options: %w", err)
	}
	if opts.MaxConcurrentHashes <= 0 {
		opts.MaxConcurrentHashes = runtime.GOMAXPROCS(0)
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = DefaultCacheTTL
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	d := &DB{path: path, now: opts.Now, log: opts.Logger}
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
	if err := d.create(); err != nil {
		return nil, err
	}
	if err := d.Reload(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		d.log.Warn("userdb: users file is readable by others", "path", path, "mode", fi.Mode().Perm().String())
	}
	return d, nil
}

// create writes an empty users file when none exists.
func (d *DB) create() error {
	if _, err := os.Stat(d.path); !errors.Is(err, fs.ErrNotExist) {
		return nil // exists, or an error Reload will report
	}
	unlock, err := lockFile(d.path)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(d.path); !errors.Is(err, fs.ErrNotExist) {
		return nil // another process made it meanwhile
	}
	data, err := encodeFile(nil)
	if err != nil {
		return err
	}
	return writeFile(d.path, data)
}

// Close marks the DB closed; later calls fail or find nobody. It does not
// wait for calls in progress.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.users = nil
	if d.cache != nil {
		d.cache.clear()
	}
	return nil
}

// Reload re-reads the users file now. On error the DB keeps the users it
// had.
func (d *DB) Reload() error {
	users, sig, err := readFile(d.path)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.users, d.sig = users, sig
	d.lastCheck.Store(d.now().UnixNano())
	return nil
}

// refresh reloads the users file if another process replaced it, checking
// at most once per reloadCheckInterval. Failures are logged; the DB keeps
// its users.
func (d *DB) refresh() {
	now := d.now().UnixNano()
	last := d.lastCheck.Load()
	if now >= last && now-last < int64(reloadCheckInterval) {
		return
	}
	if !d.checkMu.TryLock() {
		return // another goroutine is checking
	}
	defer d.checkMu.Unlock()
	if !d.lastCheck.CompareAndSwap(last, now) {
		return
	}
	fi, err := os.Stat(d.path)
	if err != nil {
		d.log.Warn("userdb: check users file", "path", d.path, "err", err)
		return
	}
	d.mu.RLock()
	same := d.sig == sigOf(fi)
	d.mu.RUnlock()
	if same {
		return
	}
	if err := d.Reload(); err != nil {
		d.log.Error("userdb: reload; keeping the users loaded before", "path", d.path, "err", err)
		return
	}
	d.log.Info("userdb: reloaded users file", "path", d.path)
}

// lookup returns the record for addr (any case), after a refresh.
func (d *DB) lookup(addr string) *record {
	d.refresh()
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.users[userKey(addr)]
}

// Lookup returns the user with address addr, matched ignoring case.
func (d *DB) Lookup(addr string) (User, bool) {
	if r := d.lookup(addr); r != nil {
		return r.user, true
	}
	return User{}, false
}

// Exists reports whether a user has address addr, ignoring case.
func (d *DB) Exists(addr string) bool {
	return d.lookup(addr) != nil
}

// List returns all users, sorted by lower-cased address.
func (d *DB) List() []User {
	d.refresh()
	d.mu.RLock()
	defer d.mu.RUnlock()
	keys := make([]string, 0, len(d.users))
	for k := range d.users {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]User, 0, len(keys))
	for _, k := range keys {
		out = append(out, d.users[k].user)
	}
	return out
}

// Add adds a user with address addr (see NormalizeAddress) and password
// (see CheckNewPassword). It fails with ErrExists when the address is
// taken, ignoring case.
func (d *DB) Add(addr, password string) error {
	addr, err := NormalizeAddress(addr)
	if err != nil {
		return err
	}
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	hash, err := d.hasher.hash(context.Background(), password)
	if err != nil {
		return err
	}
	h, err := parsePHC(hash)
	if err != nil {
		return err
	}
	return d.update(func(users map[string]*record, now time.Time) error {
		k := userKey(addr)
		if _, ok := users[k]; ok {
			return fmt.Errorf("userdb: add %s: %w", addr, ErrExists)
		}
		users[k] = &record{user: User{Address: addr, Created: now, Updated: now}, hash: hash, phc: h}
		return nil
	})
}

// SetPassword replaces the password of the user with address addr
// (ignoring case). It fails with ErrNotFound when there is no such user.
// Cached credentials of the old password stop counting at once in this
// DB, and in other processes at their next reload.
func (d *DB) SetPassword(addr, password string) error {
	if err := CheckNewPassword(password); err != nil {
		return err
	}
	hash, err := d.hasher.hash(context.Background(), password)
	if err != nil {
		return err
	}
	h, err := parsePHC(hash)
	if err != nil {
		return err
	}
	return d.update(func(users map[string]*record, now time.Time) error {
		r, ok := users[userKey(addr)]
		if !ok {
			return fmt.Errorf("userdb: set password of %s: %w", addr, ErrNotFound)
		}
		u := r.user
		u.Updated = now
		users[userKey(addr)] = &record{user: u, hash: hash, phc: h}
		return nil
	})
}

// Delete removes the user with address addr (ignoring case). It fails with
// ErrNotFound when there is no such user.
func (d *DB) Delete(addr string) error {
	return d.update(func(users map[string]*record, _ time.Time) error {
		if _, ok := users[userKey(addr)]; !ok {
			return fmt.Errorf("userdb: delete %s: %w", addr, ErrNotFound)
		}
		delete(users, userKey(addr))
		return nil
	})
}

// update applies change to the current users file under the lock and
// writes the result back atomically; then this DB holds the new users.
func (d *DB) update(change func(users map[string]*record, now time.Time) error) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	if d.isClosed() {
		return ErrClosed
	}
	unlock, err := lockFile(d.path)
	if err != nil {
		return err
	}
	defer unlock()
	users, _, err := readFile(d.path)
	if err != nil {
		return err
	}
	if err := change(users, d.now().UTC()); err != nil {
		return err
	}
	data, err := encodeFile(users)
	if err != nil {
		return err
	}
	if err := writeFile(d.path, data); err != nil {
		return err
	}
	// Still under the lock: the file on disk is the one just written.
	fi, err := os.Stat(d.path)
	if err != nil {
		return fmt.Errorf("userdb: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.users, d.sig = users, sigOf(fi)
	}
	return nil
}

// isClosed reports whether Close has been called.
func (d *DB) isClosed() bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.closed
}

// hashCount returns the number of Argon2 computations so far (for tests).
func (d *DB) hashCount() int64 { return d.hashes.Load() }
