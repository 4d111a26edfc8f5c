package admin

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRestartAndProcess: POST /restart answers with the new process's
// pid, or the cause of the failure; GET /process names the process that
// answers and its version.
func TestRestartAndProcess(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.client.Restart(ctx); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("Restart without a restarter: %v", err)
	}
	fail := false
	srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(), Version: "0.9.0 (25e3e00a1b2c)",
		Now: func() time.Time { return cliTime },
		Restart: func(ctx context.Context) (int, error) {
			if fail {
				return 0, errors.New("the new process failed: listener mx: bind: address already in use")
			}
			return 4242, nil
		}}
	c := serve(t, srv, f.dir+"/restart.sock")
	if pid, err := c.Restart(ctx); err != nil || pid != 4242 {
		t.Fatalf("Restart: %d, %v", pid, err)
	}
	fail = true
	if _, err := c.Restart(ctx); err == nil || !strings.Contains(err.Error(), "bind: address already in use") {
		t.Fatalf("failed restart: %v", err)
	}
	p, err := c.Process(ctx)
	if err != nil || p.PID != os.Getpid() || p.Version != "0.9.0 (25e3e00a1b2c)" || !p.Started.Equal(cliTime) {
		t.Fatalf("Process: %+v, %v", p, err)
	}
	if _, err := (&Client{SocketPath: f.dir + "/none.sock"}).Process(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no server: %v", err)
	}

	// AwaitServing: the process that answers; one that exited first; one
	// that lives but does not answer by the limit.
	if p, err := c.AwaitServing(ctx, os.Getpid(), time.Minute); err != nil || p.PID != os.Getpid() {
		t.Fatalf("AwaitServing of the answering process: %+v, %v", p, err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AwaitServing(ctx, gone.Process.Pid, time.Minute); !errors.Is(err, ErrExited) {
		t.Fatalf("AwaitServing of an exited process: %v", err)
	}
	alive := exec.Command("sleep", "60")
	if err := alive.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alive.Process.Kill(); alive.Wait() })
	if _, err := c.AwaitServing(ctx, alive.Process.Pid, 0); err == nil || errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "does not serve") {
		t.Fatalf("AwaitServing past the limit: %v", err)
	}
}

var cliTime = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
