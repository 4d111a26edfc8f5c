package loadgen

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// conn is one client SMTP session: a connection, its buffered reader and
// writer, and a deadline applied to every exchange.
type conn struct {
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
}

// replyError is a reply the client did not expect.
type replyError struct {
	cmd  string
	code int
	text string
}

func (e *replyError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.cmd, e.code, e.text)
}

func newConn(c net.Conn, timeout time.Duration) *conn {
	return &conn{c: c, r: bufio.NewReaderSize(c, 1024), w: bufio.NewWriterSize(c, 4096), timeout: timeout}
}

// readReply reads one (possibly multiline) reply: RFC 5321 §4.2.
func (k *conn) readReply() (code int, text string, err error) {
	var b strings.Builder
	for {
		line, err := k.r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, "", fmt.Errorf("short reply %q", line)
		}
		c, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, "", fmt.Errorf("malformed reply %q", line)
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		if len(line) > 4 {
			b.WriteString(line[4:])
		}
		if len(line) == 3 || line[3] == ' ' {
			return c, b.String(), nil
		}
		code = c
	}
}

// cmd sends one command line and reads its reply, which must have code want.
func (k *conn) cmd(want int, name, line string) (string, error) {
	k.c.SetDeadline(time.Now().Add(k.timeout))
	if line != "" {
		k.w.WriteString(line)
		k.w.WriteString("\r\n")
	}
	if k.w.Buffered() > 0 {
		if err := k.w.Flush(); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
	}
	code, text, err := k.readReply()
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if code != want {
		return text, &replyError{cmd: name, code: code, text: text}
	}
	return text, nil
}

// ehlo sends EHLO and returns the extension keywords, upper case.
func (k *conn) ehlo(hello string) ([]string, error) {
	text, err := k.cmd(250, "EHLO", "EHLO "+hello)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(text, "\n")
	for i := range lines {
		lines[i] = strings.ToUpper(lines[i])
	}
	return lines[1:], nil
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
	k := newConn(nc, o.Timeout)
	fail := func(err error) (*conn, error) {
		k.c.Close()
		return nil, err
	}
	if _, err := k.cmd(220, "greeting", ""); err != nil {
		return fail(err)
	}
	if _, err := k.ehlo(o.Hello); err != nil {
		return fail(err)
	}
	if o.Mode == ModeSTARTTLS {
		if _, err := k.cmd(220, "STARTTLS", "STARTTLS"); err != nil {
			return fail(err)
		}
		if k.r.Buffered() > 0 {
			return fail(errors.New("STARTTLS: server sent data before the handshake"))
		}
		tc := tls.Client(k.c, o.TLSConfig)
		tc.SetDeadline(time.Now().Add(o.Timeout))
		if err := tc.Handshake(); err != nil {
			return fail(fmt.Errorf("starttls: %w", err))
		}
		k.c = tc
		k.r.Reset(tc)
		k.w.Reset(tc)
		// RFC 3207 §4.2: start over with EHLO.
		if _, err := k.ehlo(o.Hello); err != nil {
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
// message (already dot-stuffed, ending in CRLF.CRLF) and the final reply.
func (k *conn) send(from string, rcpts []string, msg []byte) error {
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
	k.c.SetDeadline(time.Now().Add(k.timeout))
	if _, err := k.w.Write(msg); err != nil {
		return fmt.Errorf("message: %w", err)
	}
	_, err := k.cmd(250, "end of data", "")
	if err != nil {
		return err
	}
	return nil
}

// quit ends the session politely and closes the connection.
func (k *conn) quit() {
	k.c.SetDeadline(time.Now().Add(k.timeout))
	k.w.WriteString("QUIT\r\n")
	if k.w.Flush() == nil {
		k.readReply()
	}
	k.c.Close()
}
