//go:build unix

package userdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"postern/internal/fsutil"
)

// fileVersion is the format version the users file is written in. Version
// 1 (password hashes only) is still read; version 2 adds the mechanism
// secrets.
const fileVersion = 2

// maxFileSize bounds what a reload reads (about a million users).
const maxFileSize = 256 << 20

// fileData is the users file:
//
//	{"version": 2, "users": [{"address": "alice@example.org",
//	  "password": "$argon2id$v=19$...", "created": "...", "updated": "...",
//	  "scram_sha256": {"salt": "...", "iterations": 10000,
//	    "stored_key": "...", "server_key": "..."},
//	  "scram_sha1": {...}, "cram_md5": {"inner": "...", "outer": "..."}}]}
//
// Binary values are in standard base64 with padding.
type fileData struct {
	Version int        `json:"version"`
	Users   []fileUser `json:"users"`
}

// fileUser is one user in the users file.
type fileUser struct {
	Address     string     `json:"address"`
	Password    string     `json:"password"`
	Created     time.Time  `json:"created"`
	Updated     time.Time  `json:"updated"`
	SCRAMSHA256 *fileSCRAM `json:"scram_sha256,omitempty"`
	SCRAMSHA1   *fileSCRAM `json:"scram_sha1,omitempty"`
	CRAMMD5     *fileCRAM  `json:"cram_md5,omitempty"`
}

