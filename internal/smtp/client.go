package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"
)

// ErrInjected is returned by StartTLS when the server sent bytes after
// its 220 reply and before the TLS handshake: they could be replies
// injected by a machine in the middle (RFC 3207 §4.2, and the mirror of
// the server's rule), so the session is abandoned.
var ErrInjected = errors.New("smtp: bytes after the STARTTLS reply (possible response injection)")

// HandshakeError is a failed TLS handshake after STARTTLS.
type HandshakeError struct{ Err error }

// Error returns "TLS handshake: " and the cause.
func (e *HandshakeError) Error() string { return "TLS handshake: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *HandshakeError) Unwrap() error { return e.Err }

// Client is the client side of one SMTP (RFC 5321) or LMTP (RFC 2033)
// session on a network connection. It is used by one goroutine at a
// time. Every exchange has a timeout: a command and its reply, and each
// block of message content, get their own (RFC 5321 §4.5.3.2). Any
// error, and a 421 reply (RFC 5321 §3.8), leaves the Client broken: its
// protocol state is unknown, and it is to be closed, never reused.
type Client struct {
	raw      net.Conn // the connection under any TLS
	nc       net.Conn // what is read and written: raw, or TLS over it
	br       *bufio.Reader
	r        *Reader
	bw       *bufio.Writer
	wto      time.Duration // the write timeout of the next writes
	canceled atomic.Bool   // the context being watched is done
	ext      map[string]string
	tls      *tls.ConnectionState
	last     Reply
	broken   bool
	room     int64 // octets left in the BDAT chunk being sent; -1 outside one
}

// NewClient returns a Client on the established connection nc, which
// may already be a *tls.Conn (implicit TLS). It reads nothing: the
// caller reads the greeting with Read.
func NewClient(nc net.Conn) *Client {
	c := &Client{raw: nc, nc: nc, room: -1}
	if tc, ok := nc.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		c.tls = &cs
	}
	c.br = bufio.NewReaderSize(nc, 4096)
	c.r = NewReader(c.br)
	c.bw = bufio.NewWriterSize(clientWriter{c}, 4096)
	return c
}

// clientWriter writes to the connection with the current write
// timeout, so that each block of a long DATA gets its own.
type clientWriter struct{ c *Client }

func (w clientWriter) Write(p []byte) (int, error) {
	c := w.c
	if c.canceled.Load() {
		return 0, context.Canceled
	}
	p, over := c.limitChunk(p) // never past the end of a BDAT chunk
	c.nc.SetWriteDeadline(time.Now().Add(c.wto))
	n, err := c.nc.Write(p)
	if c.room >= 0 {
		c.room -= int64(n)
	}
	if err == nil {
		err = over
	}
	return n, err
}

// deadline sets the read deadline and the write timeout to d from now.
func (c *Client) deadline(d time.Duration) {
	c.wto = d
	if !c.canceled.Load() {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
}

// Watch makes ctx's end interrupt any blocked I/O of the Client (which
// is then broken); call the returned function when the work under ctx
// is done.
func (c *Client) Watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		c.canceled.Store(true)
		c.raw.SetDeadline(time.Unix(1, 0))
	})
}

// Canceled reports whether a context the Client watched ended.
func (c *Client) Canceled() bool { return c.canceled.Load() }

// Read reads one reply (ReadReply) within d.
func (c *Client) Read(d time.Duration) (Reply, error) {
	c.deadline(d)
	rep, err := ReadReply(c.r)
	if err != nil {
		c.broken = true
		return rep, err
	}
	c.last = rep
	if rep.Code == 421 {
		// RFC 5321 §3.8: the server is closing the session.
		c.broken = true
	}
	return rep, nil
}

// Send writes the command lines (without their CRLF) at once, within d,
// and reads nothing: with PIPELINING (RFC 2920) the replies are read
// afterwards, in order, with Read.
func (c *Client) Send(d time.Duration, lines ...string) error {
	c.deadline(d)
	for _, l := range lines {
		c.bw.WriteString(l)
		c.bw.WriteString("\r\n")
	}
	if err := c.bw.Flush(); err != nil {
		c.broken = true
		return err
	}
	return nil
}

