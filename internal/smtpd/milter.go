package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"postern/internal/metrics"
	"postern/internal/milter"
	"postern/internal/smtp"
)

// This file hands a session's events and messages to the Server's
// Milters (internal/milter), as Postfix's smtpd_milters: connect before
// the greeting, HELO, MAIL and RCPT once Postern's own checks have
// passed and before their 250, DATA before its 354, and the message at
// the end of DATA. On mx the milters come after SPF, DKIM and DMARC (they
// see Authentication-Results); on submission before the DKIM signature,
// which then covers what they changed (cmdData).

// Replies for what milters decide without a reply of their own
// (Postfix's texts).
var (
	errMilterReject   = &smtp.Error{Code: 550, Enhanced: "5.7.1", Message: "Command rejected"}
	errMilterTempfail = &smtp.Error{Code: 451, Enhanced: "4.7.1", Message: "Service unavailable - try again later"}
)

// milterReply turns a Verdict that stops the session's command into the
// reply for it; nil for a Verdict that lets it go on.
func (s *session) milterReply(v milter.Verdict, stage milter.Stage) *smtp.Error {
	var e *smtp.Error
	switch v.Action {
	case milter.Reject:
		e = errMilterReject
	case milter.Tempfail:
		e = errMilterTempfail
	default:
		return nil
	}
	if r := v.Reply; r != nil {
		enh := r.Enhanced
		if enh == "" { // RFC 2034 §3: every reply carries one once offered
			enh = "5.7.1"
			if r.Code < 500 {
				enh = "4.7.1"
			}
		}
		e = &smtp.Error{Code: r.Code, Enhanced: enh, Message: r.Text}
	}
	reason := "milter " + v.Milter + ": " + v.Action.String() + " at " + string(stage)
	if v.Default {
		reason = "milter " + v.Milter + " failed: default action tempfail at " + string(stage)
	}
	return e.WithReason(reason)
}

// greet connects the Server's milters, if any, and writes the greeting:
// 220, or what the milters decided (Postfix's answers): 554 when one
// rejects the connection, after which every command but QUIT gets 503
// (RFC 5321 §3.1); 421 and the close when one refuses for now. It
// reports false when the session ends.
func (s *session) greet() bool {
	if len(s.srv.Milters) == 0 {
		smtp.WriteReply(s.bw, 220, "", s.srv.greeting)
		return true
	}
	o := milter.ChainOptions{Options: s.srv.MilterOptions, Observer: milterObserver{s},
		MaxLine: s.lim.MaxTextLine, MaxSize: s.lim.MaxMessageSize}
	s.milters = milter.NewChain(s.ctx, s.srv.Milters, o)
	ip := ""
	if s.remote.IsValid() {
		ip = s.remote.Addr().String()
	}
	macros := []milter.Macro{
		macro("j", s.srv.host), macro("{daemon_name}", s.srv.Name), macro("v", "Postern"),
		macro("_", "["+ip+"]"), macro("{client_addr}", ip), macro("{client_port}", strconv.Itoa(int(s.remote.Port()))),
	}
	if a, ok := s.raw.LocalAddr().(*net.TCPAddr); ok {
		macros = append(macros, macro("{daemon_addr}", a.IP.String()))
	}
	v := s.milters.Connect("["+ip+"]", s.remote, macros)
	switch e := s.milterReply(v, milter.StageConnect); {
	case e == nil:
		smtp.WriteReply(s.bw, 220, "", s.srv.greeting)
	case e.Code >= 500:
		s.log.Info("rejected", "cmd", "connect", "code", 554, "reason", e.Reason)
		metrics.MessagesRejected.WithLabelValues(s.srv.Name, "milter").Inc()
		smtp.WriteReply(s.bw, 554, "", s.srv.host+" ESMTP not accepting connections")
		s.milterDenied = true
	default:
		s.log.Info("rejected", "cmd", "connect", "code", 421, "reason", e.Reason)
		metrics.MessagesRejected.WithLabelValues(s.srv.Name, "milter").Inc()
		smtp.WriteReply(s.bw, 421, "", s.srv.host+" Service unavailable - try again later")
		return false
	}
	return true
}

