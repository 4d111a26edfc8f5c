package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"postern/internal/smtp"
)

// errInjected is wrapped when a server sent bytes after its reply to
// STARTTLS and before the TLS handshake (response injection).
var errInjected = errors.New("bytes after the STARTTLS reply (possible response injection)")

// handshakeError is a failed TLS handshake after STARTTLS.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// conn is one SMTP client session. It is used by one goroutine at a time.
// Any error leaves it broken: a broken conn is closed, never reused (its
// protocol state is unknown).
type conn struct {
	raw      net.Conn // the TCP connection, under any TLS
	nc       net.Conn
	br       *bufio.Reader
	r        *smtp.Reader
	bw       *bufio.Writer
	t        Timeouts
	ext      map[string]string // EHLO keywords (upper case) -> parameters
	tls      *tls.ConnectionState
	key      poolKey
	msgs     int // transactions started on this session
	broken   bool
	lastRepl reply         // the last reply read, for logs
	wto      time.Duration // write timeout for the next writes
	canceled atomic.Bool   // the context of the current use is done
}

// newConn wraps an established network connection.
func newConn(nc net.Conn, t Timeouts) *conn {
	c := &conn{raw: nc, nc: nc, t: t}
	c.br = bufio.NewReaderSize(nc, 4096)
	c.r = smtp.NewReader(c.br)
	c.bw = bufio.NewWriterSize(c, 4096)
	return c
}

// Write writes p to the network with the current write timeout, so that
// each block of a long DATA gets its own timeout (RFC 5321 §4.5.3.2.5).
func (c *conn) Write(p []byte) (int, error) {
	if c.canceled.Load() {
		return 0, context.Canceled
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.wto))
	return c.nc.Write(p)
}

// deadline sets the read deadline and the write timeout to d from now.
func (c *conn) deadline(d time.Duration) {
	c.wto = d
	if !c.canceled.Load() {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
}

// watch makes ctx's cancellation interrupt any blocked I/O on c; call the
// returned function when done.
func (c *conn) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() {
		c.canceled.Store(true)
		c.raw.SetDeadline(time.Unix(1, 0))
	})
}

// read reads one reply within timeout d.
func (c *conn) read(d time.Duration) (reply, error) {
	c.deadline(d)
	rep, err := smtp.ReadReply(c.r)
	if err != nil {
		c.broken = true
		return rep, err
	}
	c.lastRepl = rep
	if rep.Code == 421 {
		// RFC 5321 §3.8: the server is closing the session.
		c.broken = true
	}
	return rep, nil
}

// cmd sends one command line and reads its reply within timeout d.
func (c *conn) cmd(d time.Duration, line string) (reply, error) {
	c.deadline(d)
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
	if err := c.bw.Flush(); err != nil {
		c.broken = true
		return reply{}, err
	}
	return c.read(d)
}

// greet reads the server greeting (RFC 5321 §4.3.1, §4.5.3.2.1).
func (c *conn) greet() (reply, error) {
	return c.read(c.t.Greeting)
}

// hello sends EHLO, falling back to HELO when EHLO is refused with 5xx
// (RFC 5321 §4.1.1.1, §3.2), and records the extensions offered.
func (c *conn) hello(verb, name string) (reply, error) {
	rep, err := c.cmd(c.t.Command, verb+" "+name)
	if err != nil {
		return rep, err
	}
	c.ext = map[string]string{}
	if rep.Code == 250 {
		for _, l := range rep.Lines[1:] {
			kw, param, _ := strings.Cut(l, " ")
			c.ext[strings.ToUpper(kw)] = param
		}
		return rep, nil
	}
	if verb == "EHLO" && rep.Code >= 500 {
		return c.hello("HELO", name)
	}
	return rep, nil
}

// has reports whether the server offered extension kw.
func (c *conn) has(kw string) bool {
	_, ok := c.ext[kw]
	return ok
}

