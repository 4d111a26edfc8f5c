package proxyproto

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	src4 = netip.MustParseAddrPort("192.0.2.10:56324")
	dst4 = netip.MustParseAddrPort("198.51.100.1:25")
	src6 = netip.MustParseAddrPort("[2001:db8::10]:40000")
	dst6 = netip.MustParseAddrPort("[2001:db8::1]:587")
)

func parse(t *testing.T, b []byte) (Header, string, error) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	h, err := ReadHeader(r)
	rest, _ := io.ReadAll(r)
	return h, string(rest), err
}

func TestReadHeaderValid(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want Header
	}{
		{"v1 tcp4", []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\nEHLO x\r\n"), Header{Version: 1, Source: src4, Destination: dst4}},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::10 2001:db8::1 40000 587\r\nEHLO x\r\n"), Header{Version: 1, Source: src6, Destination: dst6}},
		{"v1 unknown", []byte("PROXY UNKNOWN ffff::1 whatever\r\nEHLO x\r\n"), Header{Version: 1, Local: true}},
		{"v1 unknown bare", []byte("PROXY UNKNOWN\r\nEHLO x\r\n"), Header{Version: 1, Local: true}},
		{"v1 port 0 and 65535", []byte("PROXY TCP4 192.0.2.10 198.51.100.1 0 65535\r\nEHLO x\r\n"),
			Header{Version: 1, Source: netip.AddrPortFrom(src4.Addr(), 0), Destination: netip.AddrPortFrom(dst4.Addr(), 65535)}},
		{"v2 inet", append(AppendV2(nil, src4, dst4, false), "EHLO x\r\n"...), Header{Version: 2, Source: src4, Destination: dst4}},
		{"v2 inet6", append(AppendV2(nil, src6, dst6, false), "EHLO x\r\n"...), Header{Version: 2, Source: src6, Destination: dst6}},
		{"v2 local", append(AppendV2(nil, src4, dst4, true), "EHLO x\r\n"...), Header{Version: 2, Local: true}},
		{"v2 unspec", append(append([]byte(v2Sig), 0x21, 0x00, 0, 0), "EHLO x\r\n"...), Header{Version: 2, Local: true}},
		{"v2 with TLVs", append(v2WithTLV(), "EHLO x\r\n"...), Header{Version: 2, Source: src4, Destination: dst4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, rest, err := parse(t, c.in)
			if err != nil {
				t.Fatal(err)
			}
			if h != c.want {
				t.Errorf("header = %+v, want %+v", h, c.want)
			}
			if rest != "EHLO x\r\n" {
				t.Errorf("left after the header: %q", rest)
			}
		})
	}
}

// v2WithTLV is a version 2 IPv4 header followed by an ALPN and a NOOP TLV.
func v2WithTLV() []byte {
	b := AppendV2(nil, src4, dst4, false)
	tlv := []byte{0x01, 0, 4, 's', 'm', 't', 'p', 0x04, 0, 2, 0, 0}
	b = append(b, tlv...)
	b[15] = byte(12 + len(tlv))
	return b
}

func TestReadHeaderInvalid(t *testing.T) {
	long := "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25" + strings.Repeat(" ", 80) + "\r\n"
	v2 := func(mod func(b []byte) []byte) []byte { return mod(AppendV2(nil, src4, dst4, false)) }
	for name, in := range map[string][]byte{
		"smtp":               []byte("EHLO x\r\n"),
		"v1 lower case":      []byte("proxy TCP4 192.0.2.10 198.51.100.1 56324 25\r\n"),
		"v1 bare LF":         []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\n"),
		"v1 too long":        []byte(long),
		"v1 no end":          []byte("PROXY TCP4 192.0.2.10 198.51.100.1 56324 25"),
		"v1 family mismatch": []byte("PROXY TCP4 2001:db8::10 198.51.100.1 56324 25\r\n"),
		"v1 tcp6 with v4":    []byte("PROXY TCP6 192.0.2.10 198.51.100.1 56324 25\r\n"),
		"v1 port too big":    []byte("PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n"),
		"v1 port sign":       []byte("PROXY TCP4 192.0.2.10 198.51.100.1 +1 25\r\n"),
		"v1 leading zero":    []byte("PROXY TCP4 192.0.2.10 198.51.100.1 025 25\r\n"),
		"v1 two spaces":      []byte("PROXY TCP4  192.0.2.10 198.51.100.1 1 25\r\n"),
		"v1 zone":            []byte("PROXY TCP6 fe80::1%eth0 2001:db8::1 1 25\r\n"),
		"v1 udp":             []byte("PROXY UDP4 192.0.2.10 198.51.100.1 1 25\r\n"),
		"v1 missing port":    []byte("PROXY TCP4 192.0.2.10 198.51.100.1 1\r\n"),
		"v2 truncated":       AppendV2(nil, src4, dst4, false)[:20],
		"v2 bad sig":         v2(func(b []byte) []byte { b[11] = 'X'; return b }),
		"v2 version 1":       v2(func(b []byte) []byte { b[12] = 0x11; return b }),
		"v2 command 2":       v2(func(b []byte) []byte { b[12] = 0x22; return b }),
		"v2 unix":            v2(func(b []byte) []byte { b[13] = 0x31; return b }),
		"v2 dgram":           v2(func(b []byte) []byte { b[13] = 0x12; return b }),
		"v2 short length":    v2(func(b []byte) []byte { b[15] = 8; return b }),
		"v2 huge length":     v2(func(b []byte) []byte { b[14], b[15] = 0xff, 0xff; return b }),
	} {
		t.Run(name, func(t *testing.T) {
			if h, _, err := parse(t, in); !errors.Is(err, ErrBadHeader) {
				t.Errorf("ReadHeader = %+v, %v; want ErrBadHeader", h, err)
			}
		})
	}
}

