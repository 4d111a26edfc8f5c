package smtpd

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"postern/internal/addrkey"
	"postern/internal/mailauth"
	"postern/internal/smtp"
)

// cmdData handles DATA (RFC 5321 §4.1.1.4): it reads the message, checks
// and repairs its header on submission roles, prepends Received and hands
// it to the Spooler. The transaction ends either way.
func (s *session) cmdData(arg string) {
	switch {
	case !s.greeted:
		s.fail("sequence", errSeq("Send EHLO first"))
		return
	case !s.tx.active:
		s.fail("sequence", errSeq("Need MAIL command"))
		return
	case len(s.tx.rcpts) == 0 && s.tx.refused > 0:
		// RFC 5321 §3.3: no valid recipients.
		s.fail("no_rcpts", &smtp.Error{Code: 554, Enhanced: "5.5.1", Message: "No valid recipients"})
		return
	case len(s.tx.rcpts) == 0:
		s.fail("sequence", errSeq("Need RCPT command"))
		return
	case arg != "":
		s.fail("syntax", errSyntax("Syntax: DATA"))
		return
	}
	if !s.sendAllowed() { // the user's send limits (admission.go)
		return
	}
	if s.srv.Budget.exhausted(s.budgetClient()) {
		// The client keeps its message and tries again later; the
		// transaction ends, as for a send limit.
		s.fail("data_budget", errNoStorage("message data in flight at the limit"))
		s.resetTx()
		return
	}
	defer s.resetTx()
	id := smtp.NewID(s.srv.now())
	if e := s.milterData(id); e != nil { // milter.go
		s.fail("milter", e)
		return
	}
	s.reply(354, "", "End data with <CR><LF>.<CR><LF>")
	if s.flush() != nil {
		s.quit = true
		return
	}

	// The message goes to memory, or past memoryMax to the spool's file
	// as it arrives (sink.go); the header section stays in memory, with
	// room in front for the fields prepended below.
	sink := s.newSink(id)
	defer sink.release()
	limit := deadline(s.lim.DataTimeLimit)
	s.cr.inData, s.cr.dataTimeout, s.cr.dataDeadline = true, s.lim.DataTimeout, limit
	err := smtp.ReadData(s.br, sink, smtp.DataLimits{MaxSize: s.lim.MaxMessageSize, MaxLine: s.lim.MaxTextLine})
	s.cr.inData, s.cr.dataTimeout, s.cr.dataDeadline = false, 0, time.Time{}
	if errors.Is(err, os.ErrDeadlineExceeded) && !limit.IsZero() && !time.Now().Before(limit) {
		err = errDataTimeLimit
	}
	if err != nil {
		s.dataError(err)
		return
	}
	receivedAt := s.srv.now()
	hb, body, err := sink.message()
	if err != nil {
		s.dataError(&sinkError{err})
		return
	}

	// RFC 5321 §6.3: a message with too many Received fields, ours
	// included, is going round in circles. Refused now, it bounces
	// nowhere (the queue would fail it and send a DSN).
	if n := smtp.CountFields(hb.bytes(), "Received") + 1; n > s.lim.MaxReceived {
		s.fail("loop", &smtp.Error{Code: 554, Enhanced: "5.4.6",
			Message: "Routing loop detected (" + strconv.Itoa(n) + " Received header fields)"})
		return
	}
	var repair smtp.HeaderRepair
	if s.srv.Role.submission() {
		var e *labeledError
		if repair, e = s.checkSubmission(hb.bytes()); e != nil {
			s.fail(e.label, e.err)
			return
		}
	}
	rcpt := ""
	if len(s.tx.rcpts) == 1 {
		rcpt = s.tx.rcpts[0]
	}
	if s.hdr == nil {
		s.hdr = make([]byte, 0, 512) // reused for the session's next messages
	}
	// RFC 5321 §4.4: the Received line goes on top.
	s.hdr = smtp.AppendReceived(s.hdr[:0], smtp.Received{
		Helo:     s.helo,
		Remote:   s.remote,
		Host:     s.srv.host,
		Protocol: smtp.Protocol(s.esmtp, s.tlsState != nil, s.authUser != "", s.tx.smtputf8),
		ID:       id,
		TLS:      s.tlsState,
		For:      rcpt,
		Date:     receivedAt,
	})
	s.hdr = repair.Append(s.hdr, id, s.srv.host, receivedAt)
	hb.prepend(s.hdr)
	msg := &sink.msg
	*msg = smtp.Message{Header: hb.bytes(), Body: body}

	env := &smtp.Envelope{
		ID:         id,
		From:       s.tx.from,
		Recipients: slices.Clone(s.tx.rcpts),
		SMTPUTF8:   s.tx.smtputf8,
		Body:       s.tx.body,
		AuthUser:   s.authUser,
		Listener:   s.srv.Name,
		Remote:     s.remote,
		Helo:       s.helo,
		ReceivedAt: receivedAt,
		RequireTLS: s.tx.reqTLS,
		Ret:        s.tx.dsn.ret,
		EnvID:      s.tx.dsn.envID,
		DSN:        s.tx.dsn.rcpts,
	}
	s.holdEnvelope(env) // over a send limit, with the policy to hold (admission.go)
	// On mx the milters see what SPF, DKIM and DMARC found; on
	// submission the DKIM signature covers what they changed.
	var ok bool
	if s.srv.Role.submission() {
		ok = s.runMilters(env, hb, msg) && s.filter(env, hb, msg) // milter.go
	} else {
		ok = s.filter(env, hb, msg) && s.runMilters(env, hb, msg)
	}
	if !ok {
		return
	}
	if err := s.srv.Spool.PutMessage(s.ctx, env, msg); err != nil {
		if noSpace(err) {
			s.fail("no_space", errNoStorage("spool: "+err.Error()))
			return
		}
		s.fail("spool_error", &smtp.Error{Code: 451, Enhanced: "4.3.0", Message: "Local error, try again", Reason: "spool: " + err.Error()})
		return
	}
	s.nmsgs++
	s.srv.mAccepted.Inc()
	s.log.Info("message accepted", "id", id, "from", env.From, "rcpts", len(env.Recipients),
		"size", msg.Size(), "auth_user", env.AuthUser)
	s.reply(250, "2.0.0", "OK queued as "+id+s.heldNote(env))
}

