//go:build unix

package userdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"postern/internal/fsutil"
)

// fileStore is the embedded store: the users file, shared between
// processes (see the package documentation).
type fileStore struct {
	path  string
	now   func() time.Time
	log   *slog.Logger
	owner *fsutil.Owner // nil: the files stay the process's

	writeMu   sync.Mutex // serializes this store's writers (the flock serializes processes)
	checkMu   sync.Mutex // one stat check at a time
	lastCheck atomic.Int64

	mu     sync.RWMutex
	users  map[string]*record // by userKey
	sig    fileSig
	closed bool
}

// openFileStore opens the users file at path, creating an empty one when
// it is missing; owner, when not nil, is given the files it writes.
func openFileStore(path string, now func() time.Time, log *slog.Logger, owner *fsutil.Owner) (*fileStore, error) {
	s := &fileStore{path: path, now: now, log: log, owner: owner}
	if err := s.create(); err != nil {
		return nil, err
	}
	if err := s.reload(); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		s.log.Warn("userdb: users file is readable by others", "path", path, "mode", fi.Mode().Perm().String())
	}
	return s, nil
}

// create writes an empty users file when none exists.
func (s *fileStore) create() error {
	if _, err := os.Stat(s.path); !errors.Is(err, fs.ErrNotExist) {
		return nil // exists, or an error reload will report
	}
	unlock, err := lockFile(s.path, s.owner)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(s.path); !errors.Is(err, fs.ErrNotExist) {
		return nil // another process made it meanwhile
	}
	data, err := encodeFile(nil)
	if err != nil {
		return err
	}
	return writeFile(s.path, data, s.owner)
}

func (s *fileStore) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.users = nil
	return nil
}

func (s *fileStore) reload() error {
	users, sig, err := readFile(s.path)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.users, s.sig = users, sig
	s.lastCheck.Store(s.now().UnixNano())
	return nil
}

// refresh reloads the users file if another process replaced it, checking
// at most once per reloadCheckInterval. Failures are logged; the store
// keeps its users.
func (s *fileStore) refresh() {
	now := s.now().UnixNano()
	last := s.lastCheck.Load()
	if now >= last && now-last < int64(reloadCheckInterval) {
		return
	}
	if !s.checkMu.TryLock() {
		return // another goroutine is checking
	}
	defer s.checkMu.Unlock()
	if !s.lastCheck.CompareAndSwap(last, now) {
		return
	}
	fi, err := os.Stat(s.path)
	if err != nil {
		s.log.Warn("userdb: check users file", "path", s.path, "err", err)
		return
	}
	s.mu.RLock()
	same := s.sig == sigOf(fi)
	s.mu.RUnlock()
	if same {
		return
	}
	if err := s.reload(); err != nil {
		s.log.Error("userdb: reload; keeping the users loaded before", "path", s.path, "err", err)
		return
	}
	s.log.Info("userdb: reloaded users file", "path", s.path)
}

func (s *fileStore) get(_ context.Context, k string) (*record, error) {
	s.refresh()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return s.users[k], nil
}

func (s *fileStore) list(context.Context) ([]User, error) {
	s.refresh()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	keys := make([]string, 0, len(s.users))
	for k := range s.users {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]User, 0, len(keys))
	for _, k := range keys {
		out = append(out, s.users[k].user)
	}
	return out, nil
}

func (s *fileStore) insert(_ context.Context, r *record) error {
	return s.update(func(users map[string]*record) error {
		k := userKey(r.user.Address)
		if _, ok := users[k]; ok {
			return fmt.Errorf("userdb: add %s: %w", r.user.Address, ErrExists)
		}
		users[k] = r
		return nil
	})
}

func (s *fileStore) setSecrets(_ context.Context, k string, sec secrets, now time.Time) error {
	return s.update(func(users map[string]*record) error {
		r, ok := users[k]
		if !ok {
			return fmt.Errorf("userdb: set password of %s: %w", k, ErrNotFound)
		}
		u := r.user
		u.Updated = now
		users[k] = &record{user: u, secrets: sec}
		return nil
	})
}

func (s *fileStore) remove(_ context.Context, k string) error {
	return s.update(func(users map[string]*record) error {
		if _, ok := users[k]; !ok {
			return fmt.Errorf("userdb: delete %s: %w", k, ErrNotFound)
		}
		delete(users, k)
		return nil
	})
}

// update applies change to the current users file under the lock and
// writes the result back atomically; then this store holds the new users.
func (s *fileStore) update(change func(users map[string]*record) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.isClosed() {
		return ErrClosed
	}
	unlock, err := lockFile(s.path, s.owner)
	if err != nil {
		return err
	}
	defer unlock()
	users, _, err := readFile(s.path)
	if err != nil {
		return err
	}
	if err := change(users); err != nil {
		return err
	}
	data, err := encodeFile(users)
	if err != nil {
		return err
	}
	if err := writeFile(s.path, data, s.owner); err != nil {
		return err
	}
	// Still under the lock: the file on disk is the one just written.
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("userdb: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.users, s.sig = users, sigOf(fi)
	}
	return nil
}

// isClosed reports whether close has been called.
func (s *fileStore) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}