func TestAppendV1RoundTrip(t *testing.T) {
	for _, c := range [][2]netip.AddrPort{{src4, dst4}, {src6, dst6}} {
		h, _, err := parse(t, AppendV1(nil, c[0], c[1]))
		if err != nil || h.Source != c[0] || h.Destination != c[1] {
			t.Errorf("AppendV1(%v, %v) parses as %+v, %v", c[0], c[1], h, err)
		}
	}
}

// listen returns a Listener on 127.0.0.1 trusting trusted.
func listen(t *testing.T, trusted ...string) *Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pl := &Listener{Listener: l, Timeout: 300 * time.Millisecond}
	for _, p := range trusted {
		pl.Trusted = append(pl.Trusted, netip.MustParsePrefix(p))
	}
	t.Cleanup(func() { l.Close() })
	return pl
}

// dialFrom connects to l from the loopback address src and writes data.
func dialFrom(t *testing.T, l net.Listener, src string, data []byte) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if len(data) > 0 {
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func accept(t *testing.T, l net.Listener) *Conn {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

func readN(t *testing.T, c net.Conn, n int) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, n)
	_, err := io.ReadFull(c, b)
	return string(b), err
}

func TestTrustedProxyV1(t *testing.T) {
	l := listen(t, "127.0.0.2/32")
	dialFrom(t, l, "127.0.0.2", append(AppendV1(nil, src4, dst4), "EHLO x\r\n"...))
	c := accept(t, l)
	if got := c.RemoteAddr().String(); got != src4.String() {
		t.Errorf("RemoteAddr = %s, want the header's %s", got, src4)
	}
	if got := c.LocalAddr().String(); got != dst4.String() {
		t.Errorf("LocalAddr = %s, want %s", got, dst4)
	}
	if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok {
		t.Errorf("RemoteAddr is a %T, want *net.TCPAddr", c.RemoteAddr())
	}
	if s, err := readN(t, c, 8); err != nil || s != "EHLO x\r\n" {
		t.Errorf("Read = %q, %v", s, err)
	}
	if h, ok := c.Header(); !ok || h.Version != 1 {
		t.Errorf("Header = %+v, %v", h, ok)
	}
}

func TestTrustedProxyV2Local(t *testing.T) {
	l := listen(t, "127.0.0.0/8")
	dialFrom(t, l, "127.0.0.3", append(AppendV2(nil, src6, dst6, true), "QUIT\r\n"...))
	c := accept(t, l)
	if s, err := readN(t, c, 6); err != nil || s != "QUIT\r\n" {
		t.Errorf("Read = %q, %v", s, err)
	}
	// LOCAL: the real peer stands.
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.3" {
		t.Errorf("RemoteAddr = %s, want the proxy's own 127.0.0.3", got)
	}
}

func TestTrustedWithoutHeaderIsCut(t *testing.T) {
	l := listen(t, "127.0.0.2/32")
	dialFrom(t, l, "127.0.0.2", []byte("EHLO x\r\n"))
	c := accept(t, l)
	if err := c.ReadHeader(); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("ReadHeader = %v, want ErrBadHeader", err)
	}
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrBadHeader) {
		t.Errorf("Read after a bad header = %v", err)
	}
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("RemoteAddr = %s, want the real peer", got)
	}
}

func TestTrustedSilentTimesOut(t *testing.T) {
	l := listen(t, "127.0.0.2/32")
	dialFrom(t, l, "127.0.0.2", nil)
	c := accept(t, l)
	start := time.Now()
	err := c.ReadHeader()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadHeader = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ReadHeader took %v with a 300ms timeout", d)
	}
}

