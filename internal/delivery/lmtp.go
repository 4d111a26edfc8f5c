package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"postern/internal/smtp"
)

// ErrPermanent is matched (errors.Is) by a delivery error that retrying
// will not fix, such as a 5xx reply; the queue fails the recipient and
// bounces.
var ErrPermanent = errors.New("permanent failure")

// LMTPError is the failure of one recipient in an LMTP delivery: the
// server's reply, or (Code 0) a connection or protocol failure in Err.
type LMTPError struct {
	Code     int    // reply code; 0 when no reply decided the outcome
	Enhanced string // RFC 3463 enhanced status code, "" when none
	Text     string // reply text
	Err      error  // the cause when Code is 0

	step    string // the command that failed, for Error
	session bool   // a refusal of the whole session (greeting, LHLO)
}

// Error returns "delivery: lmtp: STEP: CODE ENHANCED TEXT" or the cause.
func (e *LMTPError) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("delivery: lmtp: %v", e.Err)
	}
	return "delivery: lmtp: " + e.step + ": " + (&smtp.Error{Code: e.Code, Enhanced: e.Enhanced, Message: e.Text}).Error()
}

// Unwrap returns the cause.
func (e *LMTPError) Unwrap() error { return e.Err }

// Temporary reports whether a later attempt may succeed: everything but
// a 5xx reply to MAIL, RCPT, DATA or the final dot. A 5xx greeting or
// LHLO reply is temporary: the mailbox server is ours, and a refusal of
// the whole session is a problem to fix there, not a bounce.
func (e *LMTPError) Temporary() bool { return e.session || e.Code/100 != 5 }

// DSNStatus returns, for the delivery status notification, the
// server's enhanced status code (RFC 3463; "" when it gave none) and its
// reply as the Diagnostic-Code, "smtp; CODE ENHANCED TEXT" (RFC 3464
// §2.3.6; "" when no reply decided the outcome). A refused recipient's
// DSN thus says Dovecot's 5.1.1, not 5.0.0.
func (e *LMTPError) DSNStatus() (status, diagnostic string) {
	if e.Code == 0 {
		return "", ""
	}
	diagnostic = "smtp; " + strconv.Itoa(e.Code)
	if e.Enhanced != "" {
		diagnostic += " " + e.Enhanced
	}
	return e.Enhanced, diagnostic + " " + e.Text
}

// Is makes errors.Is(e, ErrPermanent) true for a 5xx reply.
func (e *LMTPError) Is(target error) bool { return target == ErrPermanent && !e.Temporary() }

// LMTPDialer opens network connections; *net.Dialer implements it.
type LMTPDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// LMTP delivers to a mailbox server (such as Dovecot) over LMTP
// (RFC 2033), one connection per Deliver call. Its methods are safe for
// concurrent use; set the fields before the first call.
type LMTP struct {
	// Network is "tcp" or "unix".
	Network string
	// Address is "host:port" for tcp or a socket path for unix.
	Address string
	// Hostname is the name sent with LHLO.
	Hostname string
	// Timeout bounds the connection and each command; the reply to the
	// final dot gets twice as long. Zero means 5 minutes (RFC 5321
	// §4.5.3.2).
	Timeout time.Duration
	// Dialer opens the connection; nil means a net.Dialer.
	Dialer LMTPDialer
}

// lmtpConn is one LMTP session.
type lmtpConn struct {
	nc net.Conn
	r  *smtp.Reader
	bw *bufio.Writer
	to time.Duration
}

// Deliver hands data from the envelope sender from to the server for
// rcpts and returns one error per recipient, in order: nil when the
// server accepted it (RFC 2033 §4.2: one reply per accepted recipient
// after the final dot), otherwise an *LMTPError, permanent (matching
// ErrPermanent) for a 5xx reply. The server, which makes the final
// delivery, writes the Return-Path field from MAIL FROM (RFC 5321 §4.4;
// Dovecot and Cyrus do): Deliver adds none, and drops any the message
// carried (dropReturnPath), so that the stored copy has one.
func (l *LMTP) Deliver(ctx context.Context, from string, rcpts []string, data []byte) []error {
	return l.DeliverMessage(ctx, from, rcpts, &smtp.Message{Header: data})
}