// fileSCRAM is a scramSecret in the users file.
type fileSCRAM struct {
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

// fileCRAM is a cramSecret in the users file.
type fileCRAM struct {
	Inner []byte `json:"inner"`
	Outer []byte `json:"outer"`
}

// fileSig identifies one version of the users file: writers replace the
// file by rename, so a new inode, or a new size or modification time, means
// new content.
type fileSig struct {
	dev, ino uint64
	size     int64
	mtime    int64
}

// sigOf returns the signature of fi.
func sigOf(fi os.FileInfo) fileSig {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileSig{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	}
	return fileSig{dev: uint64(st.Dev), ino: uint64(st.Ino), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// lockPath returns the lock file next to the users file: users.json ->
// users.lock.
func lockPath(path string) string {
	return strings.TrimSuffix(path, ".json") + ".lock"
}

// lockFile takes an exclusive flock on the lock file, creating it (0600)
// when missing and giving it to owner when not nil, and returns the
// function that releases it. Each call opens the file anew, so two
// callers in one process exclude each other too (flock locks belong to
// the open file description).
func lockFile(path string, owner *fsutil.Owner) (unlock func(), err error) {
	f, err := os.OpenFile(lockPath(path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("userdb: open lock: %w", err)
	}
	if err := owner.Chown(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("userdb: lock %s: %w", lockPath(path), err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("userdb: lock %s: %w", lockPath(path), err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// readFile reads and parses the users file, returning the users and the
// signature of the version read (from the open file, so they agree even if
// a writer replaces the file meanwhile).
func readFile(path string) (map[string]*record, fileSig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileSig{}, fmt.Errorf("userdb: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileSig{}, fmt.Errorf("userdb: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fileSig{}, fmt.Errorf("userdb: read %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fileSig{}, fmt.Errorf("userdb: %s is larger than %d bytes", path, maxFileSize)
	}
	users, err := parseFile(b)
	if err != nil {
		return nil, fileSig{}, fmt.Errorf("userdb: %s: %w", path, err)
	}
	return users, sigOf(fi), nil
}

// parseFile parses the users file strictly: a known version, no unknown
// fields, every address valid and unique (ignoring case), every hash a
// valid Argon2id PHC string, every mechanism secret well formed (and none
// in a version 1 file). One bad record refuses the whole file, so a server
// keeps its last good copy rather than losing users.
func parseFile(b []byte) (map[string]*record, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var fd fileData
	if err := dec.Decode(&fd); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse: data after the JSON object")
	}
	if fd.Version != 1 && fd.Version != fileVersion {
		return nil, fmt.Errorf("unknown version %d", fd.Version)
	}
	users := make(map[string]*record, len(fd.Users))
	for i, u := range fd.Users {
		addr, err := NormalizeAddress(u.Address)
		if err != nil {
			return nil, fmt.Errorf("user %d: %w", i+1, err)
		}
		if addr != u.Address {
			return nil, fmt.Errorf("user %d: address %q has an upper-case domain", i+1, u.Address)
		}
		k := userKey(addr)
		if _, dup := users[k]; dup {
			return nil, fmt.Errorf("user %d: duplicate address %q", i+1, addr)
		}
		if fd.Version == 1 && (u.SCRAMSHA256 != nil || u.SCRAMSHA1 != nil || u.CRAMMD5 != nil) {
			return nil, fmt.Errorf("user %q: mechanism secrets in a version 1 file", addr)
		}
		r := &record{user: User{Address: addr, Created: u.Created, Updated: u.Updated}}
		r.hash = u.Password
		if r.phc, err = parsePHC(u.Password); err != nil {
			return nil, fmt.Errorf("user %q: %w", addr, err)
		}
		if r.scram256, err = u.SCRAMSHA256.secret(sha256Size); err != nil {
			return nil, fmt.Errorf("user %q: scram_sha256: %w", addr, err)
		}
		if r.scram1, err = u.SCRAMSHA1.secret(sha1Size); err != nil {
			return nil, fmt.Errorf("user %q: scram_sha1: %w", addr, err)
		}
		if r.cram, err = u.CRAMMD5.secret(); err != nil {
			return nil, fmt.Errorf("user %q: cram_md5: %w", addr, err)
		}
		users[k] = r
	}
	return users, nil
}

// secret checks and converts f (nil gives nil); keys must be size bytes.
func (f *fileSCRAM) secret(size int) (*scramSecret, error) {
	if f == nil {
		return nil, nil
	}
	s := &scramSecret{salt: f.Salt, iterations: f.Iterations, storedKey: f.StoredKey, serverKey: f.ServerKey}
	if err := s.check(size); err != nil {
		return nil, err
	}
	return s, nil
}

// secret checks and converts f (nil gives nil).
func (f *fileCRAM) secret() (*cramSecret, error) {
	if f == nil {
		return nil, nil
	}
	if len(f.Inner) != 16 || len(f.Outer) != 16 {
		return nil, errors.New("contexts are not 16 bytes each")
	}
	var c cramSecret
	copy(c.inner[:], f.Inner)
	copy(c.outer[:], f.Outer)
	return &c, nil
}

// fileSecret converts s for the users file (nil gives nil).
func fileSecret(s *scramSecret) *fileSCRAM {
	if s == nil {
		return nil
	}
	return &fileSCRAM{Salt: s.salt, Iterations: s.iterations, StoredKey: s.storedKey, ServerKey: s.serverKey}
}

// encodeFile renders users as the users file, sorted by key.
func encodeFile(users map[string]*record) ([]byte, error) {
	fd := fileData{Version: fileVersion, Users: make([]fileUser, 0, len(users))}
	keys := make([]string, 0, len(users))
	for k := range users {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := users[k]
		fu := fileUser{
			Address: r.user.Address, Password: r.hash,
			Created: r.user.Created.UTC(), Updated: r.user.Updated.UTC(),
			SCRAMSHA256: fileSecret(r.scram256), SCRAMSHA1: fileSecret(r.scram1),
		}
		if r.cram != nil {
			fu.CRAMMD5 = &fileCRAM{Inner: r.cram.inner[:], Outer: r.cram.outer[:]}
		}
		fd.Users = append(fd.Users, fu)
	}
	b, err := json.MarshalIndent(fd, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("userdb: encode: %w", err)
	}
	return append(b, '\n'), nil
}

// writeFile replaces path with data atomically and durably (mode 0600),
// giving it to owner when not nil. The caller holds the lock.
func writeFile(path string, data []byte, owner *fsutil.Owner) error {
	if err := fsutil.WriteFileOwned(path, data, 0o600, owner); err != nil {
		return fmt.Errorf("userdb: %w", err)
	}
	return nil
}