// maxSize returns the SIZE limit the server announced (RFC 1870 §4), or 0
// for none.
func (c *conn) maxSize() int64 {
	n, err := strconv.ParseInt(c.ext["SIZE"], 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// startTLS sends STARTTLS and performs the handshake with cfg (RFC 3207).
// Bytes the server sent after its 220 and before the handshake are never
// read as replies: the session is abandoned (RFC 3207 §4.2 applied to the
// client; the mirror of the server's rule). A reply other than 220 is
// returned with a nil error and the session stays in plaintext.
func (c *conn) startTLS(ctx context.Context, cfg *tls.Config) (reply, error) {
	rep, err := c.cmd(c.t.Command, "STARTTLS")
	if err != nil || rep.Code != 220 {
		return rep, err
	}
	if c.br.Buffered() > 0 {
		c.broken = true
		return rep, errInjected
	}
	tc := tls.Client(c.nc, cfg)
	c.nc.SetDeadline(time.Now().Add(c.t.Command))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.broken = true
		return rep, &handshakeError{err}
	}
	c.setTLS(tc)
	return rep, nil
}

// setTLS switches the session to the TLS connection tc, dropping all
// plaintext state: buffers and the extensions offered (RFC 3207 §4.2).
func (c *conn) setTLS(tc *tls.Conn) {
	cs := tc.ConnectionState()
	c.nc = tc
	c.tls = &cs
	c.br.Reset(tc)
	c.bw.Reset(c)
	c.r = smtp.NewReader(c.br)
	c.ext = nil
}

// auth authenticates with PLAIN (RFC 4616) or, when only LOGIN is offered,
// LOGIN, following RFC 4954. It refuses to send credentials without TLS.
func (c *conn) auth(user, pass string) (reply, error) {
	if c.tls == nil {
		return reply{}, errors.New("AUTH refused: no TLS")
	}
	mechs := strings.Fields(strings.ToUpper(c.ext["AUTH"]))
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	switch {
	case has("PLAIN"):
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
		return c.cmd(c.t.Command, "AUTH PLAIN "+ir)
	case has("LOGIN"):
		rep, err := c.cmd(c.t.Command, "AUTH LOGIN")
		for _, s := range []string{user, pass} {
			if err != nil || rep.Code != 334 {
				return rep, err
			}
			rep, err = c.cmd(c.t.Command, base64.StdEncoding.EncodeToString([]byte(s)))
		}
		return rep, err
	}
	return reply{}, fmt.Errorf("no usable AUTH mechanism offered (%q)", c.ext["AUTH"])
}

// reset sends RSET (RFC 5321 §4.1.1.5) and requires 250.
func (c *conn) reset() error {
	rep, err := c.cmd(c.t.Command, "RSET")
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		c.broken = true
		return fmt.Errorf("RSET: %w", rep.Err())
	}
	return nil
}

// quit sends QUIT, waits briefly for the reply, and closes the connection.
func (c *conn) quit() {
	if !c.broken {
		d := min(c.t.Command, 2*time.Second)
		c.cmd(d, "QUIT")
	}
	c.nc.Close()
}

// close closes the connection without QUIT.
func (c *conn) close() {
	c.broken = true
	c.nc.Close()
}

// txResult is the outcome of one mail transaction.
type txResult struct {
	mail  reply   // reply to MAIL FROM
	rcpts []reply // reply to each RCPT TO, in order; shorter when MAIL failed
	data  reply   // reply to DATA (354 expected); zero when not sent
	final reply   // reply after the final dot; zero when not reached
}

// transaction runs MAIL, RCPT for each of rcpts and, when at least one
// RCPT was accepted, DATA with data (RFC 5321 §3.3). With PIPELINING
// (RFC 2920) MAIL and all RCPTs go out in one write and their replies are
// read in order. When no recipient is accepted (or MAIL is refused) it
// sends RSET so that the session stays usable. An error means the session
// state is unknown (c is broken); the partial txResult says how far it
// got.
func (c *conn) transaction(mail string, rcpts []string, data *smtp.Message) (txResult, error) {
	var res txResult
	c.msgs++
	if c.has("PIPELINING") {
		c.deadline(c.t.Command)
		c.bw.WriteString(mail + "\r\n")
		for _, r := range rcpts {
			c.bw.WriteString(r + "\r\n")
		}
		if err := c.bw.Flush(); err != nil {
			c.broken = true
			return res, err
		}
		var err error
		if res.mail, err = c.read(c.t.Command); err != nil {
			return res, err
		}
		for range rcpts {
			rep, err := c.read(c.t.Command)
			if err != nil {
				return res, err
			}
			res.rcpts = append(res.rcpts, rep)
		}
		if res.mail.Code != 250 {
			// RFC 2920 §3.1: the RCPTs after a refused MAIL are refused
			// too; their replies were read above to stay in step.
			res.rcpts = nil
			return res, c.reset()
		}
	} else {
		var err error
		if res.mail, err = c.cmd(c.t.Command, mail); err != nil {
			return res, err
		}
		if res.mail.Code != 250 {
			return res, c.reset()
		}
		for _, r := range rcpts {
			rep, err := c.cmd(c.t.Command, r)
			if err != nil {
				return res, err
			}
			res.rcpts = append(res.rcpts, rep)
		}
	}
	accepted := false
	for _, r := range res.rcpts {
		accepted = accepted || r.Code/100 == 2
	}
	if !accepted {
		return res, c.reset()
	}
	var err error
	if res.data, err = c.cmd(c.t.DataStart, "DATA"); err != nil {
		return res, err
	}
	if res.data.Code != 354 {
		return res, c.reset()
	}
	c.deadline(c.t.DataBlock)
	if err := smtp.WriteMessage(c.bw, data); err != nil {
		c.broken = true
		return res, err
	}
	c.deadline(c.t.DataEnd)
	c.bw.WriteString(".\r\n")
	if err := c.bw.Flush(); err != nil {
		c.broken = true
		return res, err
	}
	// RFC 5321 §4.5.3.2.6: wait long for the reply to the final dot.
	res.final, err = c.read(c.t.DataEnd)
	return res, err
}
