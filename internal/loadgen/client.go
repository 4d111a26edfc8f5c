package loadgen

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"time"

	"postern/internal/smtp"
)

// conn is one client SMTP session on the client core that delivery
// shares (smtp.Client: its reply reader and DATA writer), with a
// timeout applied to every exchange.
type conn struct {
	*smtp.Client
	timeout time.Duration
}

// cmd sends one command line (none when line is "") and reads its reply,
// which must have code want.
func (k *conn) cmd(want int, name, line string) (smtp.Reply, error) {
	var rep smtp.Reply
	var err error
	if line == "" {
		rep, err = k.Read(k.timeout)
	} else {
		rep, err = k.Cmd(k.timeout, line)
	}
	if err != nil {
		return rep, fmt.Errorf("%s: %w", name, err)
	}
	if rep.Code != want {
		return rep, fmt.Errorf("%s: %s", name, rep)
	}
	return rep, nil
}

// ehlo sends EHLO; the session then knows the extensions.
func (k *conn) ehlo(hello string) error {
	rep, err := k.Hello(k.timeout, "EHLO", hello)
	if err == nil && rep.Code != 250 {
		err = fmt.Errorf("EHLO: %s", rep)
	}
	return err
}

// dial opens a session ready for MAIL: connect, TLS (at once or after
// STARTTLS), greeting, EHLO and AUTH PLAIN when a user is set.
func dial(o *Options) (*conn, error) {
	d := net.Dialer{Timeout: o.Timeout}
	nc, err := d.Dial("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if o.Mode == ModeTLS {
		tc := tls.Client(nc, o.TLSConfig)
		tc.SetDeadline(time.Now().Add(o.Timeout))
		if err := tc.Handshake(); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		nc = tc
	}
	k := &conn{Client: smtp.NewClient(nc), timeout: o.Timeout}
	fail := func(err error) (*conn, error) {
		k.Close()
		return nil, err
	}
	if _, err := k.cmd(220, "greeting", ""); err != nil {
		return fail(err)
	}
	if err := k.ehlo(o.Hello); err != nil {
		return fail(err)
	}
	if o.Mode == ModeSTARTTLS {
		rep, err := k.StartTLS(context.Background(), o.Timeout, o.TLSConfig)
		if err == nil && rep.Code != 220 {
			err = fmt.Errorf("%s", rep)
		}
		if err != nil {
			return fail(fmt.Errorf("starttls: %w", err))
		}
		// RFC 3207 §4.2: start over with EHLO.
		if err := k.ehlo(o.Hello); err != nil {
			return fail(err)
		}
	}
	if o.User != "" {
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + o.User + "\x00" + o.Pass))
		if _, err := k.cmd(235, "AUTH", "AUTH PLAIN "+ir); err != nil {
			return fail(err)
		}
	}
	return k, nil
}

// send sends one message: MAIL, RCPT for each recipient, DATA, the
// message (smtp.Client.Data: dot-stuffed, ended by CRLF.CRLF) and the
// final reply.
func (k *conn) send(from string, rcpts []string, msg *smtp.Message) error {
	if _, err := k.cmd(250, "MAIL", "MAIL FROM:<"+from+">"); err != nil {
		return err
	}
	for _, r := range rcpts {
		if _, err := k.cmd(250, "RCPT", "RCPT TO:<"+r+">"); err != nil {
			return err
		}
	}
	if _, err := k.cmd(354, "DATA", "DATA"); err != nil {
		return err
	}
	if err := k.Data(k.timeout, msg); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	_, err := k.cmd(250, "end of data", "")
	return err
}

// quit ends the session politely and closes the connection.
func (k *conn) quit() { k.Quit(k.timeout) }
