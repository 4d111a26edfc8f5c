package admin

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReloadUsers: postern user's call returns once the server has read
// the users again, and says why when it could not.
func TestReloadUsers(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.client.ReloadUsers(ctx); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Fatalf("without a reloader: %v", err)
	}
	var n atomic.Int32
	srv := &Server{Spool: f.spool, Runner: f.runner, Logger: quiet(), ReloadUsers: func() error {
		if n.Add(1) == 2 {
			return errors.New("users.json: parse: bad")
		}
		return nil
	}}
	c := serve(t, srv, f.dir+"/users.sock")
	if err := c.ReloadUsers(ctx); err != nil || n.Load() != 1 {
		t.Fatalf("reload: %v (%d calls)", err, n.Load())
	}
	if err := c.ReloadUsers(ctx); err == nil || !strings.Contains(err.Error(), "users.json: parse: bad") {
		t.Fatalf("failed reload: %v", err)
	}
	if err := (&Client{SocketPath: f.dir + "/none.sock"}).ReloadUsers(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no server: %v", err)
	}
}

// TestServerPID: the pid of the process serving the socket (this one),
// and ErrNotRunning without a server.
func TestServerPID(t *testing.T) {
	f := newFixture(t)
	pid, err := ServerPID(f.sock)
	if err != nil || pid != os.Getpid() {
		t.Errorf("ServerPID = %d, %v; want %d", pid, err, os.Getpid())
	}
	if _, err := ServerPID(f.dir + "/none.sock"); !errors.Is(err, ErrNotRunning) {
		t.Errorf("no server: %v", err)
	}
}
