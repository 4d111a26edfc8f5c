package test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
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

// newPidRE finds the pid of the process a graceful restart started.
var newPidRE = regexp.MustCompile(`msg="graceful restart: new process ready; handing over" pid=(\d+)`)

// pidAlive reports whether pid names a live (not reaped) process.
func pidAlive(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// TestGracefulRestart sends SIGUSR2 while clients open fresh sessions and
// submit: no connection is refused, every acknowledged message reaches
// the Maildir, and a new process serves afterwards (queue list included).
func TestGracefulRestart(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	s.addUser("alice@example.test", "alice-secret-1")
	oldPid := s.cmd.Process.Pid

	var (
		mu       sync.Mutex
		acked    []string
		errs     []error
		deferred atomic.Int64 // cut by the draining old process: the client retries
		count    atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	// A session the draining old process cuts before its message is
	// acknowledged (421 4.3.2, or closed during the greeting or a TLS
	// handshake) is retried, as SMTP clients do; a refused connection,
	// or any other error, fails the test.
	is421 := func(err error) bool {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code == 421 {
			return true
		}
		return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	}
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; !stop.Load(); {
				tok := fmt.Sprintf("tok-%d-%d", g, n)
				c, err := dial(t, s.sub, "alice@example.test", "alice-secret-1")
				if err != nil {
					err = fmt.Errorf("dial: %w", err)
				} else {
					err = send(c, "alice@example.test", "alice@example.test",
						"From: alice@example.test\r\nSubject: "+tok+"\r\n\r\nbody "+tok+"\r\n")
					if err != nil {
						err = fmt.Errorf("send: %w", err)
					} else {
						mu.Lock()
						acked = append(acked, tok)
						mu.Unlock()
						count.Add(1)
						n++
						if qerr := c.Quit(); qerr != nil && !is421(qerr) {
							err = fmt.Errorf("quit: %w", qerr)
						}
					}
					c.Close()
				}
				if err != nil {
					if is421(err) {
						deferred.Add(1) // not acknowledged: send it again
						continue
					}
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}(g)
	}
	deadline := time.Now().Add(30 * time.Second)
	for count.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var newPid int
	for deadline := time.Now().Add(30 * time.Second); newPid == 0; time.Sleep(20 * time.Millisecond) {
		if m := newPidRE.FindStringSubmatch(s.stderr.String()); m != nil {
			newPid, _ = strconv.Atoi(m[1])
		} else if time.Now().After(deadline) {
			t.Fatal("no new process after SIGUSR2")
		}
	}
	t.Cleanup(func() {
		syscall.Kill(newPid, syscall.SIGKILL)
		for i := 0; i < 200 && pidAlive(newPid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	for deadline := time.Now().Add(20 * time.Second); pidAlive(oldPid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the old process did not exit after the handover")
		}
	}
	// Keep the load on the new process for a moment.
	before := count.Load()
	for deadline := time.Now().Add(30 * time.Second); count.Load() < before+20; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no messages accepted by the new process: %d errors, e.g. %v", len(errs), errs)
		}
	}
	stop.Store(true)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d client errors during the restart, e.g. %v", len(errs), errs[0])
	}
	if !pidAlive(newPid) {
		t.Fatal("the new process is not running")
	}
	t.Logf("%d messages acknowledged, %d sessions cut by the draining old process (421 or closed) before their message and retried", len(acked), deferred.Load())

	resp, err := http.Get("http://" + s.http + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if out, err := s.run("", "queue", "list"); err != nil {
		t.Fatalf("queue list against the new process: %v\n%s", err, out)
	}
	want := map[string]bool{}
	for _, tok := range acked {
		want[tok] = true
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		found := map[string]bool{}
		for _, m := range s.maildirNew("alice@example.test") {
			if i := strings.Index(m, "Subject: tok-"); i >= 0 {
				found[strings.Fields(m[i+len("Subject: "):])[0]] = true
			}
		}
		var missing []string
		for tok := range want {
			if !found[tok] {
				missing = append(missing, tok)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages missing after the restart, e.g. %v", len(missing), len(want), missing[:min(5, len(missing))])
		}
	}
}

// TestGracefulRestartChildFails breaks the configuration before SIGUSR2:
// the new process fails to start and the old one keeps serving.
func TestGracefulRestartChildFails(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	s.addUser("alice@example.test", "alice-secret-1")
	good, _ := os.ReadFile(s.config)
	if err := os.WriteFile(s.config, []byte("this is = = not toml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.stderr.String(), "graceful restart failed: still serving"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed restart logged")
		}
	}
	os.WriteFile(s.config, good, 0o600)
	if !s.running() {
		t.Fatal("the old process exited")
	}
	c, err := dial(t, s.sub, "alice@example.test", "alice-secret-1")
	if err != nil {
		t.Fatalf("old process not serving after a failed restart: %v", err)
	}
	if err := send(c, "alice@example.test", "alice@example.test", "From: alice@example.test\r\nSubject: still-here\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	s.waitMaildir("alice@example.test", "still-here")
	if out, err := s.run("", "queue", "list"); err != nil {
		t.Fatalf("queue list: %v\n%s", err, out)
	}
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