// Cmd sends one command line (without its CRLF) and reads its reply,
// within d.
func (c *Client) Cmd(d time.Duration, line string) (Reply, error) {
	if err := c.Send(d, line); err != nil {
		return Reply{}, err
	}
	return c.Read(d)
}

// Hello sends verb ("EHLO", or "LHLO" for LMTP) with name and, on a 250
// reply, records the extensions it lists (Ext). Another reply is
// returned with a nil error; the extensions are then none.
func (c *Client) Hello(d time.Duration, verb, name string) (Reply, error) {
	rep, err := c.Cmd(d, verb+" "+name)
	if err != nil {
		return rep, err
	}
	c.ext = map[string]string{}
	if rep.Code == 250 {
		for _, l := range rep.Lines[1:] {
			kw, param, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(kw)] = param
		}
	}
	return rep, nil
}

// Ext reports whether the server offered the extension kw (upper case)
// in its last reply to Hello, and its parameters.
func (c *Client) Ext(kw string) (param string, ok bool) {
	param, ok = c.ext[kw]
	return param, ok
}

// StartTLS sends STARTTLS and performs the handshake with cfg within d
// (RFC 3207). A reply other than 220 is returned with a nil error, and
// the session stays in plaintext. Bytes the server sent after its 220
// and before the handshake are never read as replies: StartTLS fails
// with ErrInjected. A failed handshake is a *HandshakeError. After the
// handshake, everything learnt in plaintext is forgotten (RFC 3207
// §4.2): the buffers and the extensions; say Hello again.
func (c *Client) StartTLS(ctx context.Context, d time.Duration, cfg *tls.Config) (Reply, error) {
	rep, err := c.Cmd(d, "STARTTLS")
	if err != nil || rep.Code != 220 {
		return rep, err
	}
	if c.br.Buffered() > 0 {
		c.broken = true
		return rep, ErrInjected
	}
	tc := tls.Client(c.nc, cfg)
	c.nc.SetDeadline(time.Now().Add(d))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.broken = true
		return rep, &HandshakeError{err}
	}
	cs := tc.ConnectionState()
	c.nc, c.tls = tc, &cs
	c.br.Reset(tc)
	c.bw.Reset(clientWriter{c})
	c.r = NewReader(c.br)
	c.ext = nil
	return rep, nil
}

// TLS returns the state of the session's TLS, nil in plaintext.
func (c *Client) TLS() *tls.ConnectionState { return c.tls }

// Data writes m as the content of DATA (after the 354 reply) through a
// DataWriter, then the final ".", each block within d, and reads
// nothing: the caller reads the reply, or with LMTP one reply per
// accepted recipient. A body that cannot be read leaves the Client
// broken without the final dot: the server must not take the part it
// got.
func (c *Client) Data(d time.Duration, m *Message) error {
	c.deadline(d)
	if err := WriteMessage(c.bw, m); err != nil {
		c.broken = true
		return err
	}
	c.bw.WriteString(".\r\n")
	if err := c.bw.Flush(); err != nil {
		c.broken = true
		return err
	}
	return nil
}

// Last returns the last reply read.
func (c *Client) Last() Reply { return c.last }

// Broken reports whether the session's state is unknown (an error, a
// 421): it is to be closed, not reused.
func (c *Client) Broken() bool { return c.broken }

// Quit sends QUIT unless the session is broken, waits at most d for the
// reply, and closes the connection.
func (c *Client) Quit(d time.Duration) {
	if !c.broken {
		c.Cmd(d, "QUIT")
	}
	c.nc.Close()
}

// Close closes the connection without QUIT; the Client is broken.
func (c *Client) Close() error {
	c.broken = true
	return c.nc.Close()
}
