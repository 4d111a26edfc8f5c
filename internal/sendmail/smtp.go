package sendmail

// The SMTP dialogue of "sendmail -bs": a local program speaks SMTP on
// the command's standard input and reads the replies on its standard
// output (as with Postfix's and Sendmail's -bs). The client is a local
// process, trusted as the sendmail command line is: no TLS, no AUTH, any
// sender and any recipient; bare names are qualified as on the command
// line. Each message is handed to Server.Submit, which queues it.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"postern/internal/smtp"
)

// Message is one message of a -bs dialogue.
type Message struct {
	// From is the envelope sender; "" is the null sender.
	From string
	// Recipients are the envelope recipients, in order, without
	// duplicates.
	Recipients []string
	// Bare lists the recipients that were bare names, qualified with
	// Server.Domain.
	Bare []string
	// Data is the message with CRLF line endings, dot-unstuffed.
	Data []byte
}

// Server is the -bs dialogue. Its zero value is not usable: Submit is
// required.
type Server struct {
	// Hostname is the name in the greeting and the EHLO reply.
	Hostname string
	// Domain qualifies bare names in MAIL and RCPT ("<root>").
	Domain string
	// MaxMessageSize bounds a message; 0 means no limit.
	MaxMessageSize int64
	// MaxRecipients bounds the recipients of a message; 0 means 1000.
	MaxRecipients int
	// Submit queues m and returns its queue id. An *smtp.Error it
	// returns is the reply; any other error is 451 4.3.0.
	Submit func(ctx context.Context, m *Message) (string, error)
}

// maxErrors is how many failed commands end the dialogue (421).
const maxErrors = 20

// maxCommandLine is the longest command line, CRLF included
// (RFC 5321 §4.5.3.1.4, with room for parameters).
const maxCommandLine = 2048

// Serve runs the dialogue on r and w until QUIT, the end of r, too many
// errors or ctx's end. It returns nil after QUIT or at the end of input
// between commands, and otherwise the error that ended it.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer) error {
	d := &dialogue{s: s, br: bufio.NewReader(r), bw: bufio.NewWriter(w)}
	d.lr = smtp.NewReader(d.br)
	d.reply(220, "", s.hostname()+" ESMTP Postern (sendmail -bs)")
	for {
		if err := d.bw.Flush(); err != nil {
			return fmt.Errorf("sendmail: -bs: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := d.lr.ReadLine(maxCommandLine)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, smtp.ErrLineTooLong):
			d.fail(smtp.NewError(500, "5.5.2", "Line too long"))
			continue
		case errors.Is(err, smtp.ErrBareLF), errors.Is(err, smtp.ErrBareCR), errors.Is(err, smtp.ErrNUL):
			d.fail(smtp.NewError(500, "5.5.2", "Bare LF or CR, or NUL, not allowed (RFC 5321 section 2.3.8)"))
			continue
		case err != nil:
			return fmt.Errorf("sendmail: -bs: %w", err)
		}
		cmd, err := smtp.ParseCommand(line)
		if err != nil {
			d.fail(err)
			continue
		}
		if quit := d.command(ctx, cmd); quit {
			d.bw.Flush()
			return nil
		}
		if d.errors >= maxErrors {
			d.reply(421, "4.7.0", "Too many errors, closing")
			d.bw.Flush()
			return errors.New("sendmail: -bs: too many errors")
		}
	}
}

func (s *Server) hostname() string {
	if s.Hostname == "" {
		return "localhost"
	}
	return s.Hostname
}

// dialogue is the state of one Serve.
type dialogue struct {
	s      *Server
	br     *bufio.Reader
	lr     *smtp.Reader
	bw     *bufio.Writer
	errors int
	helo   bool
	tx     *Message // nil outside a transaction
}

func (d *dialogue) reply(code int, enhanced string, lines ...string) {
	smtp.WriteReply(d.bw, code, enhanced, lines...)
}

// fail sends err's reply (an *smtp.Error, else 451 4.3.0) and counts it.
func (d *dialogue) fail(err error) {
	d.errors++
	var e *smtp.Error
	if !errors.As(err, &e) {
		e = smtp.NewError(451, "4.3.0", "Local error: "+err.Error())
	}
	e.WriteReplyTo(d.bw)
}

// command runs one command and reports whether it was QUIT.
func (d *dialogue) command(ctx context.Context, cmd smtp.Command) bool {
	switch cmd.Verb {
	case "EHLO", "HELO":
		if strings.TrimSpace(cmd.Arg) == "" {
			d.fail(smtp.NewError(501, "5.5.4", "Syntax: "+cmd.Verb+" hostname"))
			return false
		}
		d.helo, d.tx = true, nil
		if cmd.Verb == "HELO" {
			d.reply(250, "", d.s.hostname())
			return false
		}
		ext := []string{d.s.hostname(), "PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"}
		if d.s.MaxMessageSize > 0 {
			ext = append(ext, "SIZE "+strconv.FormatInt(d.s.MaxMessageSize, 10))
		}
		d.reply(250, "", ext...)
	case "MAIL":
		d.mail(cmd.Arg)
	case "RCPT":
		d.rcpt(cmd.Arg)
	case "DATA":
		d.data(ctx, cmd.Arg)
	case "RSET":
		d.tx = nil
		d.reply(250, "2.0.0", "OK")
	case "NOOP":
		d.reply(250, "2.0.0", "OK")
	case "VRFY":
		d.reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
	case "HELP":
		d.reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT")
	case "QUIT":
		d.reply(221, "2.0.0", "Bye")
		return true
	default:
		d.fail(smtp.NewError(502, "5.5.1", "Command not implemented"))
	}
	return false
}

