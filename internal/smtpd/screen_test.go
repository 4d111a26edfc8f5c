package smtpd

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"postern/internal/dns/dnstest"
	"postern/internal/metrics"
	"postern/internal/proxyproto"
	"postern/internal/testkit"
)

// screenFixture starts an mx server whose listener wrap may replace
// (with a proxyproto.Listener), with the given Screen.
func screenFixture(t *testing.T, name string, sc *Screen, wrap func(net.Listener) net.Listener) *fixture {
	t.Helper()
	return screenFixtureClock(t, name, sc, wrap, nil)
}

// screenFixtureTimers is screenFixture with the greeting delay on a fake
// clock: it ends when the test advances the clock.
func screenFixtureTimers(t *testing.T, name string, sc *Screen) (*fixture, *testkit.Timers) {
	t.Helper()
	clock := &testkit.Timers{}
	return screenFixtureClock(t, name, sc, nil, clock.After), clock
}

func screenFixtureClock(t *testing.T, name string, sc *Screen, wrap func(net.Listener) net.Listener, after func(time.Duration) <-chan time.Time) *fixture {
	t.Helper()
	f := &fixture{t: t, spool: &testSpool{}, dir: newTestDir(), logs: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	f.srv = &Server{
		Name:      name,
		Role:      RoleMX,
		Hostname:  testHost,
		Limits:    Limits{CommandTimeout: 10 * time.Second},
		Directory: f.dir,
		Spool:     f.spool,
		Logger:    slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       func() time.Time { return fixedNow },
		After:     after,
		Screen:    sc,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	if wrap != nil {
		l = wrap(l)
	}
	go func() { f.done <- f.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		f.srv.Shutdown(ctx)
		<-f.done
	})
	return f
}

// dialFrom connects from the loopback address src (each 127.0.0.x is a
// client of its own) and writes first, if not empty.
func (f *fixture) dialFrom(src, first string) *client {
	f.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", f.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { conn.Close() })
	c := &client{t: f.t, conn: conn, br: bufio.NewReader(conn)}
	if first != "" {
		c.raw(first)
	}
	return c
}

// counterValue reads a counter.
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func screenCount(listener, result string) float64 {
	return counterValue(metrics.ScreenResults.WithLabelValues(listener, result))
}

func TestPregreetIsDropped(t *testing.T) {
	f := screenFixture(t, "screen-pregreet", &Screen{GreetDelay: 300 * time.Millisecond}, nil)
	c := f.dialFrom("127.0.0.11", "EHLO bot.example\r\n")
	start := time.Now()
	c.expect("521 5.5.1 ")
	c.expectClosed()
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("the pregreeter was answered after %v; want at once", d)
	}
	if n := screenCount("screen-pregreet", "pregreet"); n != 1 {
		t.Errorf("pregreet count = %v, want 1", n)
	}
	if !strings.Contains(f.logs.String(), "pregreet") {
		t.Errorf("no pregreet in the log:\n%s", f.logs)
	}
}

func TestGreetDelayPatientClientPasses(t *testing.T) {
	f, clock := screenFixtureTimers(t, "screen-patient", &Screen{GreetDelay: 200 * time.Millisecond})
	c := f.dialFrom("127.0.0.12", "")
	if !clock.WaitArmed(200*time.Millisecond, 5*time.Second) {
		t.Fatal("no 200ms greeting delay began")
	}
	clock.Advance(199 * time.Millisecond)
	c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if line, err := c.br.ReadString('\n'); err == nil {
		t.Fatalf("greeting %q before the 200ms delay ended", line)
	}
	c.conn.SetReadDeadline(time.Time{})
	clock.Advance(time.Millisecond)
	c.expect("220 " + testHost)
	c.do("EHLO client.example", "250 ")
	c.do("QUIT", "221 ")
	if n := screenCount("screen-patient", "pass"); n != 1 {
		t.Errorf("pass count = %v, want 1", n)
	}
}

// A pregreet that arrives while the DNSBL answers are pending, and one
// right at the end of the delay, are both caught.
func TestPregreetLateInTheDelay(t *testing.T) {
	f, clock := screenFixtureTimers(t, "screen-late", &Screen{GreetDelay: 400 * time.Millisecond})
	c := f.dialFrom("127.0.0.13", "")
	if !clock.WaitArmed(400*time.Millisecond, 5*time.Second) {
		t.Fatal("no 400ms greeting delay began")
	}
	clock.Advance(399 * time.Millisecond)
	c.raw("EHLO late.example\r\n")
	c.expect("521 5.5.1 ")
	c.expectClosed()
}

