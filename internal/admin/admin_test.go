package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"postern/internal/queue"
	"postern/internal/smtp"
	"postern/internal/spool"
	"postern/internal/testkit"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fixture is a spool with a runner and the admin server on a unix socket.
type fixture struct {
	dir    string
	sock   string
	spool  *spool.Spool
	runner *queue.Runner
	srv    *Server
	client *Client
	served chan error
	fail   atomic.Bool // the local deliverer fails temporarily while set
	calls  atomic.Int32
	// gate, when set, is called by the local deliverer first, with the
	// message id; an error it returns is the attempt's.
	gate atomic.Pointer[func(id string) error]
	// stopRunner stops the runner and returns once its passes are over
	// (their DSNs spooled); the cleanup calls it too.
	stopRunner func()
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), served: make(chan error, 1)}
	f.sock = filepath.Join(f.dir, "admin.sock")
	f.fail.Store(true)
	var err error
	f.spool, err = spool.Open(spool.Options{Dir: filepath.Join(f.dir, "spool"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	f.runner = queue.NewRunner(f.spool, queue.RunnerOptions{
		Local: queue.DelivererFunc(func(_ context.Context, env *smtp.Envelope, _ string, _ *smtp.Message) error {
			f.calls.Add(1)
			if g := f.gate.Load(); g != nil {
				if err := (*g)(env.ID); err != nil {
					return err
				}
			}
			if f.fail.Load() {
				return errors.New("mailbox locked")
			}
			return nil
		}),
		IsLocal: func(string) bool { return true },
		// The tests submit with a fixed clock in the past (2026-11-27);
		// the runner, on the real clock, must not expire those messages.
		Policy: queue.RetryPolicy{First: time.Hour, GiveUp: 100 * 365 * 24 * time.Hour},
		Logger: quiet(),
	})
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- f.runner.Run(ctx) }()
	var once sync.Once
	f.stopRunner = func() { once.Do(func() { cancel(); <-runDone }) }
	l, err := Listen(f.sock)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &Server{Spool: f.spool, Runner: f.runner, Logger: quiet()}
	go func() { f.served <- f.srv.Serve(l) }()
	f.client = &Client{SocketPath: f.sock}
	t.Cleanup(func() {
		f.srv.Shutdown(context.Background())
		f.stopRunner()
		f.spool.Close()
	})
	return f
}

// serve serves srv on a new socket at sock until the test ends, and
// returns a client of it.
func serve(t *testing.T, srv *Server, sock string) *Client {
	t.Helper()
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return &Client{SocketPath: sock}
}

func (f *fixture) put(t *testing.T, id, from string, rcpts ...string) {
	t.Helper()
	env := &smtp.Envelope{ID: id, From: from, Recipients: rcpts, Body: "8BITMIME", SMTPUTF8: true, RequireTLS: true,
		AuthUser: "alice", Listener: "submission", Remote: netip.MustParseAddrPort("192.0.2.7:40000"),
		Helo: "laptop.example", ReceivedAt: time.Now().Add(-90 * time.Minute)}
	if from != "" {
		env.Ret, env.EnvID = "FULL", "env-"+id
		env.DSN = map[string]smtp.RcptDSN{rcpts[0]: {Notify: smtp.NotifyDelay, ORcpt: "rfc822;old@example.org"}}
	}
	data := "Received: from laptop.example\r\nSubject: test " + id + "\r\n\r\nbody\r\n"
	if err := f.spool.Put(context.Background(), env, []byte(data)); err != nil {
		t.Fatal(err)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, cond)
}

func TestAdminEndToEnd(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	fi, err := os.Stat(f.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}

	const a, b = "a0000000000000000001", "a0000000000000000002"
	f.put(t, a, "alice@example.com", "bob@example.org", "carl@example.org")
	f.put(t, b, "", "dan@example.org")
	waitUntil(t, "first attempts", func() bool { return f.calls.Load() == 3 })
	var msgs []Message
	waitUntil(t, "deferred", func() bool {
		msgs, err = f.client.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs) == 2 && msgs[0].Recipients[1].Status == "deferred" && msgs[1].Recipients[0].Status == "deferred"
	})
	m := msgs[0]
	if m.ID != a || m.From != "alice@example.com" || m.Size == 0 || len(m.Recipients) != 2 ||
		m.Recipients[0].Addr != "bob@example.org" || m.Recipients[0].Attempts != 1 ||
		m.Recipients[0].LastError != "mailbox locked" || time.Until(m.Recipients[0].NextAttempt) < 50*time.Minute {
		t.Errorf("listed %+v", m)
	}

	d, err := f.client.Show(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if !d.RequireTLS || !d.SMTPUTF8 || d.Body != "8BITMIME" || d.AuthUser != "alice" || d.Remote != "192.0.2.7:40000" ||
		d.Helo != "laptop.example" || d.Listener != "submission" || d.Done ||
		d.Headers != "Received: from laptop.example\r\nSubject: test "+a+"\r\n" {
		t.Errorf("show %+v", d)
	}
	// The DSN parameters (RFC 3461 §4): the message's, and each
	// recipient's (none for carl).
	if r := d.Recipients; d.Ret != "FULL" || d.EnvID != "env-"+a || r[0].Notify != "DELAY" || r[0].ORcpt != "rfc822;old@example.org" ||
		r[1].Notify != "" || r[1].ORcpt != "" {
		t.Errorf("show: RET %q ENVID %q recipients %+v", d.Ret, d.EnvID, r)
	}

	// Retry: the deferred recipients are tried at once, not in an hour.
	f.fail.Store(false)
	if err := f.client.Retry(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "delivered after retry", func() bool {
		msgs, _ := f.client.List(ctx)
		return len(msgs) == 1 && msgs[0].ID == b
	})
	if d, err := f.client.Show(ctx, a); err != nil || !d.Done || d.Recipients[0].Status != "delivered" || d.Recipients[0].Attempts != 2 {
		t.Errorf("show after retry: %+v, %v", d, err)
	}
	if err := f.client.Retry(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("retry of a delivered message: %v", err)
	}

	// Delete: no more delivery, no bounce.
	if err := f.client.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if msgs, err := f.client.List(ctx); err != nil || len(msgs) != 0 {
		t.Errorf("list after delete: %+v, %v", msgs, err)
	}
	if err := f.client.Delete(ctx, b); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	for _, op := range []func() error{
		func() error { _, err := f.client.Show(ctx, "nosuchid"); return err },
		func() error { return f.client.Retry(ctx, "nosuchid") },
		func() error { return f.client.Delete(ctx, "nosuchid") },
	} {
		if err := op(); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown id: %v", err)
		}
	}

	// A second server on the same socket is refused.
	if _, err := Listen(f.sock); !errors.Is(err, os.ErrExist) {
		t.Errorf("Listen on a live socket: %v", err)
	}

	// Shutdown removes the socket; the client then says so.
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-f.served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v", err)
	}
	if _, err := os.Stat(f.sock); !os.IsNotExist(err) {
		t.Errorf("socket left after Shutdown: %v", err)
	}
	if _, err := f.client.List(ctx); !errors.Is(err, ErrNotRunning) {
		t.Errorf("list with no server: %v", err)
	}
}

// A socket file left by a server that was killed is replaced; the
// client sees a refused connection as "not running".
func TestStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // as if killed: the file stays
	if _, err := (&Client{SocketPath: sock}).List(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: %v", err)
	}
	l, err = Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	l.Close()
	if err := os.WriteFile(sock, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
}
