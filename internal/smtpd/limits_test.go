package smtpd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTooManyRecipientsPipelined checks RFC 5321 §4.5.3.1.10: each
// recipient past max_recipients gets 452 4.5.3, none of them counts as
// an error, and the pipelined DATA carries the accepted ones.
func TestTooManyRecipientsPipelined(t *testing.T) {
	f := newFixture(t, RoleMX)
	for i := range 150 {
		f.dir.addUser(fmt.Sprintf("u%d@example.org", i))
	}
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	var b strings.Builder
	b.WriteString("MAIL FROM:<a@example.net>\r\n")
	for i := range 150 {
		fmt.Fprintf(&b, "RCPT TO:<u%d@example.org>\r\n", i)
	}
	b.WriteString("DATA\r\n")
	c.raw(b.String())
	c.expect("250 2.1.0")
	for range 100 {
		c.expect("250 2.1.5")
	}
	for range 50 {
		c.expect("452 4.5.3 Too many recipients")
	}
	c.expect("354 ")
	c.do(message("From: a@example.net")+".", "250 2.0.0")
	msgs := f.spool.messages()
	if len(msgs) != 1 || len(msgs[0].env.Recipients) != 100 {
		t.Fatalf("spooled %d messages, want 1 with 100 recipients", len(msgs))
	}
	// The client retries the rest in a new transaction, in the same
	// session: the excess recipients did not use up its error budget.
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	for i := 100; i < 150; i++ {
		c.do(fmt.Sprintf("RCPT TO:<u%d@example.org>", i), "250 2.1.5")
	}
	c.do("DATA", "354 ")
	c.do(message("From: a@example.net")+".", "250 2.0.0")
	c.do("QUIT", "221 ")
}

// TestRecipientOvershoot checks that excess recipients count as errors
// only past rcptOvershoot, so that a client cannot send RCPTs forever.
func TestRecipientOvershoot(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) { s.Limits.MaxRecipients, s.Limits.MaxErrors = 1, 3 })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	c.raw(strings.Repeat("RCPT TO:<carol@example.org>\r\n", rcptOvershoot+3))
	for range rcptOvershoot + 3 {
		c.expect("452 4.5.3")
	}
	c.expect("421 4.7.0 Too many errors")
	c.expectClosed()
}

// fakeAfter is an injected clock for the session's delays: it records
// each delay asked for and fires at once (or never, when hold is set).
type fakeAfter struct {
	mu     sync.Mutex
	delays []time.Duration
	hold   bool
	asked  chan struct{} // when set, told of each delay asked for
}

func (a *fakeAfter) after(d time.Duration) <-chan time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.delays = append(a.delays, d)
	ch := make(chan time.Time, 1)
	if !a.hold {
		ch <- fixedNow.Add(d)
	}
	if a.asked != nil {
		a.asked <- struct{}{}
	}
	return ch
}

func (a *fakeAfter) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.delays)
}

// TestErrorLimitSoftAndHard checks the two error limits, as Postfix's
// smtpd_soft_error_limit and smtpd_hard_error_limit: past 10 errors
// every reply waits ErrorDelay; the 20th error ends the session.
func TestErrorLimitSoftAndHard(t *testing.T) {
	clock := &fakeAfter{}
	f := newFixture(t, RoleMX, func(s *Server) { s.After = clock.after })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	for i := range 10 {
		c.do(fmt.Sprintf("RCPT TO:<x%d@elsewhere.example>", i), "550 5.7.1")
	}
	c.do("NOOP", "250 2.0.0") // 10 errors: not yet slowed down
	if n := clock.count(); n != 0 {
		t.Fatalf("%d delays after 10 errors, want none", n)
	}
	c.do("RCPT TO:<bad@elsewhere.example>", "550 5.7.1") // the 11th
	if n := clock.count(); n != 0 {
		t.Fatalf("%d delays before the 11th error's reply, want none", n)
	}
	c.do("RSET", "250 2.0.0")
	c.do("MAIL FROM:<a@example.net>", "250 2.1.0")
	c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	if n := clock.count(); n != 3 {
		t.Fatalf("%d delays after the 11th error for 3 replies, want 3", n)
	}
	for range 8 {
		c.do("RCPT TO:<x@elsewhere.example>", "550 5.7.1")
	}
	c.do("RCPT TO:<x@elsewhere.example>", "550 5.7.1") // the 20th
	c.expect("421 4.7.0 Too many errors")
	c.expectClosed()
	clock.mu.Lock()
	defer clock.mu.Unlock()
	if len(clock.delays) != 12 {
		t.Errorf("%d delays, want 12 (every reply after the 11th error)", len(clock.delays))
	}
	for _, d := range clock.delays {
		if d != time.Second {
			t.Errorf("delay %v, want the default 1s", d)
		}
	}
}

