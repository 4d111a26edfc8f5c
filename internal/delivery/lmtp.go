package delivery

import (
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
// it is written to the server as a stream, never held in memory. Its
// steps: check the addresses, connect and greet (LHLO), the envelope
// (MAIL, one RCPT per recipient), then the content and one reply per
// accepted recipient.
func (l *LMTP) DeliverMessage(ctx context.Context, from string, rcpts []string, msg *smtp.Message) []error {
	t := newLMTPTx(rcpts)
	if len(rcpts) == 0 {
		return t.errs
	}
	if hdr := dropReturnPath(msg.Header); len(hdr) != len(msg.Header) {
		msg = &smtp.Message{Header: hdr, Body: msg.Body}
	}
	if err := t.checkAddrs(from, rcpts); err != nil {
		return t.all(err)
	}
	c, err := l.connect(ctx)
	if err != nil {
		return t.all(err)
	}
	defer c.Close()
	stop := c.Watch(ctx)
	defer stop()
	to := l.timeout()
	ext, err := l.greet(c, to)
	if err != nil {
		return t.all(err)
	}
	accepted, err := t.envelope(c, to, mailCommand(from, rcpts, msg, ext), rcpts)
	if err != nil {
		return t.all(err)
	}
	if len(accepted) > 0 {
		if err := t.data(c, to, msg, accepted); err != nil {
			return t.all(err)
		}
	}
	c.Quit(to)
	return t.done()
}

// timeout returns l.Timeout, or its default.
func (l *LMTP) timeout() time.Duration {
	if l.Timeout <= 0 {
		return 5 * time.Minute
	}
	return l.Timeout
}

// connect dials the server within the timeout.
func (l *LMTP) connect(ctx context.Context) (*smtp.Client, error) {
	var d LMTPDialer = &net.Dialer{}
	if l.Dialer != nil {
		d = l.Dialer
	}
	dctx, cancel := context.WithTimeout(ctx, l.timeout())
	defer cancel()
	nc, err := d.DialContext(dctx, l.Network, l.Address)
	if err != nil {
		return nil, fmt.Errorf("connect %s %s: %w", l.Network, l.Address, err)
	}
	return smtp.NewClient(nc), nil
}

// greet reads the greeting and says LHLO (RFC 2033 §4.1); it returns
// the extensions the server offers. A refusal of either is of the
// whole session, never permanent (replyErr).
func (l *LMTP) greet(c *smtp.Client, to time.Duration) (ext func(string) bool, err error) {
	if rep, err := c.Read(to); err != nil || rep.Code != 220 {
		return nil, replyErr("greeting", rep, err, true)
	}
	if rep, err := c.Hello(to, "LHLO", l.Hostname); err != nil || rep.Code != 250 {
		return nil, replyErr("LHLO", rep, err, true)
	}
	return func(kw string) bool { _, ok := c.Ext(kw); return ok }, nil
}

// mailCommand returns MAIL FROM for from, with BODY=8BITMIME when the
// message has 8-bit bytes (RFC 6152 §2) and SMTPUTF8 when an address
// is not ASCII (RFC 6531 §3.4), each only when the server offers it.
func mailCommand(from string, rcpts []string, msg *smtp.Message, ext func(string) bool) string {
	mail := "MAIL FROM:<" + from + ">"
	if ext("8BITMIME") && messageHasHigh(msg) {
		mail += " BODY=8BITMIME"
	}
	if ext("SMTPUTF8") && (hasHigh([]byte(from)) || hasHigh([]byte(strings.Join(rcpts, "")))) {
		mail += " SMTPUTF8"
	}
	return mail
}

// lmtpTx is the outcome of one LMTP transaction, recipient by
// recipient, as it is filled in.
type lmtpTx struct {
	errs []error // nil: not decided yet; errOK: delivered
}

func newLMTPTx(rcpts []string) *lmtpTx { return &lmtpTx{errs: make([]error, len(rcpts))} }

// checkAddrs refuses addresses with a control character, which would
// end or corrupt a command line (every input is hostile): the sender's
// fails them all, a recipient's that recipient.
func (t *lmtpTx) checkAddrs(from string, rcpts []string) error {
	if hasCtl(from) {
		return &LMTPError{Code: 553, Enhanced: "5.1.7", Text: "bad sender address", step: "MAIL FROM"}
	}
	for i, r := range rcpts {
		if hasCtl(r) {
			t.errs[i] = &LMTPError{Code: 553, Enhanced: "5.1.3", Text: "bad recipient address", step: "RCPT TO"}
		}
	}
	return nil
}

// envelope sends MAIL and a RCPT for each recipient not refused yet, and
// returns the indexes of those the server accepted; the others get their
// refusal. An error (MAIL refused, the session lost) concerns all.
func (t *lmtpTx) envelope(c *smtp.Client, to time.Duration, mail string, rcpts []string) (accepted []int, err error) {
	if rep, err := c.Cmd(to, mail); err != nil || rep.Code != 250 {
		return nil, replyErr("MAIL FROM", rep, err, false)
	}
	for i, r := range rcpts {
		if t.errs[i] != nil {
			continue
		}
		rep, err := c.Cmd(to, "RCPT TO:<"+r+">")
		if err != nil {
			return nil, replyErr("RCPT TO", rep, err, false)
		}
		if rep.Code/100 == 2 {
			accepted = append(accepted, i)
		} else {
			t.errs[i] = replyErr("RCPT TO", rep, nil, false)
		}
	}
	return accepted, nil
}

// data sends the message (content), and reads one reply per accepted
// recipient, in RCPT order (RFC 2033 §4.2), waiting twice the timeout
// for each. A recipient whose reply never came stays temporary (it may
// have been delivered: a duplicate is better than a loss).
func (t *lmtpTx) data(c *smtp.Client, to time.Duration, msg *smtp.Message, accepted []int) error {
	step, err := content(c, to, msg)
	if err != nil {
		return err
	}
	for _, i := range accepted {
		rep, err := c.Read(2 * to)
		if err != nil {
			return replyErr(step, rep, err, false)
		}
		if rep.Code/100 != 2 {
			t.errs[i] = replyErr(step, rep, nil, false)
		} else {
			t.errs[i] = errOK
		}
	}
	return nil
}

// content sends the message: as one BDAT LAST chunk when the server
// offers CHUNKING (RFC 3030 §2; Dovecot does, and answers it as the
// final dot, one reply per recipient), else with DATA. It returns the
// step the replies answer. No final dot or complete chunk follows a
// body that could not be read (smtp.Client.Data, Bdat): the server
// would take the part it got.
func content(c *smtp.Client, to time.Duration, msg *smtp.Message) (step string, err error) {
	if _, ok := c.Ext("CHUNKING"); ok {
		if err := c.Bdat(to, msg); err != nil {
			return "", replyErr("BDAT", smtp.Reply{}, err, false)
		}
		return "BDAT", nil
	}
	if rep, err := c.Cmd(to, "DATA"); err != nil || rep.Code != 354 {
		return "", replyErr("DATA", rep, err, false)
	}
	if err := c.Data(to, msg); err != nil {
		return "", replyErr("DATA", smtp.Reply{}, err, false)
	}
	return "end of DATA", nil
}

// all ends the transaction on err: every recipient not decided yet gets
// err (as an *LMTPError); those delivered stay delivered.
func (t *lmtpTx) all(err error) []error {
	var le *LMTPError
	if !errors.As(err, &le) {
		le = &LMTPError{Err: err}
	}
	for i := range t.errs {
		if t.errs[i] == nil {
			t.errs[i] = le
		}
	}
	return t.done()
}

// done returns the errors, nil for each delivered recipient.
func (t *lmtpTx) done() []error {
	for i := range t.errs {
		if t.errs[i] == errOK {
			t.errs[i] = nil
		}
	}
	return t.errs
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
