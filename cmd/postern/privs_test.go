package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"postern/internal/config"
	"postern/internal/fsutil"
)

// TestCommandsGiveFilesToUser: run as root with user set, the commands
// that write into the data directory (user, dkim keygen) give what they
// create or replace to that user, so the server can read it after its
// privilege drop.
func TestCommandsGiveFilesToUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may give a file to another user")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "postern.toml")
	os.WriteFile(cfgFile, []byte(`user = "nobody"
group = "nogroup"
hostname = "mail.example.com"
local_domains = ["example.com"]
data_dir = "data"
[tls]
self_signed = true
`), 0o600)
	// users.json made by root before the fix: replaced, it is given away.
	os.Mkdir(data, 0o700)
	os.Chown(data, 65534, 65534)
	var out bytes.Buffer
	for _, args := range [][]string{
		{"user", "add", "alice@example.com"},
		{"user", "passwd", "alice@example.com"},
		{"dkim", "keygen", "example.com", "--selector", "s1", "--algorithm", "ed25519"},
	} {
		if code := run(append(args, "--config", cfgFile), strings.NewReader("pw-alice-1\n"), &out, &out); code != 0 {
			t.Fatalf("%q: exit %d\n%s", args, code, out.String())
		}
	}
	for _, p := range []string{"", "users.json", "users.lock", "dkim", "dkim/example.com", "dkim/example.com/s1.ed25519.pem"} {
		fi, err := os.Lstat(filepath.Join(data, p))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 65534 || st.Gid != 65534 {
			t.Errorf("%q belongs to %d:%d, want nobody:nogroup (65534:65534)", p, st.Uid, st.Gid)
		}
	}
	// A data directory the command creates belongs to the user too.
	os.RemoveAll(data)
	if code := run([]string{"user", "add", "bob@example.com", "--config", cfgFile}, strings.NewReader("pw-bob-1\n"), &out, &out); code != 0 {
		t.Fatalf("user add into a new data dir: exit %d\n%s", code, out.String())
	}
	if err := fsutil.CheckDataDir(data, "", "", 65534); err != nil {
		t.Errorf("data dir made by user add, for a server running as nobody: %v", err)
	}
}

// TestCommandsGiveFilesToDirOwner: run as root without user in the
// configuration (systemd starts the server as its user), the commands
// give what they write to the data directory's owner, the uid the
// server runs as; a directory root owns (or none yet) stays root's.
func TestCommandsGiveFilesToDirOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only root may give a file to another user")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgFile := filepath.Join(dir, "postern.toml")
	os.WriteFile(cfgFile, []byte(`hostname = "mail.example.com"
local_domains = ["example.com"]
data_dir = "data"
[tls]
self_signed = true
`), 0o600)
	cfg := &config.Config{DataDir: data}
	if o, err := dataOwner(cfg); o != nil || err != nil {
		t.Errorf("no data directory: %+v, %v; want nil", o, err)
	}
	os.Mkdir(data, 0o700)
	if o, err := dataOwner(cfg); o != nil || err != nil {
		t.Errorf("root's data directory: %+v, %v; want nil", o, err)
	}
	os.Chown(data, 65534, 65533)
	if o, err := dataOwner(cfg); o == nil || o.UID != 65534 || o.GID != 65533 || err != nil {
		t.Errorf("nobody's data directory: %+v, %v; want 65534:65533", o, err)
	}
	var out bytes.Buffer
	if code := run([]string{"user", "add", "alice@example.com", "--config", cfgFile}, strings.NewReader("pw-alice-1\n"), &out, &out); code != 0 {
		t.Fatalf("user add: exit %d\n%s", code, out.String())
	}
	for _, p := range []string{"users.json", "users.lock"} {
		fi, err := os.Lstat(filepath.Join(data, p))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65533 || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %d:%d mode %04o, want 65534:65533 mode 0600", p, st.Uid, st.Gid, fi.Mode().Perm())
		}
	}
}
