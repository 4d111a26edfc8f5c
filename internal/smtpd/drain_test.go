package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"postern/internal/testkit"
)

// waitTracked waits until srv tracks n sessions: the connections were
// accepted, not just queued in the listen backlog.
func waitTracked(t *testing.T, srv *Server, n int) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%d sessions tracked", n), func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return len(srv.sessions) == n
	})
}

// TestDrainLetsSessionsFinish drains a submissions listener with a
// session mid-conversation and one connected but not yet through its TLS
// handshake: no new connection is accepted, both sessions go on as usual
// through a whole transaction, and Drain returns once both quit.
func TestDrainLetsSessionsFinish(t *testing.T) {
	f := newFixture(t, RoleSubmissions)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.login()
	raw, err := net.Dial("tcp", f.addr) // accepted, no TLS byte sent yet
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	waitTracked(t, f.srv, 2)

	errc := make(chan error, 1)
	go func() { errc <- f.srv.Drain(context.Background()) }()
	select {
	case err := <-f.done:
		f.done <- err // for the fixture's cleanup
		if !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Drain")
	}
	if nc, err := net.Dial("tcp", f.addr); err == nil {
		nc.Close()
		t.Fatal("a new connection was accepted while draining")
	}

	tc := tls.Client(raw, clientTLSConfig())
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake of a session accepted before Drain: %v", err)
	}
	c2 := &client{t: t, conn: tc, br: bufio.NewReader(tc)}
	c2.expect("220 " + testHost)
	c2.do("EHLO late.example", "250 ")
	c2.login()
	c2.transaction("alice@example.org", "bob@example.org")
	c2.do(message("From: alice@example.org", "Subject: second")+".", "250 2.0.0")

	c.transaction("alice@example.org", "bob@example.org")
	c.do(message("From: alice@example.org", "Subject: first")+".", "250 2.0.0")
	c.do("NOOP", "250 ")
	select {
	case err := <-errc:
		t.Fatalf("Drain returned %v with two sessions open", err)
	default:
	}
	c.do("QUIT", "221 ")
	c2.do("QUIT", "221 ")
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Drain: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return after the last session quit")
	}
	if n := len(f.spool.messages()); n != 2 {
		t.Errorf("%d messages spooled, want 2", n)
	}
}

// TestDrainDeadlineThenShutdown: a session idle past Drain's deadline is
// left open by Drain (it still answers), and the Shutdown that follows
// tells it 421 4.3.2.
func TestDrainDeadlineThenShutdown(t *testing.T) {
	f := newFixture(t, RoleMX)
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f.srv.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain: %v, want DeadlineExceeded", err)
	}
	c.do("NOOP", "250 ")
	errc := make(chan error, 1)
	go func() { errc <- f.srv.Shutdown(context.Background()) }()
	c.expect("421 4.3.2 Service shutting down")
	c.expectClosed()
	if err := <-errc; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
