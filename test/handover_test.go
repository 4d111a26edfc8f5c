package test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
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
// submit: no connection is refused, no session is cut (the old process
// lets its sessions finish: no 421, no connection closed), every
// acknowledged message reaches the Maildir, and a new process serves
// afterwards (queue list included).
func TestGracefulRestart(t *testing.T) {
	integration(t)
	s := startWithUser(t, "", "alice@example.test", "alice-secret-1")
	oldPid := s.cmd.Process.Pid

	var (
		mu    sync.Mutex
		acked []string
		errs  []error
		count atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	// Any error fails the test: a refused connection, and a session the
	// old process cuts (421 4.3.2, or closed during its greeting or TLS
	// handshake) alike.
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				tok := fmt.Sprintf("tok-%d-%d", g, n)
				c, err := dial(t, s.sub, "alice@example.test", "alice-secret-1")
				if err != nil {
					err = fmt.Errorf("dial: %w", err)
				} else {
					err = send(c, "alice@example.test", "alice@example.test",
						"From: alice@example.test\r\nSubject: "+tok+"\r\n\r\nbody "+tok+"\r\n")
					if err != nil {
						err = fmt.Errorf("send %s: %w", tok, err)
					} else {
						mu.Lock()
						acked = append(acked, tok)
						mu.Unlock()
						count.Add(1)
						if qerr := c.Quit(); qerr != nil {
							err = fmt.Errorf("quit after %s: %w", tok, qerr)
						}
					}
					c.Close()
				}
				if err != nil {
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
	newPid := restarted(t, s)
	waitUntil(t, 20*time.Second, "the old process did not exit after the handover", func() bool { return !pidAlive(oldPid) })
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
	t.Logf("%d messages acknowledged, none refused or cut", len(acked))

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

// failRestart breaks s's configuration and sends SIGUSR2: the new
// process fails to start. It waits until the old process logs logged,
// puts the configuration back and fails t if the old process exited.
func failRestart(t *testing.T, s *server, logged string) {
	t.Helper()
	good, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.config, []byte("this is = = not toml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	waitLogFor(t, s, logged, 30*time.Second)
	os.WriteFile(s.config, good, 0o600)
	if !s.running() {
		t.Fatal("the old process exited")
	}
}

// TestGracefulRestartChildFails breaks the configuration before SIGUSR2:
// the new process fails to start and the old one keeps serving.
func TestGracefulRestartChildFails(t *testing.T) {
	integration(t)
	s := startWithUser(t, "", "alice@example.test", "alice-secret-1")
	failRestart(t, s, "graceful restart failed: still serving")
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

// TestGracefulRestartChildFailsJSON: with a JSON log, a new process
// that fails to start leaves no raw line in the log: its error is in
// the old process's structured event, not a bare "exit status 1".
func TestGracefulRestartChildFailsJSON(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "\n[log]\nformat = \"json\"\n")
	s.start()
	failRestart(t, s, `"msg":"graceful restart failed: still serving"`)
	var failed map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Errorf("not a JSON line in a JSON log: %q", line)
			continue
		}
		if ev["msg"] == "graceful restart failed: still serving" {
			failed = ev
		}
	}
	errText, _ := failed["err"].(string)
	if !strings.Contains(errText, s.config+": toml: line 1") {
		t.Errorf("the failure event's err %q does not carry the new process's error", errText)
	}
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}

// TestGracefulRestartSocketsLogged: the new process logs the sockets it
// takes as the old process's, not systemd's (there is no systemd here),
// and closes the one whose listener the configuration no longer has,
// saying so in the same words.
func TestGracefulRestartSocketsLogged(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	b, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), fmt.Sprintf("[[listener]]\nrole = \"submissions\"\naddress = %q\n", s.subs), "", 1)
	if cfg == string(b) {
		t.Fatal("the submissions listener not found in the configuration")
	}
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	restarted(t, s)
	waitLogFor(t, s, "graceful restart: the new process serves", 30*time.Second)
	log := s.stderr.String()
	for _, name := range []string{"mx", "submission", "http"} {
		if !regexp.MustCompile(`msg="socket from the old process" fd=\d+ name=` + name + ` `).MatchString(log) {
			t.Errorf("socket %s not logged as taken from the old process", name)
		}
	}
	if !strings.Contains(log, `msg="socket passed by the old process matches no listener: closed" address=`+s.subs) {
		t.Error("the socket of the listener removed is not logged as closed")
	}
	if strings.Contains(log, "systemd") {
		t.Errorf("a restart without systemd logs systemd:\n%s", log)
	}
}

