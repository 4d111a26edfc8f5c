package test

import (
	"encoding/json"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// restartedRE finds the new pid in `postern restart`'s answer.
var restartedRE = regexp.MustCompile(`^Restarted: pid (\d+) serves \(postern [^)]+\)+; pid (\d+) handed over\.\n$`)

// TestRestartCommand: `postern restart` restarts gracefully and returns
// once the new process serves: no connection refused meanwhile, the old
// process gone, the admin socket answered by the new one.
func TestRestartCommand(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	setLimits(t, s, `restart_drain_timeout = "2s"`)
	s.start()
	oldPid := s.cmd.Process.Pid

	var stop atomic.Bool
	var ok, refused atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				c, err := net.DialTimeout("tcp", s.mx, 10*time.Second)
				if err == nil {
					c.SetDeadline(time.Now().Add(10 * time.Second))
					buf := make([]byte, 4)
					_, err = c.Read(buf)
					if err == nil && string(buf[:3]) != "220" {
						err = &net.AddrError{Err: "greeting " + string(buf), Addr: s.mx}
					}
					c.Close()
				}
				if err != nil {
					refused.Add(1)
					firstErr.CompareAndSwap(nil, err)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	out, err := s.run("", "restart")
	stop.Store(true)
	wg.Wait()
	m := restartedRE.FindStringSubmatch(out)
	if err != nil || m == nil || m[2] != strconv.Itoa(oldPid) {
		t.Fatalf("postern restart: %v\n%s", err, out)
	}
	newPid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { syscall.Kill(newPid, syscall.SIGKILL) })
	if refused.Load() > 0 || ok.Load() == 0 {
		t.Errorf("connections during the restart: %d ok, %d failed, first %v", ok.Load(), refused.Load(), firstErr.Load())
	}
	t.Logf("%s%d connections during the restart, none refused", out, ok.Load())
	waitUntil(t, 10*time.Second, "the old process is still there", func() bool { return !pidAlive(oldPid) })
	var p struct{ PID int }
	if page := adminGet(t, s.data+"/admin.sock", "/process"); json.Unmarshal([]byte(page), &p) != nil || p.PID != newPid {
		t.Errorf("GET /process: %s", page)
	}
	if out, err := s.run("", "queue", "list"); err != nil {
		t.Errorf("queue list after the restart: %v\n%s", err, out)
	}
}

// TestRestartCommandFails: when the new process does not start, `postern
// restart` says why and exits 1, and the old process serves on.
func TestRestartCommandFails(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	good, _ := os.ReadFile(s.config)
	// Valid for the command, which reads data_dir from it; not for the
	// new process, which must bind a new listener's port, taken.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := string(good) + "\n[[listener]]\nname = \"extra\"\nrole = \"mx\"\naddress = \"" + taken.Addr().String() + "\"\n"
	if err := os.WriteFile(s.config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := s.run("", "restart")
	if m := restartedRE.FindStringSubmatch(out); m != nil { // not to outlive the test
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	}
	if err == nil || !strings.Contains(out, "address already in use") || !strings.Contains(out, "pid "+strconv.Itoa(s.cmd.Process.Pid)+" serves on") {
		t.Fatalf("postern restart with a port taken: %v\n%s", err, out)
	}
	t.Logf("postern restart: %s", out)
	os.WriteFile(s.config, good, 0o600)
	if !s.running() {
		t.Fatal("the old process exited")
	}
	if out, err := s.run("", "queue", "list"); err != nil {
		t.Fatalf("queue list: %v\n%s", err, out)
	}
}