// errMilterDenied answers every command but QUIT after the milters
// rejected the connection (RFC 5321 §3.1).
var errMilterDenied = &smtp.Error{Code: 503, Enhanced: "5.7.0", Message: "Error: access denied"}

// milterHelo asks the milters about EHLO or HELO name; nil means go on.
func (s *session) milterHelo(name string) *smtp.Error {
	if s.milters == nil {
		return nil
	}
	var macros []milter.Macro
	if cs := s.tlsState; cs != nil {
		macros = append(macros, macro("{tls_version}", tlsVersion(cs.Version)),
			macro("{cipher}", tls.CipherSuiteName(cs.CipherSuite)))
		if len(cs.PeerCertificates) > 0 {
			c := cs.PeerCertificates[0]
			macros = append(macros, macro("{cert_subject}", c.Subject.String()),
				macro("{cert_issuer}", c.Issuer.String()))
		}
	}
	return s.milterReply(s.milters.Helo(name, macros), milter.StageHelo)
}

// tlsVersion names a TLS version as Sendmail's {tls_version} does
// ("TLSv1.3").
func tlsVersion(v uint16) string {
	return strings.Replace(tls.VersionName(v), "TLS ", "TLSv", 1)
}

// esmtpArgs formats MAIL or RCPT parameters as milters get them
// ("BODY=8BITMIME"), in a stable order.
func esmtpArgs(params smtp.Params) []string {
	var out []string
	for k, v := range params {
		if v != "" {
			k += "=" + v
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// milterMail asks the milters about MAIL FROM with the reverse-path
// from; nil means go on.
func (s *session) milterMail(from string, params smtp.Params) *smtp.Error {
	if s.milters == nil {
		return nil
	}
	macros := []milter.Macro{macro("{mail_addr}", from)}
	if s.authUser != "" {
		macros = append(macros, macro("{auth_type}", s.authMech), macro("{auth_authen}", s.authUser))
	}
	v := s.milters.Mail(from, esmtpArgs(params), macros)
	if e := s.milterReply(v, milter.StageMail); e != nil {
		s.milters.Abort()
		return e
	}
	s.milterDiscarding(v)
	return nil
}

// macro is one milter macro.
func macro(name, value string) milter.Macro { return milter.Macro{Name: name, Value: value} }

// milterDiscarding records a milter's Discard before the end of the
// message: the transaction goes on, and the message is dropped at its
// end.
func (s *session) milterDiscarding(v milter.Verdict) {
	if v.Action == milter.Discard {
		s.milters.Discarding(v)
	}
}

// milterRcpt asks the milters about one recipient Postern accepted; a
// refusal is for that recipient alone.
func (s *session) milterRcpt(addr string, params smtp.Params) *smtp.Error {
	if s.milters == nil {
		return nil
	}
	mailer := "smtp"
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && s.srv.Directory.IsLocalDomain(addr[i+1:]) {
		mailer = "local"
	}
	v := s.milters.Rcpt(addr, esmtpArgs(params), []milter.Macro{macro("{rcpt_addr}", addr), macro("{rcpt_mailer}", mailer)})
	s.milterDiscarding(v)
	return s.milterReply(v, milter.StageRcpt)
}

// milterData asks the milters about DATA, before the 354; id is the
// message's queue id (the {i} macro from now on).
func (s *session) milterData(id string) *smtp.Error {
	if s.milters == nil {
		return nil
	}
	v := s.milters.Data([]milter.Macro{macro("i", id)})
	s.milterDiscarding(v)
	return s.milterReply(v, milter.StageData)
}

// milterAbort ends the message in progress for the milters (resetTx).
func (s *session) milterAbort() {
	if s.milters != nil {
		s.milters.Abort()
	}
}

// closeMilters ends the milters' connections at the end of the session.
func (s *session) closeMilters() {
	if s.milters != nil {
		s.milters.Close()
		s.milters = nil
	}
}

// runMilters hands the message to the milters at the end of DATA and
// applies what they changed to env, hb and msg. It reports whether the
// message goes on to be spooled; when it does not, the session has
// answered (a refusal, or 250 for a discarded message).
func (s *session) runMilters(env *smtp.Envelope, hb *headerBuf, msg *smtp.Message) bool {
	if s.milters == nil {
		return true
	}
	h := milter.ParseHeader(hb.bytes())
	tx := &milterTx{s: s, env: env, body: msg.Body}
	macros := []milter.Macro{macro("i", env.ID)}
	v, err := s.milters.Message(h, tx, macros, macros)
	if err != nil {
		s.dataError(&sinkError{err}) // a new body the spool could not take, or the body unread
		return false
	}
	if e := s.milterReply(v, milter.StageEOM); e != nil {
		s.fail("milter", e)
		return false
	}
	if v.Action == milter.Discard {
		s.log.Info("message discarded", "id", env.ID, "milter", v.Milter, "from", env.From, "rcpts", len(env.Recipients))
		s.reply(250, "2.0.0", "OK queued as "+env.ID)
		return false
	}
	if len(env.Recipients) == 0 {
		s.fail("milter", &smtp.Error{Code: 554, Enhanced: "5.5.1", Message: "No valid recipients",
			Reason: "the milters removed every recipient"})
		return false
	}
	if h.Changed() {
		hb.replace(h.AppendTo(make([]byte, 0, h.Len())))
		msg.Header = hb.bytes()
	}
	msg.Body = tx.body
	if v.Quarantine != "" {
		reason := "milter " + v.QuarantineBy + ": " + v.Quarantine
		if env.Hold {
			reason = env.HoldReason + "; " + reason
		}
		env.Hold, env.HoldReason = true, reason
		s.log.Warn("message quarantined", "id", env.ID, "milter", v.QuarantineBy, "reason", v.Quarantine)
	}
	return true
}

// milterTx is the message at the end of DATA as the milters see and
// change it (milter.Transaction).
type milterTx struct {
	s    *session
	env  *smtp.Envelope
	body smtp.Body
	cur  *dataSink // the sink of body, when a milter replaced it
}

// Body returns a reader of the body as it stands.
func (t *milterTx) Body() io.Reader { return t.body.Reader() }

// BodySize returns the size of the body as it stands.
func (t *milterTx) BodySize() int64 { return t.body.Size() }

// NewBody starts a body in place of the message's: it goes through a
// sink of its own, in memory and past memoryMax to a spool file, as the
// client's did, and is released with the message (or when another
// replaces it).
func (t *milterTx) NewBody() (milter.BodyWriter, error) {
	d := t.s.newBodySink(t.env.ID)
	t.s.sink.more = append(t.s.sink.more, d)
	return &bodyWriter{t: t, d: d}, nil
}

// drop releases a body sink before the message ends.
func (t *milterTx) drop(d *dataSink) {
	more := t.s.sink.more
	if i := slices.Index(more, d); i >= 0 {
		t.s.sink.more = slices.Delete(more, i, i+1)
		d.release()
	}
}

// ChangeEnvelope applies one milter's envelope changes, all or none.
// Addresses are checked as the session checks the client's (SMTPUTF8 as
// the message says); the recipients may not pass Limits.MaxRecipients.
func (t *milterTx) ChangeEnvelope(c milter.EnvelopeChanges) error {
	from := t.env.From
	if c.From != nil {
		if *c.From != "" {
			a, err := t.checkAddr(*c.From)
			if err != nil {
				return err
			}
			from = a
		} else {
			from = ""
		}
		if len(c.FromArgs) > 0 {
			t.s.log.Info("milter sender parameters ignored", "id", t.env.ID, "args", strings.Join(c.FromArgs, " "))
		}
	}
	rcpts := slices.Clone(t.env.Recipients)
	for i, r := range c.Add {
		a, err := t.checkAddr(r)
		if err != nil {
			return err
		}
		if len(c.AddArgs[i]) > 0 {
			t.s.log.Info("milter recipient parameters ignored", "id", t.env.ID, "args", strings.Join(c.AddArgs[i], " "))
		}
		if !slices.Contains(rcpts, a) {
			rcpts = append(rcpts, a)
		}
	}
	for _, r := range c.Delete {
		a := normalizeAddr(r)
		rcpts = slices.DeleteFunc(rcpts, func(x string) bool { return strings.EqualFold(x, a) })
	}
	if len(rcpts) > t.s.lim.MaxRecipients {
		return errors.New(strconv.Itoa(len(rcpts)) + " recipients, more than the limit of " + strconv.Itoa(t.s.lim.MaxRecipients))
	}
	t.env.From, t.env.Recipients = from, rcpts
	return nil
}

// checkAddr checks an address from a milter and normalizes it as the
// Directory expects.
func (t *milterTx) checkAddr(s string) (string, error) {
	a, err := smtp.ParseAddress(s, t.env.SMTPUTF8)
	if err != nil {
		return "", err
	}
	if e := checkDomain(a.Domain, "5.1.3", "recipient"); e != nil {
		return "", e
	}
	return normalizeAddr(a.String()), nil
}

// bodyWriter is a new body on its way to its sink.
type bodyWriter struct {
	t *milterTx
	d *dataSink
}

func (w *bodyWriter) Write(p []byte) (int, error) { return w.d.Write(p) }

// Commit makes the sink's bytes the body; a body an earlier milter put
// in place is released.
func (w *bodyWriter) Commit() error {
	if w.t.cur != nil {
		w.t.drop(w.t.cur)
	}
	w.t.body, w.t.cur = w.d.body(), w.d
	return nil
}

// Discard gives the sink's memory and budget back now.
func (w *bodyWriter) Discard() { w.t.drop(w.d) }

// newBodySink returns a sink for a body only (no header section to
// find), for message id. It counts in the DataBudget's totals, not in
// the client's share: the client sent its message already, this one is
// a milter's.
func (s *session) newBodySink(id string) *dataSink {
	d := &dataSink{s: s, id: id, buf: s.srv.getBuf(), hdrEnd: 0, kept: true}
	var room [headroom]byte
	d.buf.Write(room[:])
	return d
}

// body returns what a body sink holds.
func (d *dataSink) body() smtp.Body {
	if d.file == nil {
		return smtp.BodyBytes(d.buf.Bytes()[headroom : headroom+d.n])
	}
	return smtp.BodyFile(d.file, 0, int64(d.n))
}

// milterObserver logs and counts what the session's milters do.
type milterObserver struct{ s *session }

// Failed logs a milter's failure with the session and counts it and the
// default action it takes.
func (o milterObserver) Failed(err *milter.Error, action milter.DefaultAction) {
	s := o.s
	s.log.LogAttrs(s.ctx, slog.LevelWarn, "milter failed", slog.String("milter", err.Milter),
		slog.String("stage", string(err.Stage)), slog.String("error", string(err.Kind)),
		slog.String("default_action", string(action)), slog.String("err", err.Err.Error()))
	metrics.MilterErrors.WithLabelValues(s.srv.Name, err.Milter, string(err.Stage), string(err.Kind)).Inc()
	metrics.MilterDefaultActions.WithLabelValues(s.srv.Name, err.Milter, string(action)).Inc()
}

// Decided counts a milter's decision; accepting and discarding are
// logged too (refusals are logged with their reply).
func (o milterObserver) Decided(name string, stage milter.Stage, a milter.Action, quarantine string) {
	s := o.s
	verdict := a.String()
	if quarantine != "" {
		verdict = "quarantine"
	}
	metrics.MilterVerdicts.WithLabelValues(s.srv.Name, name, string(stage), verdict).Inc()
	if a == milter.Accept || a == milter.Discard {
		s.log.LogAttrs(s.ctx, slog.LevelDebug, "milter decided", slog.String("milter", name),
			slog.String("stage", string(stage)), slog.String("verdict", verdict))
	}
}