func TestUntrustedHeaderIsRefused(t *testing.T) {
	for name, hdr := range map[string][]byte{
		"v1": AppendV1(nil, src4, dst4),
		"v2": AppendV2(nil, src4, dst4, false),
	} {
		t.Run(name, func(t *testing.T) {
			l := listen(t, "127.0.0.2/32")
			dialFrom(t, l, "127.0.0.5", append(hdr, "EHLO x\r\n"...))
			c := accept(t, l)
			if err := c.ReadHeader(); err != nil {
				t.Fatalf("ReadHeader of an untrusted conn = %v, want nil", err)
			}
			if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.5" {
				t.Errorf("RemoteAddr = %s: the header was honoured", got)
			}
			if _, err := readN(t, c, 8); !errors.Is(err, ErrUntrustedHeader) {
				t.Errorf("Read = %v, want ErrUntrustedHeader", err)
			}
		})
	}
}

func TestUntrustedPlainClient(t *testing.T) {
	l := listen(t) // trusts nobody
	for _, data := range []string{"EHLO x\r\n", "PROXZ\r\n", "\r\n\r\nQUIX\n\r\n"} {
		dialFrom(t, l, "127.0.0.6", []byte(data))
		c := accept(t, l)
		if s, err := readN(t, c, len(data)); err != nil || s != data {
			t.Errorf("Read = %q, %v; want %q", s, err, data)
		}
	}
}

// Accept never reads: a silent client from a trusted proxy does not hold
// up the next connection.
func TestAcceptDoesNotWaitForHeaders(t *testing.T) {
	l := listen(t, "127.0.0.0/8")
	l.Timeout = time.Hour
	dialFrom(t, l, "127.0.0.7", nil) // never sends its header
	first := accept(t, l)
	dialFrom(t, l, "127.0.0.8", append(AppendV1(nil, src4, dst4), "x"...))
	done := make(chan *Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		done <- c.(*Conn)
	}()
	select {
	case c := <-done:
		defer c.Close()
		if c.RemoteAddr().String() != src4.String() {
			t.Errorf("second conn RemoteAddr = %s", c.RemoteAddr())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Accept blocked behind a silent client")
	}
	first.Close()
}

// TestUntrustedGreetingNotHeld: on a connection from an address that is
// not a trusted proxy the server speaks first, as SMTP's does, and its
// greeting goes out at once: the check for a header waits for the
// client's first bytes in Read, never in Write.
func TestUntrustedGreetingNotHeld(t *testing.T) {
	l := listen(t, "127.0.0.2/32")
	l.Timeout = time.Hour // a greeting held until the header timeout never comes
	c := dialFrom(t, l, "127.0.0.5", nil)
	sc := accept(t, l)
	go sc.Write([]byte("220 mx.example ESMTP\r\n"))
	if s, err := readN(t, c, 22); err != nil || s != "220 mx.example ESMTP\r\n" {
		t.Fatalf("greeting to a client that has sent nothing: %q, %v", s, err)
	}
	// The client's header after the greeting is still refused.
	c.Write(AppendV1(nil, src4, dst4))
	if _, err := readN(t, sc, 8); !errors.Is(err, ErrUntrustedHeader) {
		t.Errorf("Read = %v, want ErrUntrustedHeader", err)
	}
}

// TestTrustedSplitHeader: a header from a trusted proxy that arrives in
// two segments is read whole, within the timeout (the specification
// recommends tolerance to partial headers).
func TestTrustedSplitHeader(t *testing.T) {
	for name, hdr := range map[string][]byte{
		"v1": AppendV1(nil, src4, dst4),
		"v2": AppendV2(nil, src6, dst6, false),
	} {
		t.Run(name, func(t *testing.T) {
			l := listen(t, "127.0.0.2/32")
			l.Timeout = 5 * time.Second
			c := dialFrom(t, l, "127.0.0.2", hdr[:10])
			sc := accept(t, l)
			done := make(chan error, 1)
			go func() { done <- sc.ReadHeader() }()
			select {
			case err := <-done:
				t.Fatalf("ReadHeader returned %v on half a header", err)
			case <-time.After(50 * time.Millisecond):
			}
			c.Write(append(hdr[10:], "EHLO x\r\n"...))
			if err := <-done; err != nil {
				t.Fatalf("header in two segments: %v", err)
			}
			if h, ok := sc.Header(); !ok || h.Source.Addr().Unmap() != netip.MustParseAddrPort(sc.RemoteAddr().String()).Addr().Unmap() {
				t.Errorf("Header = %+v, %v; RemoteAddr %s", h, ok, sc.RemoteAddr())
			}
			if s, err := readN(t, sc, 8); err != nil || s != "EHLO x\r\n" {
				t.Errorf("Read = %q, %v", s, err)
			}
		})
	}
}
