package proxyproto

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// DefaultTimeout is Listener.Timeout when it is zero.
const DefaultTimeout = 5 * time.Second

// Listener accepts connections whose headers are read lazily (see the
// package documentation). Set its fields before the first Accept.
type Listener struct {
	// Listener is the listener wrapped.
	net.Listener
	// Trusted are the addresses of the load balancers: a connection
	// from one of them must start with a header. An empty list trusts
	// nobody: every connection is served as it is.
	Trusted []netip.Prefix
	// Timeout bounds the reading of a header; 0 means DefaultTimeout.
	Timeout time.Duration
}

// Accept waits for the next connection and returns it as a *Conn. It
// reads nothing from it.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	peer := addrPortOf(c.RemoteAddr())
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	trusted := slices.ContainsFunc(l.Trusted, func(p netip.Prefix) bool { return p.Contains(peer.Addr()) })
	return &Conn{Conn: c, trusted: trusted, timeout: timeout}, nil
}

// addrPortOf returns a TCP address as an AddrPort, unmapped.
func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// Conn is a connection accepted by a Listener. From a trusted proxy, its
// RemoteAddr and LocalAddr are the header's source and destination (the
// proxy's own when the header says LOCAL); from anywhere else they are
// the connection's own. Its methods are safe for concurrent use as
// net.Conn's are; the header is read once, by the first caller.
type Conn struct {
	net.Conn
	trusted bool
	timeout time.Duration

	once   sync.Once
	hdr    Header
	err    error
	r      *bufio.Reader // holds what was read past the header
	remote net.Addr
	local  net.Addr

	// checked is set once the first bytes of an untrusted connection
	// were seen not to be a header; only Read touches it.
	checked bool
}

// NetConn returns the connection from the proxy, as tls.Conn's NetConn
// does, for socket options.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Trusted reports whether the connection comes from a trusted proxy.
func (c *Conn) Trusted() bool { return c.trusted }

// ReadHeader reads the header of a connection from a trusted proxy, once
// (later calls return the first result), with the Listener's timeout;
// it returns nil at once for other connections. On error the connection
// is unusable: Read returns the error too, and the caller should close
// it.
func (c *Conn) ReadHeader() error {
	c.once.Do(c.readHeader)
	return c.err
}

// Header returns the header read; ok is false for a connection that had
// none (not from a trusted proxy) or whose header failed.
func (c *Conn) Header() (h Header, ok bool) {
	if c.ReadHeader() != nil || !c.trusted {
		return Header{}, false
	}
	return c.hdr, true
}

func (c *Conn) readHeader() {
	c.remote, c.local = c.Conn.RemoteAddr(), c.Conn.LocalAddr()
	if !c.trusted {
		return
	}
	c.r = bufio.NewReaderSize(c.Conn, 256)
	c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	h, err := ReadHeader(c.r)
	c.Conn.SetReadDeadline(time.Time{})
	if err != nil {
		c.err = fmt.Errorf("proxyproto: from %s: %w", c.remote, err)
		return
	}
	c.hdr = h
	if !h.Local {
		c.remote = net.TCPAddrFromAddrPort(h.Source)
		c.local = net.TCPAddrFromAddrPort(h.Destination)
	}
}

// RemoteAddr returns the client's address: the header's source for a
// connection from a trusted proxy, reading the header first if need be.
func (c *Conn) RemoteAddr() net.Addr {
	c.once.Do(c.readHeader)
	return c.remote
}

// LocalAddr returns the address the client connected to: the header's
// destination for a connection from a trusted proxy.
func (c *Conn) LocalAddr() net.Addr {
	c.once.Do(c.readHeader)
	return c.local
}

// Read reads the data after the header. On a connection from an
// untrusted address whose data starts with a header signature it fails
// wrapping ErrUntrustedHeader.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.ReadHeader(); err != nil {
		return 0, err
	}
	if !c.trusted && !c.checked {
		return c.readUntrusted(p)
	}
	if c.r != nil && c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}

// readUntrusted serves the first reads of an untrusted connection: it
// reads until the data is seen not to start with a header signature.
func (c *Conn) readUntrusted(p []byte) (int, error) {
	if c.r == nil {
		c.r = bufio.NewReaderSize(c.Conn, 256)
	}
	for n := 1; ; n++ {
		b, err := c.r.Peek(n)
		if len(b) < n {
			// Fewer bytes than asked: hand over what there is, unless it
			// may still become a signature.
			if err != nil && c.r.Buffered() == 0 {
				return 0, err
			}
			if err != nil {
				break
			}
		}
		maybe := false
		// The starts of the two headers: a client that starts with one of
		// them is not speaking SMTP.
		for _, sig := range [...]string{"PROXY ", v2Sig} {
			k := min(len(b), len(sig))
			if string(b[:k]) == sig[:k] {
				if k == len(sig) {
					return 0, fmt.Errorf("proxyproto: from %s: %w", c.Conn.RemoteAddr(), ErrUntrustedHeader)
				}
				maybe = true
			}
		}
		if !maybe {
			break
		}
	}
	c.checked = true
	return c.r.Read(p)
}

// CloseWrite shuts down the writing side of the connection when the
// wrapped connection can (a *net.TCPConn can), so that a server can
// close gracefully.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
