package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procUID returns the real, effective, saved and file-system uids of pid.
func procUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatal("no Uid line in /proc status")
	return ""
}

func TestPrivilegeDrop(t *testing.T) {
	integration(t)
	needRoot(t, "needs root")
	dir := t.TempDir()
	// nobody must reach the data directory through the test's directories.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o711)
	}
	s := testConfig(t, dir, "")
	cfg, _ := os.ReadFile(s.config)
	os.WriteFile(s.config, append([]byte("user = \"nobody\"\n"), cfg...), 0o600)
	s.start()
	if got := procUID(t, s.cmd.Process.Pid); got != "65534 65534 65534 65534" {
		t.Errorf("Uid after the drop: %q, want nobody's everywhere", got)
	}
	if !strings.Contains(s.stderr.String(), `msg="privileges dropped" user=nobody uid=65534`) {
		t.Errorf("no privileges dropped event:\n%s", s.stderr.String())
	}
	// What the server made belongs to nobody, and mail still flows
	// (root may use the socket of the user the server runs as).
	for _, p := range []string{"", "tls/key.pem", "queue", "admin.sock"} {
		if fi, err := os.Stat(filepath.Join(s.data, p)); err != nil {
			t.Fatalf("%s: %v", p, err)
		} else if uid := statUID(fi); uid != 65534 {
			t.Errorf("%s belongs to uid %d, want 65534", p, uid)
		}
	}
	if out, code := s.sendmail("", "Subject: as nobody\n\nb\n", "postmaster@localhost"); code != 0 {
		t.Fatalf("sendmail: exit %d: %s", code, out)
	}
	// postern user, run as root, gives the users file it replaces to
	// nobody: the server reads it and the new user logs in (addUser
	// waits for that).
	s.addUser("alice@example.test", "pw-alice-1")
	for _, p := range []string{"users.json", "users.lock"} {
		if fi, err := os.Stat(filepath.Join(s.data, p)); err != nil {
			t.Fatalf("%s: %v", p, err)
		} else if uid := statUID(fi); uid != 65534 {
			t.Errorf("%s belongs to uid %d after postern user add as root, want 65534", p, uid)
		}
	}
	// postern check, as root, finds the data directory as it should be
	// for a server that runs as nobody.
	out, _ := s.run("", "check", "--json")
	if !strings.Contains(out, `"check": "data-dir",
    "status": "OK"`) {
		t.Errorf("postern check: no OK data-dir result:\n%s", out)
	}
}

func TestDataDirChecked(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	s := testConfig(t, dir, "")
	if err := os.MkdirAll(s.data, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(s.data, 0o777)
	out, err := exec.Command(binPath, "serve", "--config", s.config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is writable by others (mode 0777); fix: chown -R") || !strings.Contains(string(out), "chmod 700 "+s.data) {
		t.Errorf("group- and world-writable data dir: %v\n%s", err, out)
	}
	if os.Geteuid() == 0 {
		os.Chmod(s.data, 0o700)
		os.Chown(s.data, 65534, 65534)
		out, err := exec.Command(binPath, "serve", "--config", s.config).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "belongs to uid 65534, but Postern runs as uid 0") {
			t.Errorf("data dir of another user: %v\n%s", err, out)
		}
	}
}

func TestSocketActivation(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	// The test binds the configured addresses itself, as systemd would;
	// a server that tried to bind them again would fail to start.
	var files []*os.File
	for _, addr := range []string{s.mx, s.sub, s.subs, s.http} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		defer f.Close()
		files = append(files, f)
	}
	s.startCmd(func(cmd *exec.Cmd) {
		// LISTEN_PID must be the server's pid: a shell exports its own
		// and execs the server in its place.
		cmd.Args = append([]string{"sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, binPath}, cmd.Args[1:]...)
		cmd.Path = "/bin/sh"
		cmd.ExtraFiles = files
		cmd.Env = append(os.Environ(), "LISTEN_FDS=4", "LISTEN_FDNAMES=mx:submission:submissions:http")
	})
	for _, f := range files {
		f.Close()
	}
	for _, name := range []string{"mx", "submission", "submissions", "http"} {
		if !strings.Contains(s.stderr.String(), `msg="socket from systemd" fd=`) || !strings.Contains(s.stderr.String(), "name="+name+" ") {
			t.Errorf("socket %s not taken from systemd:\n%s", name, s.stderr.String())
		}
	}
	// The passed sockets serve: a message to a local user over mx.
	s.addUser("postmaster@localhost", "pw-postmaster-1")
	c, err := net.DialTimeout("tcp", s.mx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "220 ") {
		t.Errorf("mx greeting %q", buf[:n])
	}
}

// statUID returns the owner of a file.
func statUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
