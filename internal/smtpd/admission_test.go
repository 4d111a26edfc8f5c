package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/admission"
	"postern/internal/admission/admissiontest"
	"postern/internal/metrics"
	"postern/internal/testkit"
)

// admCounter reads a counter.
func admCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// tlsHandshakes counts the server's TLS handshakes on listener, any
// version or result.
func tlsHandshakes(t *testing.T, listener string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry() // of its own: nothing is registered at init
	reg.MustRegister(metrics.TLSHandshakes)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "postern_tls_handshakes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// guarded sets up a server with a gate, an engine and a limiter on one
// memory store (no delays, no rates unless asked).
type guarded struct {
	store   admission.Store
	gate    *admission.Gate
	engine  *admission.Engine
	limiter *admission.Limiter
	metrics *admission.Metrics // the gate's and the limiter's
}

func newGuarded(gopts admission.GateOptions, aopts admission.AbuseOptions, lopts admission.LimiterOptions) *guarded {
	return newGuardedOn(admission.NewMemoryStore(), gopts, aopts, lopts)
}

// abuseOptions returns admissiontest.Abuse without the failure delays
// (which would slow the tests down), changed by change when not nil.
func abuseOptions(change func(o *admission.AbuseOptions)) admission.AbuseOptions {
	return admissiontest.Abuse(func(o *admission.AbuseOptions) {
		o.FailDelay = 0
		if change != nil {
			change(o)
		}
	})
}

// newGuardedOn is newGuarded on the given store.
func newGuardedOn(store admission.Store, gopts admission.GateOptions, aopts admission.AbuseOptions, lopts admission.LimiterOptions) *guarded {
	g := &guarded{store: store, metrics: admission.NewMetrics(nil)}
	aopts.Logger = discardLogger()
	lopts.Logger = discardLogger()
	gopts.Metrics, lopts.Metrics = g.metrics, g.metrics
	g.gate = admission.NewGate(g.store, gopts)
	g.engine = admission.NewEngine(g.store, aopts)
	g.limiter = admission.NewLimiter(g.store, lopts)
	return g
}

func (g *guarded) install(s *Server) {
	s.Admitter = g.gate
	s.AuthGuard = g.engine
	s.SendLimiter = g.limiter
}

// dialAs connects from the loopback address src (each 127.0.0.x plays a
// client of its own). For submissions it then tries the TLS handshake and
// reports whether it succeeded; a client without one gets a nil client.
func (f *fixture) dialAs(src string) (c *client, handshake bool) {
	f.t.Helper()
	return f.dialAsWith(src, nil)
}

// dialAsWith is dialAs with the client's TLS configuration adjusted by
// tweak, when not nil.
func (f *fixture) dialAsWith(src string, tweak func(*tls.Config)) (c *client, handshake bool) {
	f.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	if f.srv.Role == RoleSubmissions {
		cfg := clientTLSConfig()
		if tweak != nil {
			tweak(cfg)
		}
		tc := tls.Client(conn, cfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, false
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	return &client{t: f.t, conn: conn, br: bufio.NewReader(conn)}, true
}

func (f *fixture) greetAs(src string) *client {
	f.t.Helper()
	c, ok := f.dialAs(src)
	if !ok {
		f.t.Fatalf("no TLS handshake for %s", src)
	}
	c.expect("220 ")
	c.do("EHLO "+src, "250 ")
	return c
}

func banLoopback(t *testing.T, s admission.Store, a string) {
	t.Helper()
	err := s.PutBan(context.Background(), admission.Ban{Prefix: netip.PrefixFrom(netip.MustParseAddr(a), 32),
		Until: fixedNow.Add(time.Hour), Reason: "test", Created: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAdmitRefusedSubmissionsNoHandshake(t *testing.T) {
	g := newGuarded(admission.GateOptions{}, abuseOptions(nil), admission.LimiterOptions{})
	f := newFixture(t, RoleSubmissions, g.install)
	banLoopback(t, g.store, "127.0.0.20")
	avoided := admCounter(g.metrics.HandshakesAvoided.WithLabelValues(f.srv.Name))
	hs := tlsHandshakes(t, f.srv.Name)

	// Raw TCP: the server sends nothing and closes, whatever we send.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.20")}}
	conn, err := d.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if len(b) != 0 || err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("banned client read %q, %v; want nothing and a close", b, err)
	}
	// A TLS client gets no handshake.
	if _, ok := f.dialAs("127.0.0.20"); ok {
		t.Fatal("TLS handshake with a banned client")
	}
	if got := admCounter(g.metrics.HandshakesAvoided.WithLabelValues(f.srv.Name)) - avoided; got != 2 {
		t.Errorf("handshakes avoided += %v, want 2", got)
	}
	if got := tlsHandshakes(t, f.srv.Name) - hs; got != 0 {
		t.Errorf("server TLS handshakes += %v, want 0", got)
	}
	// A neighbour is served.
	c := f.greetAs("127.0.0.21")
	c.login()
}

func TestAdmitRefusedMXAndSubmission421(t *testing.T) {
	for _, role := range []Role{RoleMX, RoleSubmission} {
		t.Run(role.String(), func(t *testing.T) {
			g := newGuarded(admission.GateOptions{Listeners: map[string]admission.Listener{
				"test-" + role.String(): {Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.128/25")}},
			}}, abuseOptions(nil), admission.LimiterOptions{})
			f := newFixture(t, role, g.install)
			hs := tlsHandshakes(t, f.srv.Name)
			avoided := admCounter(g.metrics.HandshakesAvoided.WithLabelValues(f.srv.Name))
			c, _ := f.dialAs("127.0.0.200")
			c.expect("421 4.7.0 ")
			c.expectClosed()
			c, _ = f.dialAs("127.0.0.30")
			c.expect("220 ")
			c.do("EHLO x", "250 ")
			c.startTLS()
			if got := admCounter(g.metrics.HandshakesAvoided.WithLabelValues(f.srv.Name)) - avoided; got != 1 {
				t.Errorf("handshakes avoided += %v, want 1", got)
			}
			// The server counts its handshake just after the client's.
			waitFor(t, "the allowed client's handshake counted", func() bool { return tlsHandshakes(t, f.srv.Name)-hs >= 1 })
			if got := tlsHandshakes(t, f.srv.Name) - hs; got != 1 {
				t.Errorf("TLS handshakes += %v, want 1 (the allowed client's)", got)
			}
		})
	}
}

func TestAdmitConcurrencyCap(t *testing.T) {
	g := newGuarded(admission.GateOptions{MaxConnsPerIP: 2}, abuseOptions(nil), admission.LimiterOptions{})
	f := newFixture(t, RoleSubmission, g.install)
	c1, _ := f.dialAs("127.0.0.40")
	c1.expect("220 ")
	c2, _ := f.dialAs("127.0.0.40")
	c2.expect("220 ")
	c3, _ := f.dialAs("127.0.0.40") // just past the cap
	c3.expect("421 4.7.0 Too many connections")
	c3.expectClosed()
	c4, _ := f.dialAs("127.0.0.41")
	c4.expect("220 ")
	c1.do("QUIT", "221 ")
	c1.expectClosed()
	waitFor(t, "the slot given back", func() bool { return g.gate.Conns(netip.MustParseAddr("127.0.0.40")) == 1 })
	c5, _ := f.dialAs("127.0.0.40")
	c5.expect("220 ")
}

// waitFor polls cond (for what another goroutine does) for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, what, cond)
}

// TestThousandWrongPasswords is the scenario of the issue: 1000 wrong
// passwords from one address over implicit TLS. The address is banned at
// the 10th failure; every later connection of it gets no TLS handshake;
// the real user logs in from her own address meanwhile.
func TestThousandWrongPasswords(t *testing.T) { eachGuardStore(t, thousandWrongPasswords) }

func thousandWrongPasswords(t *testing.T, store admission.Store) {
	g := newGuardedOn(store, admission.GateOptions{}, abuseOptions(nil), admission.LimiterOptions{})
	f := newFixture(t, RoleSubmissions, g.install)
	const attacker, home = "127.0.0.66", "127.0.0.9"

	c := f.greetAs(home) // alice logged in from home before: a good address
	c.login()
	c.do("QUIT", "221 ")

	avoided := admCounter(g.metrics.HandshakesAvoided.WithLabelValues(f.srv.Name))
	hs := tlsHandshakes(t, f.srv.Name)
	var (
		failures, dials, refusedDials int
		bannedAt                      = -1
		cur                           *client
	)
	for i := 1; i <= 1000; i++ {
		// Meanwhile, the real user logs in from home.
		if i == 5 || i == 500 {
			h := f.greetAs(home)
			h.login()
			h.do("QUIT", "221 ")
		}
		if cur == nil {
			dials++
			var ok bool
			if cur, ok = f.dialAs(attacker); !ok {
				refusedDials++
				cur = nil
				continue
			}
			if bannedAt >= 0 {
				t.Fatalf("attempt %d: TLS handshake after the ban", i)
			}
			cur.expect("220 ")
			cur.do("EHLO attacker", "250 ")
		}
		cur.send("AUTH PLAIN " + plainAuth("alice", fmt.Sprintf("guess-%d", i)))
		lines, err := cur.readReply()
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		switch last := lines[len(lines)-1]; {
		case strings.HasPrefix(last, "535 5.7.8"):
			failures++
		case strings.HasPrefix(last, "421 4.7.0 Too many errors"):
			cur.expectClosed()
			cur = nil
		case strings.HasPrefix(last, "421 4.7.0"):
			failures++
			bannedAt = failures
			cur.expectClosed()
			cur = nil
		default:
			t.Fatalf("attempt %d: %q", i, lines)
		}
	}
	if bannedAt != 10 {
		t.Fatalf("banned at failure %d, want 10 (failures %d)", bannedAt, failures)
	}
	if b, ok, _ := g.store.Banned(context.Background(), netip.MustParseAddr(attacker), fixedNow); !ok || b.Prefix.Bits() != 32 {
		t.Fatalf("ban = %+v, %v", b, ok)
	}
	if refusedDials == 0 || refusedDials != dials-1 {
		t.Fatalf("dials %d, refused %d: want every dial after the first refused", dials, refusedDials)
	}
	if got := admCounter(g.metrics.HandshakesAvoided.WithLabelValues(f.srv.Name)) - avoided; int(got) != refusedDials {
		t.Errorf("handshakes avoided += %v, want %d", got, refusedDials)
	}
	// The attacker's one handshake and alice's two.
	waitFor(t, "handshakes counted", func() bool { return tlsHandshakes(t, f.srv.Name)-hs >= 3 })
	if got := tlsHandshakes(t, f.srv.Name) - hs; got != 3 {
		t.Errorf("TLS handshakes += %v, want 3", got)
	}
	// One address, however many its guesses, does not put alice under
	// attack (issue 12 §3): a new address of hers logs in, as does home.
	n := f.greetAs("127.0.0.10")
	n.login()
	h := f.greetAs(home)
	h.login()
}

func TestAuthStuffingBansAddress(t *testing.T) {
	g := newGuarded(admission.GateOptions{}, abuseOptions(nil), admission.LimiterOptions{})
	f := newFixture(t, RoleSubmission, g.install)
	c, _ := f.dialAs("127.0.0.70")
	c.expect("220 ")
	c.do("EHLO x", "250 ")
	c.startTLS()
	c.do("EHLO x", "250 ")
	for i := 1; i <= 4; i++ {
		c.do("AUTH PLAIN "+plainAuth(fmt.Sprintf("user%d", i), "pw"), "535 5.7.8")
	}
	c.do("AUTH PLAIN "+plainAuth("user5", "pw"), "421 4.7.0")
	c.expectClosed()
	c, _ = f.dialAs("127.0.0.70")
	c.expect("421 4.7.0 Service not available")
}

// TestAuthDistributedThrottlesNewAddresses: guessing from five networks
// puts alice under attack. A network that never logged in as her then
// has its three passwords checked (user_throttle_after), after which even
// the right password is refused, without a ban; alice, from a network
// new to her, still logs in, and from home as ever.
func TestAuthDistributedThrottlesNewAddresses(t *testing.T) {
	g := newGuarded(admission.GateOptions{}, abuseOptions(nil), admission.LimiterOptions{})
	f := newFixture(t, RoleSubmissions, g.install)
	c := f.greetAs("127.0.0.9")
	c.login()                 // alice's home
	for i := 1; i <= 5; i++ { // five /24s on loopback, one failure each
		a := f.greetAs(fmt.Sprintf("127.0.%d.1", 80+i))
		a.do("AUTH PLAIN "+plainAuth("alice", "guess"), "535 5.7.8")
	}
	a := f.greetAs("127.0.90.1")
	for i := 0; i < 3; i++ {
		a.do("AUTH PLAIN "+plainAuth("alice", "guess"), "535 5.7.8")
	}
	// The network's checks are spent: the right password is refused
	// (and not banned).
	a = f.greetAs("127.0.90.2")
	a.do("AUTH PLAIN "+plainAuth("alice", testPassword), "535 5.7.8")
	a.do("NOOP", "250 ")
	if logs := f.logs.String(); !strings.Contains(logs, "outcome=throttled") {
		t.Errorf("no throttled attempt logged:\n%s", logs)
	}
	n := f.greetAs("127.0.91.1")
	n.login()
	h := f.greetAs("127.0.0.9")
	h.login()
}

func TestAuthTrustedExempt(t *testing.T) {
	g := newGuarded(admission.GateOptions{},
		abuseOptions(func(o *admission.AbuseOptions) { o.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.96/30")} }), admission.LimiterOptions{})
	f := newFixture(t, RoleSubmissions, g.install, func(s *Server) { s.Limits.MaxErrors = 100 })
	c := f.greetAs("127.0.0.97")
	for i := 0; i < 30; i++ {
		c.do("AUTH PLAIN "+plainAuth("alice", "guess"), "535 5.7.8")
	}
	c.login()
}

func TestSendLimits(t *testing.T) {
	g := newGuarded(admission.GateOptions{}, abuseOptions(nil),
		admission.LimiterOptions{Default: admission.SendLimits{MessagesPerHour: 2, RecipientsPerHour: 3, Sessions: 1}})
	f := newFixture(t, RoleSubmissions, g.install)
	c := f.greetAs("127.0.0.100")
	c.login()
	// A second concurrent session of alice: refused at AUTH.
	c2 := f.greetAs("127.0.0.101")
	c2.do("AUTH PLAIN "+plainAuth("alice", testPassword), "451 4.7.1 Send limit of 1 concurrent sessions")
	c2.do("MAIL FROM:<alice@example.org>", "530 ")

	send := func(rcpts int, want string) {
		t.Helper()
		c.do("MAIL FROM:<alice@example.org>", "250 ")
		for i := 0; i < rcpts; i++ {
			c.do(fmt.Sprintf("RCPT TO:<r%d@elsewhere.example>", i), "250 ")
		}
		c.send("DATA")
		if want != "" {
			c.expect(want)
			return
		}
		c.expect("354 ")
		c.send(message("From: <alice@example.org>", "Subject: x") + ".")
		c.expect("250 ")
	}
	send(2, "")                                              // 1 message, 2 recipients
	send(2, "451 4.7.1 Send limit of 3 recipients per hour") // 4 > 3
	send(1, "")                                              // 2 messages, 3 recipients: at both limits
	send(1, "451 4.7.1 Send limit of 2 messages per hour")   // just past
	c.do("MAIL FROM:<alice@example.org>", "250 ")            // the refused transaction ended
	if n := len(f.spool.messages()); n != 2 {
		t.Errorf("spooled %d messages, want 2", n)
	}
	c.do("QUIT", "221 ")
	c.expectClosed()
	waitFor(t, "alice's session slot", func() bool { return g.limiter.Sessions("alice") == 0 })
	c3 := f.greetAs("127.0.0.102")
	c3.login()
}

func addrOf(s string) netip.Addr { return netip.MustParseAddr(s) }

// Over a limit with over_limit = "hold", the message is taken (250, with
// the hold said) and spooled marked held; the held message does not count
// against the limits. With "refuse" (TestSendLimits) it is 451.
func TestSendLimitsHold(t *testing.T) {
	g := newGuarded(admission.GateOptions{}, abuseOptions(nil),
		admission.LimiterOptions{Default: admission.SendLimits{MessagesPerHour: 1, RecipientsPerHour: 3, Hold: true}})
	var mu sync.Mutex
	now := fixedNow
	f := newFixture(t, RoleSubmissions, g.install, func(s *Server) {
		s.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
	})
	c := f.greetAs("127.0.0.110")
	c.login()
	send := func(rcpts int, want string) string {
		t.Helper()
		c.do("MAIL FROM:<alice@example.org>", "250 ")
		for i := 0; i < rcpts; i++ {
			c.do(fmt.Sprintf("RCPT TO:<r%d@elsewhere.example>", i), "250 ")
		}
		c.do("DATA", "354 ")
		c.send(message("From: <alice@example.org>", "Subject: x") + ".")
		return c.expect(want)
	}
	send(1, "250 2.0.0 OK queued as ")
	held := send(1, "250 2.0.0 OK queued as ")
	if !strings.HasSuffix(strings.TrimRight(held, "\r\n"), "(held for review: send limit)") {
		t.Errorf("reply to the held message: %q", held)
	}
	send(4, "250 2.0.0 OK queued as ") // held for its recipients
	msgs := f.spool.messages()
	if len(msgs) != 3 {
		t.Fatalf("spooled %d messages, want 3", len(msgs))
	}
	want := []string{"", "send limit: messages per hour", "send limit: messages per hour"}
	for i, m := range msgs {
		if m.env.Hold != (want[i] != "") || m.env.HoldReason != want[i] {
			t.Errorf("message %d: Hold %v, HoldReason %q; want %q", i, m.env.Hold, m.env.HoldReason, want[i])
		}
	}
	if id := msgs[1].env.ID; !strings.Contains(held, id) {
		t.Errorf("reply %q does not name id %s", held, id)
	}
	if logs := f.logs.String(); !strings.Contains(logs, `msg="message held"`) ||
		!strings.Contains(logs, "id="+msgs[1].env.ID) || !strings.Contains(logs, `limit="messages per hour"`) {
		t.Errorf("no \"message held\" event naming the id and the limit in:\n%s", logs)
	}
	// The held messages were not counted: an hour later one message
	// with three recipients is within the limits again.
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	send(3, "250 2.0.0 OK queued as ")
	if m := f.spool.messages()[3]; m.env.Hold {
		t.Errorf("message within the limits held: %+v", m.env)
	}
}
