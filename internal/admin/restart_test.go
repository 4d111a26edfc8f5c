package admin

import (
	"context"
	"errors"
	"os"
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
	sock := f.dir + "/restart.sock"
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	c := &Client{SocketPath: sock}
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
}

var cliTime = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
