package test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// nobodyServer describes a server (not started) for a test run as root
// that runs postern as nobody (uid and gid 65534) with setpriv: its
// directory and configuration readable by all, its data directory
// nobody's. It returns setpriv's path too, and skips, saying why, when
// the test is not root.
func nobodyServer(t *testing.T, prefix, why string) (s *server, setpriv string) {
	t.Helper()
	needRoot(t, why)
	setpriv = needTool(t, "setpriv")
	s = testConfig(t, sharedTempDir(t, prefix, 0o755), "")
	os.Chmod(s.config, 0o644)
	if err := os.Mkdir(s.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(s.data, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return s, setpriv
}

// asNobody are setpriv's options that run its command as nobody.
var asNobody = []string{"--reuid=65534", "--regid=65534", "--clear-groups"}

// TestCommandsAsRootKeepServerUser: the server runs as nobody (started
// with setpriv, as a systemd unit with User= would, and no user key in
// the configuration) on a data directory nobody owns. The commands an
// administrator runs with sudo write files the server can still read:
// they belong to the data directory's owner, with the modes the server
// would give them, and the server takes the change (the new user logs
// in). postern check, as root, does not suggest giving the directory to
// root.
func TestCommandsAsRootKeepServerUser(t *testing.T) {
	integration(t)
	s, setpriv := nobodyServer(t, "postern-asroot-", "needs root")
	s.startCmd(func(cmd *exec.Cmd) {
		args := append(append([]string{"setpriv"}, asNobody...), binPath)
		cmd.Args = append(args, cmd.Args[1:]...)
		cmd.Path = setpriv
	})
	if got := procUID(t, s.cmd.Process.Pid); got != "65534 65534 65534 65534" {
		t.Fatalf("server uids %q, want nobody's", got)
	}

	// As root: user add, then the login that needs the server to read
	// users.json.
	s.addUser("zed@example.test", "zed-password-1")
	if out, err := s.run("", "dkim", "keygen", "example.test", "--selector", "s1", "--algorithm", "ed25519"); err != nil {
		t.Fatalf("dkim keygen: %v\n%s", err, out)
	}
	if out, err := s.run("zed-password-2\n", "user", "passwd", "zed@example.test"); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	for _, f := range []struct {
		rel  string
		mode fs.FileMode
	}{
		{"users.json", 0o600},
		{"users.lock", 0o600},
		{"dkim", 0o700},
		{"dkim/example.test", 0o700},
		{"dkim/example.test/s1.ed25519.pem", 0o600},
	} {
		fi, err := os.Stat(filepath.Join(s.data, f.rel))
		if err != nil {
			t.Errorf("%s: %v", f.rel, err)
			continue
		}
		if uid := statUID(fi); uid != 65534 {
			t.Errorf("%s belongs to uid %d after a command run as root, want 65534 (the data directory's owner)", f.rel, uid)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %04o, want %04o", f.rel, fi.Mode().Perm(), f.mode)
		}
	}
	// The server (nobody) reads the file root replaced: the new password
	// logs in.
	s.waitLogin("zed@example.test", "zed-password-2").Quit()

	// postern check, as root: the directory is as it should be for a
	// server running as its owner.
	out, _ := s.run("", "check")
	if !strings.Contains(out, "OK   data-dir: ") {
		t.Errorf("check: data-dir not OK:\n%s", out)
	}
	// A file root left behind: the fix gives it to the server's user
	// (the directory's owner), never to root.
	stray := filepath.Join(s.data, "stray")
	if err := os.WriteFile(stray, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ = s.run("", "check")
	if !strings.Contains(out, "chown -R nobody: "+s.data) {
		t.Errorf("check: fix for a root-owned entry does not name nobody:\n%s", out)
	}
	if strings.Contains(out, "chown -R root") {
		t.Errorf("check suggests giving the data directory to root:\n%s", out)
	}
}
