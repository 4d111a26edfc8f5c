package server

import (
	"bufio"
	"context"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/config"
	"postern/internal/testkit"
)

// TestRunInProcess: Run serves the embedded default in this process (twice), on
// ports the kernel picks: the first start prints the postmaster's
// password, the mx listener takes a message for postmaster@localhost
// and it lands in a Maildir; the end of ctx stops the server as SIGTERM
// does: Run returns nil and the admin socket is gone.
func TestRunInProcess(t *testing.T) {
	// Twice in one process, each run with a registry of its own: the
	// second would panic on a metric registered twice in one registry.
	for run := 1; run <= 2; run++ {
		runOnce(t, run)
	}
}

func runOnce(t *testing.T, run int) {
	dir := filepath.Join(t.TempDir(), "data")
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := hl.Addr().String()
	hl.Close()
	load := func() (*config.Config, error) {
		cfg := config.Dev(dir)
		cfg.HTTP.Address = httpAddr
		for i := range cfg.Listeners {
			cfg.Listeners[i].Address = "127.0.0.1:0"
		}
		return cfg, nil
	}
	var stdout, stderr testkit.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Params{Load: load, Stdout: &stdout, Stderr: &stderr, Registry: prometheus.NewRegistry()})
	}()
	// Whatever ends the test, Run ends before its data directory goes.
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Errorf("run %d: Run did not return", run)
		}
	})

	// /healthz answers once the server serves: the admin socket is
	// there by then (a load balancer or a script that waits for it can
	// use the server at once).
	deadline := time.After(60 * time.Second)
	for !healthy(httpAddr) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("not healthy after 60 s:\n%s", stderr.String())
		case <-time.After(time.Millisecond):
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.sock")); err != nil {
		t.Fatalf("/healthz answers before the admin socket is there: %v", err)
	}
	// The log says when the server is ready, and where it listens.
	for !strings.Contains(stderr.String(), "msg=\"postern ready\"") {
		select {
		case err := <-done:
			t.Fatalf("Run returned before serving: %v\n%s", err, stderr.String())
		case <-deadline:
			t.Fatalf("not ready after 60 s:\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !strings.Contains(stdout.String(), "First start: created user postmaster@localhost with password") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	m := regexp.MustCompile(`msg=listening listener=mx role=mx address=(127\.0\.0\.1:\d+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("no mx address in the log:\n%s", stderr.String())
	}
	sendOne(t, m[1])
	testkit.WaitFor(t, "the message in a Maildir", func() bool { return maildirFiles(t, filepath.Join(dir, "mail")) > 0 })

	cancel()
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("run %d: Run: %v", run, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("run %d: Run did not return after ctx ended", run)
	}
	if !strings.Contains(stderr.String(), "msg=\"postern stopped\"") {
		t.Errorf("no stop in the log:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "admin.sock")); err == nil {
		t.Error("the admin socket is still there")
	}
}

// healthy says whether GET /healthz at addr answers 200.
func healthy(addr string) bool {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// sendOne sends a message to postmaster@localhost over SMTP at addr,
// failing t on any reply but the one expected.
func sendOne(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	expect := func(send, code string) {
		t.Helper()
		if send != "" {
			if _, err := c.Write([]byte(send)); err != nil {
				t.Fatal(err)
			}
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("after %q: %v", send, err)
			}
			if !strings.HasPrefix(line, code) {
				t.Fatalf("after %q: %q, want %s", send, line, code)
			}
			if len(line) < 4 || line[3] != '-' {
				return
			}
		}
	}
	expect("", "220")
	expect("EHLO client.example\r\n", "250")
	expect("MAIL FROM:<sender@example.com>\r\n", "250")
	expect("RCPT TO:<postmaster@localhost>\r\n", "250")
	expect("DATA\r\n", "354")
	expect("From: sender@example.com\r\nTo: postmaster@localhost\r\nSubject: in-process\r\n\r\nHello.\r\n.\r\n", "250")
	expect("QUIT\r\n", "221")
}

// maildirFiles counts the messages under root's new/ directories.
func maildirFiles(t *testing.T, root string) int {
	n := 0
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(path)) == "new" {
			n++
		}
		return nil
	})
	return n
}