// setLimits adds lines to the [limits] table of s's configuration.
func setLimits(t *testing.T, s *server, lines string) {
	t.Helper()
	b, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "[limits]\n", "[limits]\n"+lines+"\n", 1)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// restarted sends SIGUSR2 to s and returns the pid of the new process
// once the old one says it is ready; the new process is killed at the
// end of the test.
func restarted(t *testing.T, s *server) int {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(30 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if m := newPidRE.FindStringSubmatch(s.stderr.String()); m != nil {
			pid, _ = strconv.Atoi(m[1])
		} else if time.Now().After(deadline) {
			t.Fatal("no new process ready after SIGUSR2")
		}
	}
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		for i := 0; i < 200 && pidAlive(pid); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	return pid
}

// submitOn authenticates on c (EHLO done or not) and submits a message
// whose Subject is tok, then quits.
func submitOn(c *smtp.Client, tls bool, tok string) error {
	if err := c.Hello("client.test"); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if !tls {
		if err := c.StartTLS(clientTLS()); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if err := c.Auth(smtp.PlainAuth("", "alice@example.test", "alice-secret-1", "127.0.0.1")); err != nil {
		return fmt.Errorf("AUTH: %w", err)
	}
	if err := send(c, "alice@example.test", "alice@example.test", "From: alice@example.test\r\nSubject: "+tok+"\r\n\r\nbody\r\n"); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}

// TestGracefulRestartDrain: the sessions the old process has when the
// new one says ready go on as usual: one authenticated and idle, one
// greeted on 587 that sent nothing yet, and one connected to 465 before
// its TLS handshake each submit a message after "ready", get 250 and the
// message is delivered. A connection made meanwhile is not refused: it
// waits in the listen backlog and the new process serves it. The old
// process exits as soon as its last session quits, well before
// restart_drain_timeout.
func TestGracefulRestartDrain(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	setLimits(t, s, `restart_drain_timeout = "60s"`)
	s.start()
	s.addUser("alice@example.test", "alice-secret-1")
	oldPid := s.cmd.Process.Pid

	idle := mustDial(t, s.sub, "alice@example.test", "alice-secret-1")
	defer idle.Close()
	gc, err := net.Dial("tcp", s.sub)
	if err != nil {
		t.Fatal(err)
	}
	greeted, err := smtp.NewClient(gc, "127.0.0.1") // reads the 220
	if err != nil {
		t.Fatal(err)
	}
	defer greeted.Close()
	raw, err := net.Dial("tcp", s.subs) // no TLS byte sent yet
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// The old process accepted it (the kernel alone would not log it).
	waitLogFor(t, s, "remote="+raw.LocalAddr().String(), 10*time.Second)

	newPid := restarted(t, s)

	// A new connection now: accepted by the kernel at once, served once
	// the new process has the spool.
	type result struct {
		err          error
		afterRelease bool // the greeting came after the old process released the spool
	}
	fresh := make(chan result, 1)
	go func() {
		c, err := net.Dial("tcp", s.sub)
		if err != nil {
			fresh <- result{err: fmt.Errorf("dial during the drain: %w", err)}
			return
		}
		defer c.Close()
		sc, err := smtp.NewClient(c, "127.0.0.1")
		if err != nil {
			fresh <- result{err: fmt.Errorf("greeting: %w", err)}
			return
		}
		after := strings.Contains(s.stderr.String(), "graceful restart: the old process released the spool")
		fresh <- result{err: submitOn(sc, false, "drain-fresh"), afterRelease: after}
	}()

	if err := send(idle, "alice@example.test", "alice@example.test", "From: alice@example.test\r\nSubject: drain-idle\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("idle session, after ready: %v", err)
	}
	if err := idle.Quit(); err != nil {
		t.Fatalf("idle session: QUIT: %v", err)
	}
	if err := submitOn(greeted, false, "drain-greeted"); err != nil {
		t.Fatalf("greeted session, after ready: %v", err)
	}
	tc := tls.Client(raw, clientTLS())
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake of a session accepted before the restart: %v", err)
	}
	tc.SetDeadline(time.Time{})
	hs, err := smtp.NewClient(tc, "127.0.0.1")
	if err != nil {
		t.Fatalf("handshaking session: greeting: %v", err)
	}
	if err := submitOn(hs, true, "drain-handshake"); err != nil {
		t.Fatalf("handshaking session, after ready: %v", err)
	}
	lastQuit := time.Now()

	// The new process holds the test's stdout and stderr pipes too, so
	// cmd.Wait does not return: watch the pid (reaped by cmd.Wait).
	waitUntil(t, 20*time.Second, "the old process did not exit after its last session quit", func() bool { return !pidAlive(oldPid) })
	if d := time.Since(lastQuit); d > 15*time.Second {
		t.Errorf("the old process exited %v after its last session, not at once", d)
	}
	if !strings.Contains(s.stderr.String(), `msg="postern stopped"`) {
		t.Error("the old process did not stop cleanly")
	}
	if strings.Contains(s.stderr.String(), "code=421") {
		t.Error("a 421 was logged during the drain")
	}
	select {
	case r := <-fresh:
		if r.err != nil {
			t.Fatalf("connection made during the drain: %v", r.err)
		}
		if !r.afterRelease {
			t.Error("the connection made during the drain was greeted before the old process released the spool")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the connection made during the drain was never served")
	}
	if !pidAlive(newPid) {
		t.Fatal("the new process is not running")
	}
	for _, tok := range []string{"drain-idle", "drain-greeted", "drain-handshake", "drain-fresh"} {
		s.waitMaildir("alice@example.test", "Subject: "+tok)
	}
}

// TestGracefulRestartRollback: the new process loads fine and says
// ready, then cannot open its spool (the configuration it read names a
// data directory where "queue" is a file). The old process, which
// had stopped accepting and closed its spool, opens the spool again and
// serves on the sockets it kept: a session from before the signal
// finishes its message, a new session gets 220 and submits, the admin
// socket answers, and both messages are delivered.
func TestGracefulRestartRollback(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	s := testConfig(t, dir, "")
	s.start()
	s.addUser("alice@example.test", "alice-secret-1")
	oldPid := s.cmd.Process.Pid

	broken := filepath.Join(dir, "broken-data")
	if err := os.MkdirAll(broken, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "queue"), []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	bad := s.configReplaced(fmt.Sprintf("data_dir = %q", s.data), fmt.Sprintf("data_dir = %q", broken))
	if err := os.WriteFile(s.config, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	before := mustDial(t, s.sub, "alice@example.test", "alice-secret-1")
	defer before.Close()

	newPid := restarted(t, s)
	if err := os.WriteFile(s.config, good, 0o600); err != nil { // for postern queue below
		t.Fatal(err)
	}
	if err := send(before, "alice@example.test", "alice@example.test", "From: alice@example.test\r\nSubject: rollback-before\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("session from before the restart: %v", err)
	}
	before.Quit()

	waitLogFor(t, s, "graceful restart failed: serving again", 30*time.Second)
	if !s.running() {
		t.Fatalf("the old process exited: %v", s.waitErr)
	}
	if s.cmd.Process.Pid != oldPid {
		t.Fatal("not the old process")
	}
	// The new process's failure (its spool) is in the old process's
	// event, and nowhere else.
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		switch {
		case strings.Contains(line, `msg="graceful restart failed: serving again"`):
			if !strings.Contains(line, "not a directory") {
				t.Errorf("the failure event does not say why the new process failed: %s", line)
			}
		case strings.HasPrefix(line, "postern:"):
			t.Errorf("a raw line in the log: %s", line)
		}
	}
	waitUntil(t, 5*time.Second, "the failed new process was not reaped", func() bool { return !pidAlive(newPid) })

	c, err := dial(t, s.sub, "alice@example.test", "alice-secret-1")
	if err != nil {
		t.Fatalf("old process not serving after the failed restart: %v", err)
	}
	if err := send(c, "alice@example.test", "alice@example.test", "From: alice@example.test\r\nSubject: rollback-after\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("submission after the rollback: %v", err)
	}
	c.Quit()
	s.waitMaildir("alice@example.test", "Subject: rollback-before")
	s.waitMaildir("alice@example.test", "Subject: rollback-after")
	if out, err := s.run("", "queue", "list"); err != nil {
		t.Fatalf("queue list after the rollback: %v\n%s", err, out)
	}
	if err := s.signal(syscall.SIGTERM); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
}
