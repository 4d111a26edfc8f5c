package smtpd

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"postern/internal/testkit"
)

func TestShutdownIdleSession(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c2 := f.dial() // idle right after the greeting
	errc := make(chan error, 1)
	go func() { errc <- f.srv.Shutdown(context.Background()) }()
	c.expect("421 4.3.2 Service shutting down")
	c.expectClosed()
	c2.expect("421 4.3.2")
	c2.expectClosed()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	select {
	case err := <-f.done:
		f.done <- err // for the cleanup's check
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestShutdownLetsDataFinish(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.raw("Subject: in flight\r\n\r\n")
	errc := make(chan error, 1)
	go func() { errc <- f.srv.Shutdown(context.Background()) }()
	testkit.WaitFor(t, "the shutdown to begin", f.srv.closing.Load)
	c.do("body\r\n.", "250 2.0.0")
	c.expect("421 4.3.2")
	c.expectClosed()
	if err := <-errc; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if n := len(f.spool.messages()); n != 1 {
		t.Errorf("%d messages spooled", n)
	}
}

// TestShutdownDeadlineCutsSpooling: a message the spool holds when the
// shutdown deadline passes is answered 421 and not spooled, in plaintext
// and over TLS.
func TestShutdownDeadlineCutsSpooling(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmissions} {
		t.Run(role.String(), func(t *testing.T) {
			f := newFixture(t, role)
			f.spool.block = make(chan struct{}) // never closed: Spool waits for ctx
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			from := "a@example.net"
			if role == RoleSubmissions {
				c.login()
				from = "alice@example.org"
			}
			c.transaction(from, "bob@example.org")
			c.send(message("From: "+from) + ".")
			f.spool.waitBlocked(t)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := f.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
			}
			c.expect("421 4.3.2")
			c.expectClosed()
			if n := len(f.spool.messages()); n != 0 {
				t.Errorf("%d messages spooled", n)
			}
		})
	}
}

func TestServeAfterShutdown(t *testing.T) {
	f := newFixture(t, RoleMX)
	f.srv.Shutdown(context.Background())
	l := testkit.Listen(t)
	if err := f.srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}

func TestServeChecksFields(t *testing.T) {
	for name, s := range map[string]*Server{
		"no spool":             {Directory: newTestDir()},
		"no directory":         {Spool: &testSpool{}},
		"submission, no TLS":   {Role: RoleSubmission, Spool: &testSpool{}, Directory: newTestDir(), Auth: testAuth{}},
		"submissions, no auth": {Role: RoleSubmissions, Spool: &testSpool{}, Directory: newTestDir(), TLSConfig: serverTLSConfig()},
	} {
		if err := s.Serve(testkit.Listen(t)); err == nil || errors.Is(err, ErrServerClosed) {
			t.Errorf("%s: Serve = %v", name, err)
		}
	}
}

func TestShutdownIdleTLSSession(t *testing.T) {
	f := newFixture(t, RoleSubmissions)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.login()
	go f.srv.Shutdown(context.Background())
	c.expect("421 4.3.2 Service shutting down")
	c.expectClosed()
}

// flakyListener fails its first Accepts with a temporary error.
type flakyListener struct {
	net.Listener
	fails int
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, tempErr{}
	}
	return l.Listener.Accept()
}

func TestServeRetriesTemporaryErrors(t *testing.T) {
	srv := &Server{Name: "flaky", Directory: newTestDir(), Spool: &testSpool{}, Logger: discardLogger()}
	l := &flakyListener{Listener: testkit.Listen(t), fails: 3}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	c := (&fixture{t: t, srv: srv, addr: l.Addr().String()}).dialNoGreeting()
	c.expect("220 localhost ESMTP Postern")
	srv.Shutdown(context.Background())
	if err := <-done; !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
}