// DeliverMessage is Deliver for a message whose body may be in a file:
// it is written to the server as a stream, never held in memory.
func (l *LMTP) DeliverMessage(ctx context.Context, from string, rcpts []string, msg *smtp.Message) []error {
	errs := make([]error, len(rcpts))
	if len(rcpts) == 0 {
		return errs
	}
	if hdr := dropReturnPath(msg.Header); len(hdr) != len(msg.Header) {
		msg = &smtp.Message{Header: hdr, Body: msg.Body}
	}
	all := func(err error) []error {
		var le *LMTPError
		if !errors.As(err, &le) {
			le = &LMTPError{Err: err}
		}
		for i := range errs {
			switch errs[i] {
			case nil:
				errs[i] = le
			case errOK:
				errs[i] = nil
			}
		}
		return errs
	}
	// A control character would end or corrupt a command line: refuse
	// such addresses here (every input is hostile).
	if hasCtl(from) {
		return all(&LMTPError{Code: 553, Enhanced: "5.1.7", Text: "bad sender address", step: "MAIL FROM"})
	}
	for i, r := range rcpts {
		if hasCtl(r) {
			errs[i] = &LMTPError{Code: 553, Enhanced: "5.1.3", Text: "bad recipient address", step: "RCPT TO"}
		}
	}
	to := l.Timeout
	if to <= 0 {
		to = 5 * time.Minute
	}
	var d LMTPDialer = &net.Dialer{}
	if l.Dialer != nil {
		d = l.Dialer
	}
	dctx, cancel := context.WithTimeout(ctx, to)
	nc, err := d.DialContext(dctx, l.Network, l.Address)
	cancel()
	if err != nil {
		return all(fmt.Errorf("connect %s %s: %w", l.Network, l.Address, err))
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := &lmtpConn{nc: nc, r: smtp.NewReader(bufio.NewReader(nc)), bw: bufio.NewWriter(nc), to: to}

	if rep, err := c.read(to); err != nil || rep.Code != 220 {
		return all(replyErr("greeting", rep, err, true))
	}
	rep, err := c.cmd("LHLO " + l.Hostname) // RFC 2033 §4.1
	if err != nil || rep.Code != 250 {
		return all(replyErr("LHLO", rep, err, true))
	}
	ext := map[string]bool{}
	for _, line := range rep.Lines[1:] {
		kw, _, _ := strings.Cut(line, " ")
		ext[strings.ToUpper(kw)] = true
	}
	mail := "MAIL FROM:<" + from + ">"
	if ext["8BITMIME"] && messageHasHigh(msg) {
		mail += " BODY=8BITMIME" // RFC 6152 §2
	}
	if ext["SMTPUTF8"] && (hasHigh([]byte(from)) || hasHigh([]byte(strings.Join(rcpts, "")))) {
		mail += " SMTPUTF8" // RFC 6531 §3.4
	}
	if rep, err := c.cmd(mail); err != nil || rep.Code != 250 {
		return all(replyErr("MAIL FROM", rep, err, false))
	}
	var accepted []int
	for i, r := range rcpts {
		if errs[i] != nil {
			continue
		}
		rep, err := c.cmd("RCPT TO:<" + r + ">")
		if err != nil {
			return all(replyErr("RCPT TO", rep, err, false))
		}
		if rep.Code/100 == 2 {
			accepted = append(accepted, i)
		} else {
			errs[i] = replyErr("RCPT TO", rep, nil, false)
		}
	}
	if len(accepted) == 0 {
		c.cmd("QUIT")
		return errs
	}
	if rep, err := c.cmd("DATA"); err != nil || rep.Code != 354 {
		return all(replyErr("DATA", rep, err, false))
	}
	nc.SetDeadline(time.Now().Add(to))
	if err := smtp.WriteMessage(c.bw, msg); err != nil {
		// No final dot after a body that could not be read: the
		// server would take the part it got.
		return all(replyErr("DATA", smtp.Reply{}, err, false))
	}
	c.bw.WriteString(".\r\n")
	if err := c.bw.Flush(); err != nil {
		return all(replyErr("DATA", smtp.Reply{}, err, false))
	}
	// RFC 2033 §4.2: one reply per accepted recipient, in RCPT order. A
	// recipient whose reply never came stays temporary (it may have
	// been delivered: a duplicate is better than a loss).
	for _, i := range accepted {
		rep, err := c.read(2 * to)
		if err != nil {
			return all(replyErr("end of DATA", rep, err, false))
		}
		if rep.Code/100 != 2 {
			errs[i] = replyErr("end of DATA", rep, nil, false)
		} else {
			errs[i] = errOK
		}
	}
	c.cmd("QUIT")
	for i := range errs {
		if errs[i] == errOK {
			errs[i] = nil
		}
	}
	return errs
}

// errOK marks a delivered recipient while the others are filled in.
var errOK = errors.New("ok")

// replyErr makes the *LMTPError of a failed step: from err when the
// session broke, otherwise from the reply. hostLevel marks a refusal of
// the whole session (greeting, LHLO), which is never permanent: the
// mailbox server is ours and a 5xx there is a configuration problem.
func replyErr(step string, rep smtp.Reply, err error, hostLevel bool) error {
	if err != nil {
		return &LMTPError{Err: fmt.Errorf("%s: %w", step, err)}
	}
	return &LMTPError{Code: rep.Code, Enhanced: rep.Enhanced, Text: strings.Join(rep.Lines, " "),
		step: step, session: hostLevel}
}

// cmd sends one command and reads its reply.
func (c *lmtpConn) cmd(line string) (smtp.Reply, error) {
	c.nc.SetDeadline(time.Now().Add(c.to))
	c.bw.WriteString(line + "\r\n")
	if err := c.bw.Flush(); err != nil {
		return smtp.Reply{}, err
	}
	return c.read(c.to)
}

// read reads one possibly multi-line reply (smtp.ReadReply).
func (c *lmtpConn) read(to time.Duration) (smtp.Reply, error) {
	c.nc.SetReadDeadline(time.Now().Add(to))
	return smtp.ReadReply(c.r)
}

// hasCtl reports whether s has an ASCII control character.
func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// hasHigh reports whether b has a byte above 127.
func hasHigh(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// messageHasHigh reports whether msg holds a byte with the high bit set,
// reading its body as a stream.
func messageHasHigh(msg *smtp.Message) bool {
	if hasHigh(msg.Header) {
		return true
	}
	if b, ok := msg.Body.Bytes(); ok {
		return hasHigh(b)
	}
	buf := make([]byte, 64<<10)
	r := msg.Body.Reader()
	for {
		n, err := r.Read(buf)
		if hasHigh(buf[:n]) {
			return true
		}
		if err != nil {
			return false
		}
	}
}