func TestClientLeavingDuringDelay(t *testing.T) {
	f := screenFixture(t, "screen-hangup", &Screen{GreetDelay: time.Second}, nil)
	c := f.dialFrom("127.0.0.14", "")
	c.conn.Close()
	testkit.WaitFor(t, "a client gone during the delay seen as a hangup", func() bool {
		return screenCount("screen-hangup", "hangup") == 1
	})
}

// dnsblZone lists 127.0.0.21 in both zones, 127.0.0.22 only in the
// weak one, 127.0.0.23 with Spamhaus's error code; 127.0.0.24 nowhere.
func dnsblZone(t *testing.T) *dnstest.Server {
	return dnstest.New(t, dnstest.Zone{
		"21.0.0.127.zen.example":      {dnstest.A("127.0.0.2")},
		"21.0.0.127.weak.example":     {dnstest.A("127.0.0.10")},
		"22.0.0.127.weak.example":     {dnstest.A("127.0.0.10")},
		"23.0.0.127.zen.example":      {dnstest.A("127.255.255.254")},
		"7.113.0.203.zen.example":     {dnstest.A("127.0.0.4")},
		"7.113.0.203.weak.example":    {dnstest.A("127.0.0.4")},
		"25.0.0.127.slow.zen.example": {dnstest.A("127.0.0.2")},
	})
}

func dnsblScreen(d *dnstest.Server, delay time.Duration) *Screen {
	return &Screen{
		GreetDelay:     delay,
		DNSBL:          []DNSBLZone{{Zone: "zen.example", Weight: 2}, {Zone: "weak.example", Weight: 1}},
		DNSBLThreshold: 3,
		Resolver:       d.Resolver(),
	}
}

func TestDNSBLOverThreshold(t *testing.T) {
	d := dnsblZone(t)
	f := screenFixture(t, "screen-dnsbl", dnsblScreen(d, 5*time.Second), nil)
	start := time.Now()
	c := f.dialFrom("127.0.0.21", "")
	got := c.expect("521 5.7.1 ")
	c.expectClosed()
	if !strings.Contains(got, "[127.0.0.21]") || !strings.Contains(got, "zen.example") || !strings.Contains(got, "weak.example") {
		t.Errorf("reply %q does not name the client and the lists", got)
	}
	// Refused as soon as the score is reached, not at the delay's end.
	if dt := time.Since(start); dt > 2*time.Second {
		t.Errorf("refused after %v", dt)
	}
	if n := screenCount("screen-dnsbl", "dnsbl"); n != 1 {
		t.Errorf("dnsbl count = %v", n)
	}
}

func TestDNSBLBelowThresholdAndErrorCodes(t *testing.T) {
	d := dnsblZone(t)
	f := screenFixture(t, "screen-dnsbl-low", dnsblScreen(d, 0), nil)
	for _, src := range []string{"127.0.0.22", "127.0.0.23", "127.0.0.24"} {
		start := time.Now()
		c := f.dialFrom(src, "")
		c.expect("220 ")
		// No greeting delay: the server waits only for the answers.
		if dt := time.Since(start); dt > time.Second {
			t.Errorf("%s greeted after %v", src, dt)
		}
		c.do("QUIT", "221 ")
	}
	if n := screenCount("screen-dnsbl-low", "pass"); n != 3 {
		t.Errorf("pass count = %v, want 3", n)
	}
}

// A DNSBL that does not answer delays nobody past the greeting delay.
func TestDNSBLTimeoutBoundedByDelay(t *testing.T) {
	d := dnsblZone(t)
	d.Timeout("25.0.0.127.zen.example", "25.0.0.127.weak.example")
	sc := dnsblScreen(d, 300*time.Millisecond)
	f := screenFixture(t, "screen-dnsbl-slow", sc, nil)
	start := time.Now()
	c := f.dialFrom("127.0.0.25", "")
	c.expect("220 ")
	if dt := time.Since(start); dt > 900*time.Millisecond {
		t.Errorf("greeted after %v with a 300ms delay", dt)
	}
}

func TestDNSBLName(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.99":         "99.2.0.192.zen.example",
		"::ffff:192.0.2.99":  "99.2.0.192.zen.example",
		"2001:db8:1:2::abcd": "d.c.b.a.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.example",
		"2001:db8::1":        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.example",
	} {
		if got := DNSBLName(netip.MustParseAddr(addr), "zen.example."); got != want {
			t.Errorf("DNSBLName(%s) = %s, want %s", addr, got, want)
		}
	}
	for a, want := range map[string]bool{"127.0.0.2": true, "127.0.1.4": true, "127.255.255.254": false, "10.0.0.2": false, "::1": false} {
		if Listed(netip.MustParseAddr(a)) != want {
			t.Errorf("Listed(%s) = %v", a, !want)
		}
	}
}

// proxied wraps a listener in the PROXY protocol, trusting 127.0.0.1.
func proxied(l net.Listener) net.Listener {
	return &proxyproto.Listener{Listener: l, Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Timeout: time.Second}
}

