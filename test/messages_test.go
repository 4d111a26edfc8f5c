package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMessagesLeadToTheFix: each first-week mistake, made with the real
// binary, gets a message that names the cause and the fix (issue 13 §7).
func TestMessagesLeadToTheFix(t *testing.T) {
	integration(t)
	s := testConfig(t, sharedTempDir(t, "postern-msg-", 0o755), "")
	s.start()

	t.Run("two servers on one data directory", func(t *testing.T) {
		// Another configuration, other ports, the same data_dir.
		b := testConfig(t, t.TempDir(), "")
		cfg, _ := os.ReadFile(b.config)
		os.WriteFile(b.config, []byte(strings.Replace(string(cfg), fmt.Sprintf("data_dir = %q", b.data), fmt.Sprintf("data_dir = %q", s.data), 1)), 0o600)
		out, err := exec.Command(binPath, "serve", "--config", b.config).CombinedOutput()
		want := fmt.Sprintf("is in use by another postern (pid %d)", s.cmd.Process.Pid)
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("second server: %v, want %q:\n%s", err, want, out)
		}
	})

	t.Run("user add of something that is not an address", func(t *testing.T) {
		out, code := s.runOut("long-enough-pw\n", "user", "add", "not an address")
		if code == 0 || !strings.Contains(out, `"not an address" is not an address: write it as local@domain`) {
			t.Errorf("exit %d: %s", code, out)
		}
	})

	t.Run("user add of an existing user", func(t *testing.T) {
		s.addUser("alice@example.test", "pw-alice-12")
		out, code := s.runOut("another-password\n", "user", "add", "alice@example.test")
		if code == 0 || strings.TrimSpace(out) != "postern: user add: alice@example.test exists already (postern user passwd alice@example.test sets a new password)" {
			t.Errorf("exit %d: %q", code, out)
		}
	})

	t.Run("a short password", func(t *testing.T) {
		out, code := s.runOut("short\n", "user", "add", "bob@example.test")
		if code == 0 || !strings.Contains(out, "the password has 5 characters; at least 8 are required (--force sets it anyway)") {
			t.Errorf("exit %d: %s", code, out)
		}
		if out, code := s.runOut("short\n", "user", "add", "bob@example.test", "--force"); code != 0 {
			t.Errorf("--force: exit %d: %s", code, out)
		}
	})

	t.Run("user delete holds at once", func(t *testing.T) {
		s.addUser("carl@example.test", "carl-password")
		if out, code := s.runOut("", "user", "delete", "carl@example.test"); code != 0 {
			t.Fatalf("delete: exit %d: %s", code, out)
		}
		// No wait: the server has read the file before delete returned.
		c, err := dial(t, s.sub, "carl@example.test", "carl-password")
		if err == nil {
			c.Close()
			t.Fatal("a deleted user still logs in right after postern user delete")
		}
		if !strings.Contains(err.Error(), "535") {
			t.Errorf("login of a deleted user: %v, want 535", err)
		}
	})

	t.Run("ban add with a bad duration", func(t *testing.T) {
		out, code := s.runOut("", "ban", "add", "192.0.2.9", "--for", "2days")
		if code != 64 || !strings.Contains(out, "as in 90m, 48h or 720h") {
			t.Errorf("exit %d: %s", code, out)
		}
	})

	t.Run("ban add of a prefix with host bits, and over a ban", func(t *testing.T) {
		out, code := s.runOut("", "ban", "add", "10.1.2.3/8")
		if code != 64 || !strings.Contains(out, "10.1.2.3/8 has host bits set: it would ban all of 10.0.0.0/8") {
			t.Errorf("exit %d: %s", code, out)
		}
		if out, code := s.runOut("", "ban", "add", "192.0.2.10", "--for", "48h", "--reason", "first"); code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		out, code = s.runOut("", "ban", "add", "192.0.2.10", "--for", "1h", "--reason", "second")
		if code != 0 || !strings.Contains(out, "the new ban ends sooner") || !strings.Contains(out, `its reason was "first", now "second"`) {
			t.Errorf("exit %d: %s", code, out)
		}
	})

	t.Run("reload error without stutter", func(t *testing.T) {
		users := filepath.Join(s.data, "users.json")
		good, _ := os.ReadFile(users)
		os.WriteFile(users, []byte("{bad"), 0o600)
		defer os.WriteFile(users, good, 0o600)
		out, code := s.runOut("", "reload")
		// The report of what did reload (stdout), then the error, once.
		if code == 0 || !strings.Contains(out, "\npostern: reload failed, the server serves on with what it had: users kept: ") ||
			strings.Count(out, "reload failed") != 1 || strings.Count(out, "users kept") != 1 || strings.Count(out, "userdb:") > 1 {
			t.Errorf("exit %d: %q", code, out)
		}
	})

	t.Run("check with several configuration errors", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.toml")
		os.WriteFile(bad, []byte("hostname = \"x y\"\nbogus = 1\n[tls]\nself_signed = 3\n"), 0o600)
		chk, _ := exec.Command(binPath, "check", "--config", bad).CombinedOutput()
		srv, _ := exec.Command(binPath, "serve", "--config", bad).CombinedOutput()
		var fails []string
		for _, l := range strings.Split(string(chk), "\n") {
			if m, ok := strings.CutPrefix(l, "FAIL config: "); ok {
				fails = append(fails, m)
			}
		}
		if len(fails) != 3 {
			t.Fatalf("check: %d FAIL config lines, want 3 (one per problem):\n%s", len(fails), chk)
		}
		for _, f := range fails {
			if !strings.Contains(string(srv), f) {
				t.Errorf("check's line %q is not one of serve's:\n%s", f, srv)
			}
		}
	})
}

// TestPrivilegedPortAsUser: binding port 25 as an ordinary user names
// the three ways to get it.
func TestPrivilegedPortAsUser(t *testing.T) {
	integration(t)
	s, setpriv := nobodyServer(t, "postern-port-", "needs root to run the server as nobody")
	s.editConfig(fmt.Sprintf("address = %q", s.mx), `address = "127.0.0.1:25"`)
	cmd := exec.Command(setpriv, append(asNobody, binPath, "serve", "--config", s.config)...)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("serve did not fail")
	}
	for _, want := range []string{"bind: permission denied", `ports below 1024 need privilege: start postern as root with user = "postern"`, "CAP_NET_BIND_SERVICE", "contrib/postern.socket"} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("serve on port 25 as nobody: %v, want %q:\n%s", err, want, out)
		}
	}
}
