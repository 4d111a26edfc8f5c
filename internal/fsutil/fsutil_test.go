package fsutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("read %q, %v", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	// A directory that does not exist: an error, nothing written.
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// owner returns the uid and gid of name (not following a final link).
func owner(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(name, &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid), int(st.Gid)
}

// needRoot skips a test that gives files away.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may give a file to another user")
	}
}

func TestWriteFileOwned(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "users.json")
	nobody := &Owner{UID: 65534, GID: 65534}
	if err := WriteFileOwned(p, []byte("one"), 0o600, nobody); err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(t, p); uid != 65534 || gid != 65534 {
		t.Errorf("new file belongs to %d:%d, want 65534:65534", uid, gid)
	}
	// Replacing a root-owned file gives the new one to the owner too.
	os.Chown(p, 0, 0)
	if err := WriteFileOwned(p, []byte("two"), 0o600, nobody); err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(t, p); uid != 65534 || gid != 65534 {
		t.Errorf("replaced file belongs to %d:%d, want 65534:65534", uid, gid)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	// A nil owner leaves the file to the process.
	if err := WriteFileOwned(p, []byte("three"), 0o600, nil); err != nil {
		t.Fatal(err)
	}
	if uid, _ := owner(t, p); uid != 0 {
		t.Errorf("nil owner: uid %d, want 0", uid)
	}
}

func TestMkdirAllOwned(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	nobody := &Owner{UID: 65534, GID: 65534}
	deep := filepath.Join(dir, "data", "dkim", "example.org")
	if err := MkdirAll(deep, 0o700, nobody); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"data", "data/dkim", "data/dkim/example.org"} {
		if uid, gid := owner(t, filepath.Join(dir, p)); uid != 65534 || gid != 65534 {
			t.Errorf("%s belongs to %d:%d, want 65534:65534", p, uid, gid)
		}
		if st, _ := os.Stat(filepath.Join(dir, p)); st.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", p, st.Mode().Perm())
		}
	}
	// Directories that existed are left as they were: the temporary
	// directory (root's), and one made by root before.
	if uid, _ := owner(t, dir); uid != 0 {
		t.Errorf("existing parent given away: uid %d", uid)
	}
	os.Mkdir(filepath.Join(dir, "data", "acme"), 0o700)
	if err := MkdirAll(filepath.Join(dir, "data", "acme", "mail.example.org"), 0o700, nobody); err != nil {
		t.Fatal(err)
	}
	if uid, _ := owner(t, filepath.Join(dir, "data", "acme")); uid != 0 {
		t.Errorf("existing data/acme given away: uid %d", uid)
	}
	if uid, _ := owner(t, filepath.Join(dir, "data", "acme", "mail.example.org")); uid != 65534 {
		t.Errorf("new data/acme/mail.example.org: uid %d, want 65534", uid)
	}
	// Existing throughout: nothing to do; a file in the way: an error.
	if err := MkdirAll(deep, 0o700, nobody); err != nil {
		t.Errorf("existing: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o600)
	if err := MkdirAll(filepath.Join(dir, "file", "sub"), 0o700, nobody); err == nil {
		t.Error("MkdirAll through a file succeeded")
	}
}

func TestOwnerFile(t *testing.T) {
	needRoot(t)
	p := filepath.Join(t.TempDir(), "users.lock")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var none *Owner
	if err := none.Chown(f); err != nil {
		t.Errorf("nil owner: %v", err)
	}
	if uid, _ := owner(t, p); uid != 0 {
		t.Errorf("nil owner changed the owner: uid %d", uid)
	}
	if err := (&Owner{UID: 65534, GID: 65534}).Chown(f); err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(t, p); uid != 65534 || gid != 65534 {
		t.Errorf("belongs to %d:%d, want 65534:65534", uid, gid)
	}
}
