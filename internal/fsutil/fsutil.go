// Package fsutil holds the file-system primitives several parts of
// Postern need: replacing a file atomically and durably, and giving what
// a command run as root creates to the user the server runs as; and the
// owner and mode checks of the data directory (serve's and check's).
package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Owner is the user and group that files and directories are given to
// when a command run as root writes into the data directory of a server
// that runs as another user: without it the server could not read or
// replace them. A nil *Owner leaves them to the process that made them.
type Owner struct {
	UID, GID int
}

// Chown gives the open file f to o; a nil o does nothing.
func (o *Owner) Chown(f *os.File) error {
	if o == nil {
		return nil
	}
	return f.Chown(o.UID, o.GID)
}

// MkdirAll is os.MkdirAll, except that each directory it creates is
// given to owner (when not nil). Directories that exist already keep
// their owner and mode.
func MkdirAll(path string, perm fs.FileMode, owner *Owner) error {
	if owner == nil {
		return os.MkdirAll(path, perm)
	}
	path = filepath.Clean(path)
	// The directories missing, deepest first.
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("fsutil: mkdir %s: %s is not a directory", path, p)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("fsutil: mkdir %s: %w", path, err)
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := missing[i]
		if err := os.Mkdir(p, perm); err != nil {
			if errors.Is(err, fs.ErrExist) { // made meanwhile, by someone else: theirs
				continue
			}
			return fmt.Errorf("fsutil: %w", err)
		}
		if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
			return fmt.Errorf("fsutil: %w", err)
		}
	}
	return nil
}

// WriteFile replaces name with data, atomically and durably: it writes a
// temporary file with mode perm in the same directory, fsyncs it, renames
// it over name and fsyncs the directory. A reader sees the old file or the
// new one, never a part; after WriteFile returns nil the new one survives
// a crash. On error the temporary file is removed and name is unchanged.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	return WriteFileOwned(name, data, perm, nil)
}

// WriteFileOwned is WriteFile that also gives the new file to owner
// (when not nil) before it replaces name, so that name never belongs to
// anyone else, even for a moment.
func WriteFileOwned(name string, data []byte, perm fs.FileMode, owner *Owner) (err error) {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".*.tmp")
	if err != nil {
		return fmt.Errorf("fsutil: write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("fsutil: write %s: %w", name, err)
		}
	}()
	if err = owner.Chown(f); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil { // after chown, which may clear set-id bits
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), name); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
