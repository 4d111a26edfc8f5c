package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notification is one datagram postern sent to NOTIFY_SOCKET.
type notification struct {
	state string
	fds   []int // files passed with it (BARRIER=1)
}

// has reports whether the notification assigns kv ("READY=1").
func (n notification) has(kv string) bool {
	for _, l := range strings.Split(n.state, "\n") {
		if l == kv {
			return true
		}
	}
	return false
}

// value returns what the notification assigns to name.
func (n notification) value(name string) string {
	for _, l := range strings.Split(n.state, "\n") {
		if v, ok := strings.CutPrefix(l, name+"="); ok {
			return v
		}
	}
	return ""
}

// notifyListener plays systemd's notification socket at path: it returns
// the datagrams read, in order.
func notifyListener(t *testing.T, path string) <-chan notification {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := make(chan notification, 64)
	go func() {
		buf, oob := make([]byte, 4096), make([]byte, 1024)
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				close(ch)
				return
			}
			nt := notification{state: string(buf[:n])}
			if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if fds, err := syscall.ParseUnixRights(&m); err == nil {
						nt.fds = append(nt.fds, fds...)
					}
				}
			}
			ch <- nt
		}
	}()
	return ch
}

// TestSystemdNotify runs postern as systemd's Type=notify does, with
// NOTIFY_SOCKET set: READY=1 (and MAINPID) once it serves, RELOADING=1
// then READY=1 around SIGHUP; on SIGUSR2 RELOADING=1, then MAINPID=<new
// pid> with READY=1 from the new process, then a barrier while the old
// process still runs (systemd follows the new main process before the
// old one exits); STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	notes := notifyListener(t, sock)
	next := func(what string) notification {
		t.Helper()
		select {
		case n, ok := <-notes:
			if !ok {
				t.Fatalf("%s: notification socket closed", what)
			}
			return n
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no notification", what)
		}
		return notification{}
	}
	s := testConfig(t, dir, "")
	s.startCmd(func(cmd *exec.Cmd) { cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock) })
	oldPid := s.cmd.Process.Pid

	n := next("start")
	if !n.has("READY=1") || n.value("MAINPID") != strconv.Itoa(oldPid) {
		t.Fatalf("start: %q, want READY=1 and MAINPID=%d", n.state, oldPid)
	}

	s.signal(syscall.SIGHUP)
	if n := next("SIGHUP"); !n.has("RELOADING=1") || n.value("MONOTONIC_USEC") == "" {
		t.Errorf("SIGHUP: %q, want RELOADING=1 with MONOTONIC_USEC", n.state)
	}
	if n := next("after SIGHUP"); !n.has("READY=1") {
		t.Errorf("after SIGHUP: %q, want READY=1", n.state)
	}

	newPid := restarted(t, s)
	if n := next("SIGUSR2"); !n.has("RELOADING=1") {
		t.Errorf("SIGUSR2: %q, want RELOADING=1", n.state)
	}
	n = next("new process")
	if !n.has("READY=1") || n.value("MAINPID") != strconv.Itoa(newPid) {
		t.Fatalf("new process: %q, want READY=1 and MAINPID=%d", n.state, newPid)
	}
	n = next("barrier")
	if n.state != "BARRIER=1" || len(n.fds) != 1 {
		t.Fatalf("barrier: %q with %d files, want BARRIER=1 with one", n.state, len(n.fds))
	}
	if !pidAlive(oldPid) {
		t.Error("the old process exited before systemd confirmed the new main process")
	}
	syscall.Close(n.fds[0]) // as systemd does once it read everything before
	waitUntil(t, 20*time.Second, "the old process did not exit after the new one served", func() bool { return !pidAlive(oldPid) })

	if err := syscall.Kill(newPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if n := next("SIGTERM"); !n.has("STOPPING=1") {
		t.Errorf("SIGTERM: %q, want STOPPING=1", n.state)
	}
}
