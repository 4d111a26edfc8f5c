// Package fsutil holds the file-system primitive several parts of Postern
// need: replacing a file atomically and durably.
package fsutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile replaces name with data, atomically and durably: it writes a
// temporary file with mode perm in the same directory, fsyncs it, renames
// it over name and fsyncs the directory. A reader sees the old file or the
// new one, never a part; after WriteFile returns nil the new one survives
// a crash. On error the temporary file is removed and name is unchanged.
func WriteFile(name string, data []byte, perm fs.FileMode) (err error) {
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
	if err = f.Chmod(perm); err != nil {
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
