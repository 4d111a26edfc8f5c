// Package dovecottest runs Dovecot's LMTP server (Debian's dovecot-lmtpd)
// for tests: a real mailbox server on a loopback port of its own, with a
// passwd-file of users and Maildirs in a temporary directory.
//
// Dovecot refuses to store mail as root, so the mailboxes belong to the
// user nobody; the test runs as root (scripts/test does) or is skipped.
package dovecottest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Server is a running Dovecot LMTP server.
type Server struct {
	// Addr is the LMTP listener, 127.0.0.1:PORT.
	Addr string
	dir  string
	log  string
}

// Start runs Dovecot with an LMTP listener on a free loopback port and
// the given users (addresses; mail for anyone else gets 550 5.1.1), and
// stops it when t ends. Without Dovecot the test is skipped, or fails
// under POSTERN_INTEGRATION=1; it is skipped when not root.
func Start(t testing.TB, users ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		bin = "/usr/sbin/dovecot"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("POSTERN_INTEGRATION") != "" {
			t.Fatalf("dovecot is required (scripts/test installs dovecot-lmtpd): %v", err)
		}
		t.Skip("dovecot not installed")
	}
	if os.Geteuid() != 0 {
		t.Skip("dovecot's mailboxes belong to nobody here: needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	// Under /tmp itself: Dovecot's processes running as nobody must
	// reach the mailboxes, which t.TempDir's 0700 parents forbid.
	dir, err := os.MkdirTemp("", "dovecottest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"run", "state", "mail"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mail := filepath.Join(dir, "mail")
	var uid, gid int
	fmt.Sscan(nobody.Uid, &uid)
	fmt.Sscan(nobody.Gid, &gid)
	if err := os.Chown(mail, uid, gid); err != nil {
		t.Fatal(err)
	}
	var pw bytes.Buffer
	for _, u := range users {
		fmt.Fprintf(&pw, "%s:{PLAIN}unused::::::\n", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), pw.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	s := &Server{Addr: addr, dir: dir, log: filepath.Join(dir, "dovecot.log")}
	conf := fmt.Sprintf(`protocols = lmtp
default_login_user = root
mail_uid = %s
mail_gid = %d
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %s
  }
}
`, nobody.Username, gid, port)
	Run(t, bin, conf, dir, addr)
	return s
}

// Run writes dir/dovecot.conf, runs the Dovecot binary bin on it in the
// foreground until t ends, and waits until it listens on addr. When t
// failed, it logs Dovecot's output and dir/dovecot.log. Tests that need
// another Dovecot service than LMTP (submission, for one) use it with
// their own conf.
//
// The file is the settings every test server shares, then conf (the
// protocols, the users' ids, the services): runtime, state and the log
// under dir, no TLS, loopback only, Maildirs under dir/mail, users and
// passwords from the passwd-file dir/users. dir is to hold run, state
// and mail (the caller makes them) and users.
func Run(t testing.TB, bin, conf, dir, addr string) {
	t.Helper()
	confFile := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(confFile, []byte(baseConf(dir)+conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", confFile)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-waited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot output:\n%s\ndovecot log:\n%s", out.String(), b)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-waited:
			t.Fatalf("dovecot exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot does not listen on %s: %v\n%s", addr, err, out.String())
		}
	}
}

// baseConf returns the settings Run puts before a test's conf.
func baseConf(dir string) string {
	return fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
listen = 127.0.0.1
default_internal_user = root
default_internal_group = root
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:%[1]s/mail/%%u
passdb {
  driver = passwd-file
  args = %[1]s/users
}
userdb {
  driver = passwd-file
  args = %[1]s/users
}
service anvil {
  chroot =
}
`, dir)
}

// Messages returns the messages in user's INBOX (new/ and cur/), as
// Dovecot stored them.
func (s *Server) Messages(user string) []string {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(s.dir, "mail", user, sub, "*"))
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// WaitMessage waits up to 10 seconds for a message in user's INBOX that
// contains every string of want, and returns it ("" after the wait).
func (s *Server) WaitMessage(user string, want ...string) string {
	deadline := time.Now().Add(10 * time.Second)
	for {
	next:
		for _, m := range s.Messages(user) {
			for _, w := range want {
				if !strings.Contains(m, w) {
					continue next
				}
			}
			return m
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}