// filter runs the Server's Filter on the message and applies its
// result; it reports whether the message goes on, and answers when it
// does not.
func (s *session) filter(env *smtp.Envelope, hb *headerBuf, msg *smtp.Message) bool {
	if s.srv.Filter == nil {
		return true
	}
	res, err := s.srv.Filter.Filter(s.ctx, env, msg)
	if err != nil {
		s.fail("filter_error", &smtp.Error{Code: 451, Enhanced: "4.3.0", Message: "Local error, try again", Reason: "filter: " + err.Error()})
		return false
	}
	if res.Reject != nil {
		s.fail("filter_reject", res.Reject)
		return false
	}
	if res.Header != nil {
		hb.replace(res.Header)
	}
	if len(res.Prepend) > 0 {
		hb.prepend(res.Prepend)
	}
	msg.Header = hb.bytes()
	return true
}

// errDataTimeLimit is the end of DATA at Limits.DataTimeLimit.
var errDataTimeLimit = errors.New("smtpd: DATA time limit reached")

// sinkError is an error of the dataSink, not of the client's data.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// errNoStorage is 452 4.3.1 (RFC 3463 §3.4: mail system full): the
// client keeps the message and tries again later (RFC 5321 §4.2.5).
func errNoStorage(reason string) *smtp.Error {
	return &smtp.Error{Code: 452, Enhanced: "4.3.1", Message: "Insufficient system storage, try again later", Reason: reason}
}

