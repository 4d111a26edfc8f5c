package test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"postern/internal/dns/dnstest"
	"postern/internal/proxyproto"
	"postern/internal/testkit"
)

// conn is a raw SMTP client from a chosen loopback address.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// dialFrom connects to addr from the loopback address src (each 127.0.0.x
// is a client of its own) and writes first, if not empty.
func dialFrom(t *testing.T, src, addr, first string) *conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if first != "" {
		if _, err := c.Write([]byte(first)); err != nil {
			t.Fatal(err)
		}
	}
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

// waitListening waits until something accepts on addr: /healthz answering
// does not prove that every listener is bound when several servers start
// side by side.
func waitListening(t *testing.T, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing listens on %s: %v", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// line reads one reply line ("" and the error when there is none).
func (c *conn) line() (string, error) {
	l, err := c.br.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// expect reads a reply line and fails unless it starts with prefix.
func (c *conn) expect(prefix string) string {
	c.t.Helper()
	l, err := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("want %q..., got %q (%v)", prefix, l, err)
	}
	return l
}

// expectClosed fails unless the server closes without another line.
func (c *conn) expectClosed() {
	c.t.Helper()
	if l, err := c.line(); err == nil {
		c.t.Fatalf("want the close, got %q", l)
	}
}

// A ban made with `postern ban add` on a running server refuses the
// address at accept: 421 on mx, a plain close on submissions; `ban
// list` and `ban show` tell why and until when; `ban delete` lifts it.
func TestBanOnRunningServer(t *testing.T) {
	integration(t)
	s := testConfig(t, t.TempDir(), "")
	s.start()
	if out, err := s.run("", "ban", "add", "127.0.0.77", "--for", "2h", "--reason", "e2e flood"); err != nil || !strings.Contains(out, "127.0.0.77/32 banned until") {
		t.Fatalf("ban add: %s %v", out, err)
	}
	c := dialFrom(t, "127.0.0.77", s.mx, "")
	c.expect("421 4.7.0 ")
	c.expectClosed()
	c = dialFrom(t, "127.0.0.77", s.subs, "")
	c.expectClosed() // no handshake, no byte
	dialFrom(t, "127.0.0.78", s.mx, "").expect("220 ")

	out, err := s.run("", "ban", "list")
	if err != nil || !strings.Contains(out, "127.0.0.77/32") || !strings.Contains(out, "e2e flood") || !strings.Contains(out, "yes") {
		t.Errorf("ban list:\n%s %v", out, err)
	}
	if out, err := s.run("", "ban", "show", "127.0.0.77"); err != nil || !strings.Contains(out, "Reason:  e2e flood") || !strings.Contains(out, "left)") {
		t.Errorf("ban show:\n%s %v", out, err)
	}
	if out, err := s.run("", "ban", "delete", "127.0.0.77"); err != nil {
		t.Fatalf("ban delete: %s %v", out, err)
	}
	dialFrom(t, "127.0.0.77", s.mx, "").expect("220 ")
	waitLogFor(t, s, "reason=banned", 5*time.Second)
}

// Two servers on one Redis are two nodes with one view: a ban made
// through one refuses at the other.
func TestBanSharedByNodes(t *testing.T) {
	integration(t)
	addr := testkit.RedisAddr(t)
	redis := fmt.Sprintf("\n[redis]\naddress = %q\nkey_prefix = \"postern-e2e:%d:\"\n", addr, os.Getpid())
	a := testConfig(t, t.TempDir(), redis)
	b := testConfig(t, t.TempDir(), redis)
	a.start()
	b.start()
	waitListening(t, a.mx, b.mx)
	if out, err := a.run("", "ban", "add", "127.0.0.0/29", "--for", "10m", "--reason", "shared"); err != nil {
		t.Fatalf("ban add on node a: %s %v", out, err)
	}
	t.Cleanup(func() { b.run("", "ban", "delete", "127.0.0.0/29") })
	dialFrom(t, "127.0.0.5", b.mx, "").expect("421 4.7.0 ")
	if out, _ := b.run("", "ban", "show", "127.0.0.6"); !strings.Contains(out, "Reason:  shared") {
		t.Errorf("node b: ban show:\n%s", out)
	}
	if out, err := b.run("", "ban", "delete", "127.0.0.0/29"); err != nil {
		t.Fatalf("ban delete on node b: %s %v", out, err)
	}
	// Node a honours the lift within its ban cache (a second).
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialFrom(t, "127.0.0.5", a.mx, "")
		l, _ := c.line()
		if strings.HasPrefix(l, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node a still refuses after the lift on node b: %q", l)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Behind a load balancer: the PROXY header's address is the one the
// gate, the DNSBL and the logs use; a header from elsewhere is refused;
// the greeting delay drops pregreeters.
func TestProxyProtocolAndScreen(t *testing.T) {
	integration(t)
	dir := t.TempDir()
	lb := freeAddr(t)
	s := testConfig(t, dir, fmt.Sprintf(`
[[listener]]
name = "mx-lb"
role = "mx"
address = %q
proxy_protocol = true
greet_delay = "300ms"
dnsbl = [{zone = "zen.example", weight = 2}, "weak.example"]
dnsbl_threshold = 2

[proxy]
trusted = ["127.0.0.1/32"]
`, lb))
	s.dns.Set("7.113.0.203.zen.example", dnstest.A("127.0.0.2"))
	s.dns.Set("8.113.0.203.weak.example", dnstest.A("127.0.0.2"))
	s.start()
	dst := netip.MustParseAddrPort("192.0.2.1:25")
	hdr := func(src string) string {
		return string(proxyproto.AppendV1(nil, netip.MustParseAddrPort(src), dst))
	}

	// Listed with weight 2: refused before the greeting.
	c := dialFrom(t, "127.0.0.1", lb, hdr("203.0.113.7:40000"))
	if l := c.expect("521 5.7.1 "); !strings.Contains(l, "[203.0.113.7]") {
		t.Errorf("DNSBL refusal %q does not name the header's client", l)
	}
	c.expectClosed()

	// Listed with weight 1 only, and patient: greeted after the delay.
	start := time.Now()
	c = dialFrom(t, "127.0.0.1", lb, hdr("203.0.113.8:40000"))
	c.expect("220 ")
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("greeted after %v, before greet_delay", d)
	}
	c.c.Write([]byte("QUIT\r\n"))
	c.expect("221 ")

	// Talks before the greeting: dropped.
	c = dialFrom(t, "127.0.0.1", lb, hdr("198.51.100.9:40000")+"EHLO bot.example\r\n")
	c.expect("521 5.5.1 ")
	c.expectClosed()

	// The gate sees the header's address too.
	if out, err := s.run("", "ban", "add", "198.51.100.0/24", "--reason", "behind the balancer"); err != nil {
		t.Fatalf("ban add: %s %v", out, err)
	}
	c = dialFrom(t, "127.0.0.1", lb, hdr("198.51.100.10:40000"))
	c.expect("421 4.7.0 ")

	// A header from an address not in [proxy] trusted is not honoured.
	c = dialFrom(t, "127.0.0.2", lb, "")
	time.Sleep(400 * time.Millisecond) // past the greeting delay
	c.expect("220 ")
	c.c.Write([]byte(hdr("203.0.113.99:1")))
	c.expectClosed()

	// A trusted balancer that sends no header: closed without a byte.
	c = dialFrom(t, "127.0.0.1", lb, "EHLO x\r\n")
	c.expectClosed()

	// The log shows clients by the header's address.
	for _, want := range []string{"remote=203.0.113.7:40000", "remote=198.51.100.10:40000", "session refused: proxy header"} {
		waitLogFor(t, s, want, 5*time.Second)
	}

	// The other listeners are not behind the balancer: a TLS client on
	// submissions is served as usual.
	tc, err := tls.Dial("tcp", s.subs, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if l, _ := bufio.NewReader(tc).ReadString('\n'); !strings.HasPrefix(l, "220 ") {
		t.Errorf("submissions greeting %q", l)
	}
}
