package fsutil

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// TempSuffix ends the name of a TempFile that could not be unnamed: a
// file so named that survived a crash was never linked, and its owner
// removes it.
const TempSuffix = ".tmp"

// TempFile is a file being written that gets its final name only once
// complete (Link). Where the kernel and the file system allow it, it is
// an unnamed file (O_TMPFILE), so that a crash before Link leaves
// nothing behind; elsewhere it is named after its final name with
// TempSuffix, and Link renames it.
type TempFile struct {
	*os.File
	tmpPath string // "" for an unnamed file
	named   bool   // Link gave it its name
}

// CreateTemp creates a TempFile in dir, open for reading and writing,
// mode 0600, that is to be named name. With unnamed false it makes the
// named kind at once (see CanLinkUnnamed).
func CreateTemp(dir, name string, unnamed bool) (*TempFile, error) {
	if unnamed {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return &TempFile{File: os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)"))}, nil
		}
		if err != unix.EOPNOTSUPP && err != unix.EISDIR && err != unix.EINVAL {
			return nil, &os.PathError{Op: "open", Path: dir, Err: err}
		}
	}
	p := filepath.Join(dir, name+TempSuffix)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &TempFile{File: f, tmpPath: p}, nil
}

// Link gives the file the name dir/name it was created for (path). It
// does not fsync the file or the directory. It fails with an error
// wrapping fs.ErrExist when the name is taken.
func (t *TempFile) Link(path string) error {
	if t.tmpPath != "" {
		// link(2) and unlink rather than rename(2), which would replace
		// a file of that name.
		if err := os.Link(t.tmpPath, path); err != nil {
			return err
		}
		t.named = true
		os.Remove(t.tmpPath)
		return nil
	}
	if err := LinkUnnamed(int(t.Fd()), path); err != nil {
		return err
	}
	t.named = true
	return nil
}

// Discard closes the file and, unless Link named it, removes it.
func (t *TempFile) Discard() error {
	err := t.Close()
	if t.tmpPath != "" && !t.named {
		if rerr := os.Remove(t.tmpPath); err == nil {
			err = rerr
		}
	}
	return err
}

// LinkUnnamed gives the O_TMPFILE fd the name path: through its
// /proc/self/fd link, or with AT_EMPTY_PATH when /proc is not there
// (Linux 6.10 and later allow that to the process that opened the file;
// earlier kernels want CAP_DAC_READ_SEARCH).
func LinkUnnamed(fd int, path string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if err != nil && err != unix.EEXIST {
		err = unix.Linkat(fd, "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH)
	}
	if err != nil {
		return &os.LinkError{Op: "linkat", Old: "O_TMPFILE", New: path, Err: err}
	}
	return nil
}

// CanLinkUnnamed reports whether this process can create an unnamed
// file in dir and link it (see TempFile): it tries, and removes what it
// made.
func CanLinkUnnamed(dir string) bool {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	p := filepath.Join(dir, ".probe-"+strconv.Itoa(os.Getpid()))
	os.Remove(p)
	if err := LinkUnnamed(fd, p); err != nil {
		return false
	}
	os.Remove(p)
	return true
}