// qualifyPath gives a bare name in the path of a MAIL or RCPT argument
// ("FROM:<root>", "TO:<Postmaster>") the Domain, and returns the new
// argument and the address made ("" when nothing was added).
func (d *dialogue) qualifyPath(arg string) (string, string) {
	i := strings.IndexByte(arg, '<')
	j := strings.IndexByte(arg, '>')
	if i < 0 || j < i || d.s.Domain == "" {
		return arg, ""
	}
	local := arg[i+1 : j]
	if !IsBareName(local) {
		return arg, ""
	}
	addr := local + "@" + d.s.Domain
	return arg[:i+1] + addr + arg[j:], addr
}

func (d *dialogue) mail(arg string) {
	if !d.helo {
		d.fail(smtp.NewError(503, "5.5.1", "Send EHLO or HELO first"))
		return
	}
	if d.tx != nil {
		d.fail(smtp.NewError(503, "5.5.1", "Nested MAIL command"))
		return
	}
	arg, _ = d.qualifyPath(arg)
	path, params, err := smtp.ParseMailFrom(arg, true)
	if err != nil {
		d.fail(err)
		return
	}
	if v, ok := params["SIZE"]; ok && d.s.MaxMessageSize > 0 { // RFC 1870 §6
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > d.s.MaxMessageSize {
			d.fail(smtp.NewError(552, "5.3.4", "Message size exceeds fixed maximum message size"))
			return
		}
	}
	d.tx = &Message{}
	if !path.Null {
		d.tx.From = path.Addr.String()
	}
	d.reply(250, "2.1.0", "OK")
}

func (d *dialogue) rcpt(arg string) {
	if d.tx == nil {
		d.fail(smtp.NewError(503, "5.5.1", "Need MAIL before RCPT"))
		return
	}
	arg, bare := d.qualifyPath(arg)
	path, _, err := smtp.ParseRcptTo(arg, true)
	if err != nil {
		d.fail(err)
		return
	}
	addr := path.Addr.String()
	if slices.Contains(d.tx.Recipients, addr) {
		d.reply(250, "2.1.5", "OK")
		return
	}
	max := d.s.MaxRecipients
	if max <= 0 {
		max = 1000
	}
	if len(d.tx.Recipients) >= max {
		d.fail(smtp.NewError(452, "4.5.3", "Too many recipients"))
		return
	}
	d.tx.Recipients = append(d.tx.Recipients, addr)
	if bare != "" {
		d.tx.Bare = append(d.tx.Bare, addr)
	}
	d.reply(250, "2.1.5", "OK")
}

func (d *dialogue) data(ctx context.Context, arg string) {
	switch {
	case arg != "":
		d.fail(smtp.NewError(501, "5.5.4", "Syntax: DATA"))
		return
	case d.tx == nil:
		d.fail(smtp.NewError(503, "5.5.1", "Need MAIL command"))
		return
	case len(d.tx.Recipients) == 0:
		d.fail(smtp.NewError(554, "5.5.1", "No valid recipients"))
		return
	}
	d.reply(354, "", "End data with <CR><LF>.<CR><LF>")
	d.bw.Flush()
	var buf bytes.Buffer
	err := smtp.ReadData(d.br, &buf, smtp.DataLimits{MaxSize: d.s.MaxMessageSize})
	tx := d.tx
	d.tx = nil
	switch {
	case errors.Is(err, smtp.ErrTooBig):
		d.fail(smtp.NewError(552, "5.3.4", "Message size exceeds fixed maximum message size"))
		return
	case errors.Is(err, smtp.ErrBareLF), errors.Is(err, smtp.ErrBareCR):
		d.fail(smtp.NewError(554, "5.6.0", "Bare LF or CR not allowed (RFC 5321 section 2.3.8)"))
		return
	case errors.Is(err, smtp.ErrNUL):
		d.fail(smtp.NewError(554, "5.6.0", "NUL not allowed in message"))
		return
	case errors.Is(err, smtp.ErrLineTooLong):
		d.fail(smtp.NewError(500, "5.5.2", "Line too long"))
		return
	case err != nil:
		d.fail(smtp.NewError(451, "4.3.0", "Read error: "+err.Error()))
		return
	}
	tx.Data = buf.Bytes()
	id, err := d.s.Submit(ctx, tx)
	if err != nil {
		d.fail(err)
		return
	}
	d.reply(250, "2.0.0", "OK queued as "+id)
}