// noSpace reports whether err comes from a full disk or a quota.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// dataError answers a failed ReadData, or a message the sink could not
// hold.
func (s *session) dataError(err error) {
	var se *sinkError
	switch {
	case errors.Is(err, errDataBudget):
		s.fail("data_budget", errNoStorage(err.Error()))
	case errors.Is(err, errHeaderTooBig):
		s.fail("header_too_big", &smtp.Error{Code: 552, Enhanced: "5.3.4",
			Message: "Header section too big (the limit is " + strconv.Itoa(s.lim.MaxHeaderSize) + " bytes)"})
	case noSpace(err):
		s.fail("no_space", errNoStorage(err.Error()))
	case errors.As(err, &se):
		s.fail("spool_error", &smtp.Error{Code: 451, Enhanced: "4.3.0", Message: "Local error, try again", Reason: err.Error()})
	case errors.Is(err, errDataTimeLimit):
		s.fail("data_time_limit", &smtp.Error{Code: 421, Enhanced: "4.4.2", Message: "Message not received within " + s.lim.DataTimeLimit.String() + ", closing"})
	case errors.Is(err, smtp.ErrTooBig):
		s.fail("too_big", &smtp.Error{Code: 552, Enhanced: "5.3.4", Message: "Message too big"})
	case errors.Is(err, smtp.ErrBareLF):
		s.fail("bare_lf", &smtp.Error{Code: 554, Enhanced: "5.6.0", Message: "Bare LF or CR not allowed (RFC 5321 section 2.3.8)", Reason: "bare LF in DATA"})
	case errors.Is(err, smtp.ErrBareCR):
		s.fail("bare_cr", &smtp.Error{Code: 554, Enhanced: "5.6.0", Message: "Bare LF or CR not allowed (RFC 5321 section 2.3.8)", Reason: "bare CR in DATA"})
	case errors.Is(err, smtp.ErrNUL):
		s.fail("nul", &smtp.Error{Code: 554, Enhanced: "5.6.0", Message: "NUL not allowed in message"})
	case errors.Is(err, smtp.ErrLineTooLong):
		// RFC 5321 §4.5.3.1.6
		s.fail("line_too_long", &smtp.Error{Code: 500, Enhanced: "5.5.2", Message: "Line too long"})
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.fail("timeout", &smtp.Error{Code: 421, Enhanced: "4.4.2", Message: "Timeout"})
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("client closed in DATA", "err", err)
		s.quit = true
	default:
		s.log.Info("read error in DATA", "err", err)
		s.quit = true
	}
}

// checkSubmission checks the From header of a submitted message against
// the user's addresses and reports the fields to add.
func (s *session) checkSubmission(msg []byte) (smtp.HeaderRepair, *labeledError) {
	var r smtp.HeaderRepair
	hdr := msg[:smtp.HeaderEnd(msg)]
	froms := smtp.HeaderValues(hdr, "From")
	if len(froms) != 1 {
		// RFC 5322 §3.6: exactly one From field.
		return r, &labeledError{"from_header", &smtp.Error{Code: 554, Enhanced: "5.6.0", Message: "Message must have exactly one From header field"}}
	}
	// Every address a mail client may show must be the user's
	// (mailauth.SubmissionAddresses).
	list, err := mailauth.SubmissionAddresses(froms[0])
	if err != nil {
		msg := "Invalid From header field"
		if errors.Is(err, mailauth.ErrFromAmbiguous) {
			msg = err.Error()
		}
		return r, &labeledError{"from_header", &smtp.Error{Code: 554, Enhanced: "5.6.0", Message: msg, Reason: err.Error()}}
	}
	for _, a := range list {
		addr := normalizeAddr(a)
		ok, err := s.srv.Directory.MaySendAs(s.ctx, s.authUser, addr)
		if err != nil {
			return r, &labeledError{"temp_error", &smtp.Error{Code: 451, Enhanced: "4.3.0", Message: "Local error, try again", Reason: "MaySendAs: " + err.Error()}}
		}
		if !ok {
			return r, &labeledError{"sender_denied", &smtp.Error{Code: 553, Enhanced: "5.7.1", Message: "From address not owned by user",
				Reason: "user " + s.authUser + " may not send as " + addr}}
		}
	}
	return smtp.CheckHeader(hdr), nil
}

// normalizeAddr lowers the ASCII letters of the domain of local@domain,
// as Directory expects, and nothing else: strings.ToLower would make
// "alice@wor\u212A.test" (a KELVIN SIGN) alice@work.test.
func normalizeAddr(a string) string {
	d := addrkey.DomainOf(a)
	return a[:len(a)-len(d)] + smtp.LowerASCII(d)
}

// headroom is the space reserved in front of a message for the header
// fields the session and its Filter prepend (Received, Message-ID, Date,
// DKIM-Signature, Authentication-Results): enough for them unless the
// client's name is very long or there are many signatures.
const headroom = 2048
