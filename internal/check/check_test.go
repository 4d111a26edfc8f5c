package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"postern/internal/config"
)

// A private key kept outside the data directory is checked for being
// readable by everyone; one inside it is the data-dir check's.
func TestKeyFileExposed(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o700)
	for _, c := range []struct {
		path    string
		mode    os.FileMode
		exposed bool
	}{
		{filepath.Join(dir, "key600.pem"), 0o600, false},
		{filepath.Join(dir, "key640.pem"), 0o640, false},
		{filepath.Join(dir, "key644.pem"), 0o644, true},
		{filepath.Join(dir, "key604.pem"), 0o604, true},
		{filepath.Join(data, "key644.pem"), 0o644, false},
		{filepath.Join(dir, "missing.pem"), 0, false},
	} {
		if c.mode != 0 {
			os.WriteFile(c.path, []byte("key"), 0o600)
			os.Chmod(c.path, c.mode)
		}
		msg, fix := keyFileExposed(c.path, data)
		if (msg != "") != c.exposed {
			t.Errorf("%s %04o: %q, want exposed=%v", c.path, c.mode, msg, c.exposed)
		}
		if c.exposed && (!strings.Contains(msg, "readable by everyone") || !strings.Contains(fix, "chmod o-rwx "+c.path)) {
			t.Errorf("%s: %q, fix %q", c.path, msg, fix)
		}
	}
}

// The embedded default, whose first start creates postmaster@localhost,
// is fine before that start, and check makes no data directory.
func TestCheckPostmasterFirstStart(t *testing.T) {
	dev := config.Dev(filepath.Join(t.TempDir(), "postern-data"))
	c := &Checker{Config: dev}
	c.checkPostmaster(context.Background())
	if len(c.out) != 1 || c.out[0].Status != StatusOK || !strings.Contains(c.out[0].Message, "postmaster@localhost is created at the first start") {
		t.Errorf("embedded default: %+v", c.out)
	}
	if _, err := os.Stat(dev.DataDir); err == nil {
		t.Errorf("check made the data directory %s", dev.DataDir)
	}
}