// TestErrorDelayShutdown checks that a session waiting out its error
// delay is told 421 4.3.2 at shutdown, not made to wait.
func TestErrorDelayShutdown(t *testing.T) {
	clock := &fakeAfter{hold: true, asked: make(chan struct{}, 1)}
	f := newFixture(t, RoleMX, func(s *Server) {
		s.After = clock.after
		s.Limits.ErrorDelayAfter, s.Limits.ErrorDelay = 1, time.Hour
	})
	c := f.dial()
	c.do("BOGUS", "500 5.5.1")
	c.do("BOGUS", "500 5.5.1")
	c.send("NOOP")
	<-clock.asked
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go f.srv.Shutdown(ctx)
	c.expect("421 4.3.2")
	c.expectClosed()
}

// TestZeroLimitsAreOff: in Limits, 0 is no limit and no delay, never a
// default (Postern's configuration resolves the defaults): no SIZE bound
// (advertised as SIZE 0, RFC 1870 §4), no recipient cap, no error limit,
// no error or AUTH delay, no timeout.
func TestZeroLimitsAreOff(t *testing.T) {
	clock := &fakeAfter{}
	f := newFixture(t, RoleSubmission, func(s *Server) {
		s.Limits = Limits{}
		s.After = clock.after
	})
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.startTLS()
	ehlo := c.do("EHLO client.example", "250 ")
	if !slices.Contains(strings.Split(ehlo, "\n"), "250-SIZE 0") {
		t.Errorf("EHLO reply %q does not say SIZE 0", ehlo)
	}
	for range 25 {
		c.do("AUTH PLAIN "+plainAuth("alice", "wrong"), "535 5.7.8")
	}
	c.do("AUTH PLAIN "+plainAuth("alice", testPassword), "235 ")
	c.do("MAIL FROM:<alice@example.org> SIZE=999999999999", "250 2.1.0")
	for range 150 {
		c.do("RCPT TO:<bob@example.org>", "250 2.1.5")
	}
	c.do("QUIT", "221 ")
	if n := clock.count(); n != 0 {
		t.Errorf("%d delays (%v), want none", n, clock.delays)
	}
}

// TestSetLimits: new limits reach the sessions that start after
// SetLimits, SIZE in their EHLO reply included; a session in progress
// keeps the limits it started with.
func TestSetLimits(t *testing.T) {
	f := newFixture(t, RoleMX, func(s *Server) {
		s.Limits = Limits{MaxMessageSize: 1000, MaxRecipients: 3}
	})
	old := f.dial()
	if ehlo := old.do("EHLO client.example", "250 "); !slices.Contains(strings.Split(ehlo, "\n"), "250-SIZE 1000") {
		t.Fatalf("EHLO before: %q", ehlo)
	}
	f.srv.SetLimits(Limits{MaxMessageSize: 2000, MaxRecipients: 1})
	c := f.dial()
	if ehlo := c.do("EHLO client.example", "250 "); !slices.Contains(strings.Split(ehlo, "\n"), "250-SIZE 2000") {
		t.Errorf("EHLO after SetLimits: %q", ehlo)
	}
	c.do("MAIL FROM:<x@example.net>", "250 ")
	c.do("RCPT TO:<bob@example.org>", "250 ")
	c.do("RCPT TO:<alice@example.org>", "452 ")
	old.do("MAIL FROM:<x@example.net>", "250 ")
	old.do("RCPT TO:<bob@example.org>", "250 ")
	old.do("RCPT TO:<alice@example.org>", "250 ") // started with 3
}