// Behind a load balancer the header's address is the one the checks and
// the logs use.
func TestProxyHeaderAddressIsChecked(t *testing.T) {
	d := dnsblZone(t)
	f := screenFixture(t, "screen-proxy", dnsblScreen(d, 0), proxied)
	src := netip.MustParseAddrPort("203.0.113.7:41000")
	dst := netip.MustParseAddrPort("192.0.2.1:25")
	c := f.dialFrom("127.0.0.1", string(proxyproto.AppendV2(nil, src, dst, false)))
	got := c.expect("521 5.7.1 ")
	if !strings.Contains(got, "[203.0.113.7]") {
		t.Errorf("reply %q does not name the client of the header", got)
	}
	if !strings.Contains(f.logs.String(), "remote=203.0.113.7:41000") {
		t.Errorf("the log does not show the header's address:\n%s", f.logs)
	}
	// The same header from a client the listener does not trust is not
	// honoured: the connection is cut.
	c2 := f.dialFrom("127.0.0.2", string(proxyproto.AppendV1(nil, src, dst)))
	c2.expect("220 ")
	c2.send("EHLO x")
	c2.expectClosed()
	if !strings.Contains(f.logs.String(), "remote=127.0.0.2:") {
		t.Errorf("the untrusted client is not logged under its own address:\n%s", f.logs)
	}
}

func TestProxyMissingHeaderNoGreeting(t *testing.T) {
	f := screenFixture(t, "screen-proxy-bad", nil, proxied)
	c := f.dialFrom("127.0.0.1", "EHLO x\r\n")
	c.expectClosed()
	if n := counterValue(metrics.ProxyHeaderErrors.WithLabelValues("screen-proxy-bad")); n != 1 {
		t.Errorf("proxy header errors = %v, want 1", n)
	}
	// A good header then a normal session, with the header's address in
	// the envelope.
	src := netip.MustParseAddrPort("198.51.100.20:5555")
	c = f.dialFrom("127.0.0.1", string(proxyproto.AppendV1(nil, src, netip.MustParseAddrPort("192.0.2.1:25"))))
	c.script(
		step{"", "220 "},
		step{"EHLO relay.example", "250 "},
		step{"MAIL FROM:<a@remote.example>", "250 "},
		step{"RCPT TO:<bob@example.org>", "250 "},
		step{"DATA", "354 "},
		step{"Subject: hi\r\n\r\nbody\r\n.", "250 "},
		step{"QUIT", "221 "},
	)
	msgs := f.spool.messages()
	if len(msgs) != 1 || msgs[0].env.Remote != src {
		t.Fatalf("spooled %+v; want one message from %s", msgs, src)
	}
}

func TestShutdownDuringGreetDelay(t *testing.T) {
	f, clock := screenFixtureTimers(t, "screen-shutdown", &Screen{GreetDelay: time.Minute})
	c := f.dialFrom("127.0.0.31", "")
	if !clock.WaitArmed(time.Minute, 5*time.Second) {
		t.Fatal("no greeting delay began")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	c.expect("421 4.3.2")
}

// memPass is a PassCache in a map, with no expiry.
type memPass struct {
	mu sync.Mutex
	m  map[netip.Addr]bool
}

func (p *memPass) Passed(_ context.Context, a netip.Addr, _ time.Time) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[a], nil
}

func (p *memPass) Pass(_ context.Context, a netip.Addr, _ time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[a] = true
	return nil
}

// A client that passed is not delayed again while remembered; one listed
// below the threshold is not remembered.
func TestScreenPassCache(t *testing.T) {
	d := dnsblZone(t)
	sc := dnsblScreen(d, 300*time.Millisecond)
	pass := &memPass{m: map[netip.Addr]bool{}}
	sc.Passed = pass
	f := screenFixture(t, "screen-cache", sc, nil)
	for i, want := range []time.Duration{300 * time.Millisecond, 0} {
		start := time.Now()
		c := f.dialFrom("127.0.0.24", "")
		c.expect("220 ")
		dt := time.Since(start)
		if (want > 0 && dt < want) || (want == 0 && dt > 200*time.Millisecond) {
			t.Errorf("connection %d greeted after %v", i, dt)
		}
		c.do("QUIT", "221 ")
	}
	if n := screenCount("screen-cache", "cached"); n != 1 {
		t.Errorf("cached count = %v, want 1", n)
	}
	// Listed by the weak zone only (score 1 < 3): passes, not remembered.
	for range 2 {
		c := f.dialFrom("127.0.0.22", "")
		c.expect("220 ")
		c.do("QUIT", "221 ")
	}
	if pass.m[netip.MustParseAddr("127.0.0.22")] {
		t.Error("a listed client was remembered as passed")
	}
}
