package mailauth

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// WriteKey makes the directories, writes the key 0600, and never
// replaces a key.
func TestWriteKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, pemKey, err := GenerateKey(Ed25519SHA256)
	if err != nil {
		t.Fatal(err)
	}
	path := KeyPath(filepath.Join(dir, "data"), "example.com", "s1", Ed25519SHA256)
	if err := WriteKey(path, pemKey, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%v, %v", fi, err)
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v, %v", di, err)
	}
	if _, err := LoadKeyFile(path); err != nil {
		t.Errorf("the key written does not load: %v", err)
	}
	if err := WriteKey(path, []byte("other"), nil); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second write: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != string(pemKey) {
		t.Error("the key was replaced")
	}
}
