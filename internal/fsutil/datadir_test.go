package fsutil

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o700)
	if err := CheckDataDir(dir, "", "", os.Geteuid()); err != nil {
		t.Errorf("0700, ours: %v", err)
	}
	os.Chmod(dir, 0o770)
	err := CheckDataDir(dir, "postern", "", os.Geteuid())
	if err == nil || !strings.Contains(err.Error(), "writable by others (mode 0770); fix: chown -R postern: "+dir+" && chmod 700 "+dir) {
		t.Errorf("0770: %v", err)
	}
	os.Chmod(dir, 0o750)
	if err := CheckDataDir(dir, "", "", os.Geteuid()); err != nil {
		t.Errorf("0750: %v", err)
	}
	if err := CheckDataDir(filepath.Join(dir, "missing"), "", "", os.Geteuid()); err == nil || !strings.HasPrefix(err.Error(), "data directory: ") {
		t.Errorf("missing: %v", err)
	}
}

// InspectDataDir finds each kind of problem once per entry, passing
// over links and sockets; shallow, only the directory itself.
func TestInspectDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(dir, "dkim"), 0o700)
	for f, m := range map[string]os.FileMode{"users.json": 0o640, "tls/cert.pem": 0o644, "dkim/k.pem": 0o604, "state.db": 0o666} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700)
		os.WriteFile(filepath.Join(dir, f), nil, m)
		os.Chmod(filepath.Join(dir, f), m)
	}
	os.Symlink("/etc/passwd", filepath.Join(dir, "link"))
	fs, n, unread, err := InspectDataDir(dir, os.Geteuid(), true)
	if err != nil || len(unread) != 0 || n != 7 {
		t.Fatalf("n %d, unread %v, err %v", n, unread, err)
	}
	want := map[string]string{"users.json": FindReadable, "dkim/k.pem": FindReadable, "state.db": FindWritable}
	if len(fs) != len(want) {
		t.Fatalf("%+v", fs)
	}
	for _, f := range fs {
		if want[f.Rel] != f.Kind || (f.Rel == "dkim/k.pem") != f.World {
			t.Errorf("%+v", f)
		}
	}
	if fs, _, _, err := InspectDataDir(dir, os.Geteuid(), false); err != nil || len(fs) != 0 {
		t.Errorf("shallow: %+v, %v", fs, err)
	}
	if !SecretFile("dkim/example.com/s1.rsa.pem") || !SecretFile("acme/x.key") || SecretFile("tls/cert.pem") {
		t.Error("SecretFile")
	}
}
