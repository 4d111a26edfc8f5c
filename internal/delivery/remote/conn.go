package remote

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"postern/internal/smtp"
)

// conn is one SMTP client session (smtp.Client, the client core shared
// with LMTP and the load generator) with what the pool and the
// deliverer keep of it. It is used by one goroutine at a time. Any error
// leaves it broken: a broken conn is closed, never reused (its protocol
// state is unknown).
type conn struct {
	*smtp.Client
	t    Timeouts
	key  poolKey
	msgs int // transactions started on this session
}

// newConn wraps an established network connection (a *tls.Conn after
// its handshake, for implicit TLS).
func newConn(nc net.Conn, t Timeouts) *conn {
	return &conn{Client: smtp.NewClient(nc), t: t}
}

// greet reads the server greeting (RFC 5321 §4.3.1, §4.5.3.2.1).
func (c *conn) greet() (reply, error) {
	return c.Read(c.t.Greeting)
}

// hello sends EHLO, falling back to HELO when EHLO is refused with 5xx
// (RFC 5321 §4.1.1.1, §3.2), and records the extensions offered.
func (c *conn) hello(verb, name string) (reply, error) {
	rep, err := c.Hello(c.t.Command, verb, name)
	if err == nil && verb == "EHLO" && rep.Code >= 500 {
		return c.hello("HELO", name)
	}
	return rep, err
}

// has reports whether the server offered extension kw.
func (c *conn) has(kw string) bool {
	_, ok := c.Ext(kw)
	return ok
}

// maxSize returns the SIZE limit the server announced (RFC 1870 §4), or 0
// for none.
func (c *conn) maxSize() int64 {
	p, _ := c.Ext("SIZE")
	n, err := strconv.ParseInt(p, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// startTLS sends STARTTLS and performs the handshake with cfg (RFC 3207;
// smtp.Client.StartTLS: a session whose server sent bytes after its 220
// is abandoned). A reply other than 220 is returned with a nil error
// and the session stays in plaintext.
func (c *conn) startTLS(ctx context.Context, cfg *tls.Config) (reply, error) {
	return c.StartTLS(ctx, c.t.Command, cfg)
}

// auth authenticates with PLAIN (RFC 4616) or, when only LOGIN is offered,
// LOGIN, following RFC 4954. It refuses to send credentials without TLS.
func (c *conn) auth(user, pass string) (reply, error) {
	if c.TLS() == nil {
		return reply{}, errors.New("AUTH refused: no TLS")
	}
	offered, _ := c.Ext("AUTH")
	mechs := strings.Fields(strings.ToUpper(offered))
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
		return c.Cmd(c.t.Command, "AUTH PLAIN "+ir)
	case has("LOGIN"):
		rep, err := c.Cmd(c.t.Command, "AUTH LOGIN")
		for _, s := range []string{user, pass} {
			if err != nil || rep.Code != 334 {
				return rep, err
			}
			rep, err = c.Cmd(c.t.Command, base64.StdEncoding.EncodeToString([]byte(s)))
		}
		return rep, err
	}
	return reply{}, fmt.Errorf("no usable AUTH mechanism offered (%q)", offered)
}

// reset sends RSET (RFC 5321 §4.1.1.5) and requires 250; another reply
// leaves the session broken.
func (c *conn) reset() error {
	rep, err := c.Cmd(c.t.Command, "RSET")
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		c.Close()
		return fmt.Errorf("RSET: %w", rep.Err())
	}
	return nil
}

// quit sends QUIT, waits briefly for the reply, and closes the connection.
func (c *conn) quit() { c.Quit(min(c.t.Command, 2*time.Second)) }

// txResult is the outcome of one mail transaction.
type txResult struct {
	mail  reply   // reply to MAIL FROM
	rcpts []reply // reply to each RCPT TO, in order; shorter when MAIL failed
	data  reply   // reply to DATA (354 expected); zero when not sent
	bdat  bool    // the content went as a BDAT chunk (RFC 3030): no DATA, no reply to it
	final reply   // reply after the final dot or the last chunk; zero when not reached
}

// step names the command whose reply r.final is, for errors.
func (r *txResult) step() string {
	if r.bdat {
		return "BDAT"
	}
	return "end of DATA"
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
		if err := c.Send(c.t.Command, append([]string{mail}, rcpts...)...); err != nil {
			return res, err
		}
		var err error
		if res.mail, err = c.Read(c.t.Command); err != nil {
			return res, err
		}
		for range rcpts {
			rep, err := c.Read(c.t.Command)
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
		if res.mail, err = c.Cmd(c.t.Command, mail); err != nil {
			return res, err
		}
		if res.mail.Code != 250 {
			return res, c.reset()
		}
		for _, r := range rcpts {
			rep, err := c.Cmd(c.t.Command, r)
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
	if err := c.content(&res, data); err != nil || !res.bdat && res.data.Code != 354 {
		return res, err
	}
	var err error
	// RFC 5321 §4.5.3.2.6: wait long for the reply to the final dot
	// (or the last chunk).
	res.final, err = c.Read(c.t.DataEnd)
	return res, err
}

// content sends the message: as one BDAT chunk when the server offers
// CHUNKING (RFC 3030 §2; no DATA round trip, no dot-stuffing), else
// with DATA, after whose refusal (res.data not 354) it resets the
// session. The caller reads the final reply.
func (c *conn) content(res *txResult, data *smtp.Message) error {
	if c.has("CHUNKING") {
		res.bdat = true
		return c.Bdat(c.t.DataBlock, data)
	}
	var err error
	if res.data, err = c.Cmd(c.t.DataStart, "DATA"); err != nil {
		return err
	}
	if res.data.Code != 354 {
		return c.reset()
	}
	return c.Data(c.t.DataBlock, data)
}
