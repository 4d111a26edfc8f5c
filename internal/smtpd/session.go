package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"postern/internal/metrics"
	"postern/internal/milter"
	"postern/internal/smtp"
)

// errShutdown is returned by readLine when the server is shutting down.
var errShutdown = errors.New("smtpd: shutting down")

// session is one SMTP connection. Everything but mu, idle, raw and conn
// (which Shutdown reads under mu) belongs to the session's own goroutine.
type session struct {
	srv    *Server
	lim    *Limits  // the Server's when the session started (SetLimits)
	ehlo   []string // the EHLO keywords that go with lim
	id     string
	raw    net.Conn // the accepted connection; deadlines and hard close
	conn   net.Conn // raw, or the *tls.Conn on it; set under mu
	cr     connReader
	cw     connWriter
	br     *bufio.Reader
	peek   [1]byte // the byte waitIdle reads
	bw     *bufio.Writer
	rd     *smtp.Reader
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	remote netip.AddrPort
	start  time.Time

	tlsState *tls.ConnectionState // nil before TLS
	helo     string               // the EHLO/HELO argument's first word
	greeted  bool                 // EHLO or HELO seen (since the last STARTTLS)
	esmtp    bool                 // it was EHLO
	authUser string               // "" until AUTH succeeds
	tx       transaction
	verb     string    // the command being handled, for logs
	nerrors  int       // replies >= 400 sent
	nmsgs    int       // messages accepted
	quit     bool      // close after flushing
	hdr      []byte    // scratch for the headers prepended to a message
	sink     *dataSink // where DATA goes (sink.go): made at the first DATA, reused
	ehloBuf  [12]string
	hooks    sessionHooks // gate, guard and send-limit state (admission.go)
	trace    *tracer      // the protocol trace; nil when not traced (trace.go)
	authMech string       // the SASL mechanism of authUser, for milters

	bdat         chunking      // the message in BDAT chunks (bdat.go)
	milters      *milter.Chain // the Server's Milters for this session (milter.go); nil when none
	milterDenied bool          // a milter rejected the connection: 503 to all but QUIT

	mu   sync.Mutex
	idle bool // waiting for a command: Shutdown may interrupt the read
}

// transaction is the state between MAIL and the end of DATA (RFC 5321 §3.3).
type transaction struct {
	active   bool
	from     string
	smtputf8 bool
	body     string
	rcpts    []string
	refused  int  // RCPTs refused in this transaction
	excess   int  // RCPTs past Limits.MaxRecipients in this transaction
	reqTLS   bool // MAIL FROM carried REQUIRETLS (RFC 8689)

	dsn txDSN // the DSN parameters (RFC 3461; dsn.go)
}

// connReader reads from the session's current conn; during DATA it
// pushes the read deadline forward before each read (RFC 5321 §4.5.3.2.5).
type connReader struct {
	s      *session
	inData bool // reading DATA
	// dataTimeout is Limits.DataTimeout while reading DATA.
	dataTimeout time.Duration
	// dataDeadline ends DATA whatever the pace of the client
	// (Limits.DataTimeLimit); zero outside DATA or without a limit.
	dataDeadline time.Time
	// pending and err are what waitIdle read while the session had no
	// buffered reader: returned first, then reading goes on.
	pending []byte
	err     error
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(r.pending) > 0 {
		n := copy(p, r.pending)
		r.pending = r.pending[n:]
		return n, nil
	}
	if err := r.err; err != nil {
		r.err = nil
		return 0, err
	}
	if r.inData {
		d := deadline(r.dataTimeout)
		if !r.dataDeadline.IsZero() && (d.IsZero() || r.dataDeadline.Before(d)) {
			d = r.dataDeadline
		}
		r.s.raw.SetReadDeadline(d)
	}
	return r.s.conn.Read(p)
}

// connWriter writes to the session's current conn with a deadline.
type connWriter struct{ s *session }

func (w *connWriter) Write(p []byte) (int, error) {
	if t := w.s.trace; t != nil {
		t.out(p)
	}
	w.s.raw.SetWriteDeadline(deadline(w.s.lim.CommandTimeout))
	return w.s.conn.Write(p)
}

func (s *Server) newSession(c net.Conn) *session {
	live := s.live.Load()
	sess := &session{
		srv:   s,
		lim:   &live.lim,
		ehlo:  live.ehlo,
		id:    smtp.NewID(time.Now()),
		raw:   c,
		conn:  c,
		start: time.Now(),
	}
	sess.cr.s = sess
	sess.cw.s = sess
	sess.br = s.getReader(&sess.cr)
	sess.bw = s.getWriter(&sess.cw)
	sess.rd = smtp.NewReader(sess.br)
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	sess.log = s.log.With("session", sess.id)
	sess.ctx = withLogger(sess.ctx, sess.log) // for the Filter's events (SessionLogger)
	// The remote address is set by prelude, in the session's goroutine:
	// a PROXY protocol header must not be waited for in the accept loop.
	return sess
}

// release returns the session's buffers to the pools.
func (s *session) release() {
	s.dropChunks()
	s.closeMilters()
	s.cancel()
	s.hooks.done()
	if s.br != nil {
		s.srv.putReader(s.br)
		s.br = nil
	}
	if s.bw != nil {
		s.srv.putWriter(s.bw)
		s.bw = nil
	}
}

// interruptIfIdle makes a session that waits for a command stop waiting;
// it then answers 421 4.3.2. Called by Shutdown.
func (s *session) interruptIfIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle {
		s.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

// kill cuts the session. Called by Shutdown when its ctx ends.
// It tells the client 421 4.3.2 first (RFC 5321 §3.8: a server may close
// at any time after a 421), written straight to the connection since the
// session's goroutine may be busy; the client may not be reading, so kill
// waits at most killWait for that write before it closes.
func (s *session) kill() {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.WriteString(conn, "421 4.3.2 Service shutting down\r\n")
	}()
	t := time.NewTimer(killWait)
	select {
	case <-done:
	case <-t.C:
	}
	t.Stop()
	s.raw.Close() // before cancel, so that nothing more reaches the client
	s.cancel()
}

// killWait bounds how long kill waits to write its 421.
const killWait = 100 * time.Millisecond

func (s *session) serve() {
	s.srv.mSessions.Inc()
	defer s.finish()
	if !s.prelude() { // PROXY header; sets s.remote (screen.go)
		return
	}
	if !s.admit() { // the admission gate, before any TLS byte (admission.go)
		return
	}
	s.log.Info("session start", "remote", s.remote,
		"tls", s.srv.Role == RoleSubmissions)
	s.startTrace() // trace.go
	if s.srv.Role == RoleSubmissions && !s.handshake() {
		return
	}
	if !s.screen() { // greeting delay, pregreet, DNSBL on mx (screen.go)
		return
	}
	if s.srv.closing.Load() {
		s.fail("shutdown", &smtp.Error{Code: 421, Enhanced: "4.3.2", Message: "Service shutting down"})
		return
	}
	if !s.greet() { // 220, or what the milters decided (milter.go)
		return
	}
	for !s.quit {
		// RFC 2920 §3.2: send the replies as a batch, when the next
		// read would wait for the client.
		waits := !s.lineBuffered()
		if waits {
			if s.flush() != nil {
				return
			}
			// An idle session holds no write buffer.
			s.srv.putWriter(s.bw)
			s.bw = nil
		}
		line, err := s.readLine(authLineMax)
		if waits {
			s.bw = s.srv.getWriter(&s.cw)
		}
		if (err == nil || isLineError(err)) && !s.slowDown() {
			return
		}
		if err != nil {
			s.readError(err)
			continue
		}
		if s.trace != nil {
			s.trace.in(line)
		}
		s.handle(line)
	}
}

// slowDown makes a session that has made more than ErrorDelayAfter
// errors wait ErrorDelay before it answers its next command, as
// Postfix's smtpd_soft_error_limit does: a client that errs that much
// is slowed down before it is cut at MaxErrors. It sends the replies
// written so far first. It reports false, after answering 421 4.3.2,
// when the server shut down or the session was cut meanwhile.
func (s *session) slowDown() bool {
	if s.nerrors <= s.lim.ErrorDelayAfter || s.lim.ErrorDelay <= 0 {
		return true
	}
	if s.flush() != nil {
		return false
	}
	after := time.After
	if s.srv.After != nil {
		after = s.srv.After
	}
	select {
	case <-after(s.lim.ErrorDelay):
		return true
	case <-s.ctx.Done():
	case <-s.srv.done:
	}
	s.fail("shutdown", &smtp.Error{Code: 421, Enhanced: "4.3.2", Message: "Service shutting down"})
	return false
}

func (s *session) finish() {
	s.flush()
	if tc, ok := s.conn.(*tls.Conn); ok {
		s.raw.SetWriteDeadline(time.Now().Add(time.Second))
		tc.Close()
	} else {
		s.lingeringClose()
	}
	s.srv.trackSession(s, false)
	s.srv.mSessions.Dec()
	s.log.Info("session end", "duration", time.Since(s.start).Round(time.Millisecond),
		"messages", s.nmsgs, "errors", s.nerrors)
	s.release()
}

// lingerTime bounds how long a closing plaintext session reads what the
// client still sends; lingerBytes bounds how much.
const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 64 << 10
)

// lingeringClose closes a plaintext TCP session so that its last reply
// (221, or a 421) reaches the client: closing a socket with unread input
// makes the kernel send a reset, which can destroy replies in flight. It
// half-closes, reads briefly what the client still sends, then closes.
func (s *session) lingeringClose() {
	// *net.TCPConn, or a *proxyproto.Conn on one.
	if tc, ok := s.raw.(interface {
		net.Conn
		CloseWrite() error
	}); ok && tc.CloseWrite() == nil {
		tc.SetReadDeadline(time.Now().Add(lingerTime))
		io.CopyN(io.Discard, tc, lingerBytes)
	}
	s.raw.Close()
}

// lineBuffered reports whether a whole line is already buffered, so that
// reading it will not wait for the client.
func (s *session) lineBuffered() bool {
	n := s.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

// flush sends the replies written so far.
func (s *session) flush() error {
	if s.bw == nil || s.bw.Buffered() == 0 {
		return nil
	}
	return s.bw.Flush()
}

// readLine reads a command (or AUTH continuation) line of at most max
// octets with CRLF. The session counts as idle meanwhile: Shutdown
// interrupts the read and readLine then returns errShutdown.
func (s *session) readLine(max int) ([]byte, error) {
	s.mu.Lock()
	if s.srv.closing.Load() {
		s.mu.Unlock()
		return nil, errShutdown
	}
	s.idle = true
	s.raw.SetReadDeadline(deadline(s.lim.CommandTimeout))
	s.mu.Unlock()
	if s.tlsState != nil && s.br.Buffered() == 0 {
		s.waitIdle()
	}
	line, err := s.rd.ReadLine(max)
	s.mu.Lock()
	s.idle = false
	s.mu.Unlock()
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && s.srv.closing.Load() {
		err = errShutdown
	}
	return line, err
}

// waitIdle gives the session's read buffer back to the pool while the
// client has sent nothing more, waits for one byte, and takes a buffer
// again, which returns that byte (or the read's error) first. An idle
// session then holds no 4 KiB buffer: 40 MB of heap at 10,000 idle
// sessions. Only TLS sessions do it: crypto/tls buffers the record, so
// reading one byte costs no system call, where a plaintext connection
// would pay a second read for every command.
func (s *session) waitIdle() {
	s.srv.putReader(s.br)
	s.br = nil
	n, err := s.conn.Read(s.peek[:])
	s.cr.pending, s.cr.err = s.peek[:n], err
	s.br = s.srv.getReader(&s.cr)
	s.rd.Reset(s.br)
	s.srv.idleWaits.Add(1)
}

// readError answers a failed command read. Hostile lines get a 500 and
// the session goes on; a timeout or shutdown gets 421 and ends it; a
// closed connection ends it quietly.
func (s *session) readError(err error) {
	if s.lineError("", err) {
		return
	}
	switch {
	case errors.Is(err, errShutdown):
		s.fail("shutdown", &smtp.Error{Code: 421, Enhanced: "4.3.2", Message: "Service shutting down"})
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.fail("timeout", &smtp.Error{Code: 421, Enhanced: "4.4.2", Message: "Timeout"})
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("client closed", "err", err)
	default:
		s.log.Info("read error", "err", err)
	}
	s.quit = true
}

// isLineError reports whether err is a hostile command line that
// lineError answers.
func isLineError(err error) bool {
	return errors.Is(err, smtp.ErrLineTooLong) || errors.Is(err, smtp.ErrBareLF) ||
		errors.Is(err, smtp.ErrBareCR) || errors.Is(err, smtp.ErrNUL)
}

// lineError answers a hostile line (too long, bare LF or CR, NUL) with a
// 500 and reports true; other errors are left to the caller. A non-empty
// tooLongEnh replaces 5.5.2 for overlong lines (AUTH uses 5.5.6).
func (s *session) lineError(tooLongEnh string, err error) bool {
	switch {
	case errors.Is(err, smtp.ErrLineTooLong):
		if tooLongEnh == "" {
			tooLongEnh = "5.5.2"
		}
		s.fail("line_too_long", &smtp.Error{Code: 500, Enhanced: tooLongEnh, Message: "Line too long"})
	case errors.Is(err, smtp.ErrBareLF):
		// RFC 5321 §2.3.8
		s.fail("bare_lf", &smtp.Error{Code: 500, Enhanced: "5.5.2", Message: "Bare LF not allowed (RFC 5321 section 2.3.8)"})
	case errors.Is(err, smtp.ErrBareCR):
		s.fail("bare_cr", &smtp.Error{Code: 500, Enhanced: "5.5.2", Message: "Bare CR not allowed (RFC 5321 section 2.3.8)"})
	case errors.Is(err, smtp.ErrNUL):
		s.fail("nul", &smtp.Error{Code: 500, Enhanced: "5.5.2", Message: "NUL not allowed"})
	default:
		return false
	}
	return true
}

// reply writes a positive or intermediate reply (code < 400).
func (s *session) reply(code int, enhanced, text string) {
	smtp.WriteReply(s.bw, code, enhanced, text)
}

// fail writes an error reply, logs and counts it; after MaxErrors
// errors it adds 421 4.7.0 and ends the session. label is the short
// reason for the rejections metric.
func (s *session) fail(label string, e *smtp.Error) {
	s.refuse(label, e)
	s.nerrors++
	if e.Code == 421 {
		s.quit = true
		return
	}
	if s.lim.MaxErrors > 0 && s.nerrors >= s.lim.MaxErrors && !s.quit {
		s.fail("too_many_errors", &smtp.Error{Code: 421, Enhanced: "4.7.0", Message: "Too many errors"})
	}
}

// refuse writes an error reply, logs it and counts it in the rejections
// metric, without counting it against the session's error limit (fail
// does that too).
func (s *session) refuse(label string, e *smtp.Error) {
	smtp.WriteReply(s.bw, e.Code, e.Enhanced, e.Message)
	reason := e.Reason
	if reason == "" {
		reason = e.Message
	}
	s.log.Info("rejected", "cmd", s.verb, "code", e.Code, "enhanced", e.Enhanced, "reason", reason)
	metrics.MessagesRejected.WithLabelValues(s.srv.Name, label).Inc()
}

// failErr answers with err when it is an *smtp.Error (as the parsers
// return), else with 451 4.3.0.
func (s *session) failErr(label string, err error) {
	var e *smtp.Error
	if errors.As(err, &e) {
		s.fail(label, e)
		return
	}
	s.fail("local_error", &smtp.Error{Code: 451, Enhanced: "4.3.0", Message: "Local error, try again", Reason: err.Error()})
}

// errSeq is a 503 5.5.1 (bad sequence of commands, RFC 5321 §4.3.2).
func errSeq(msg string) *smtp.Error {
	return &smtp.Error{Code: 503, Enhanced: "5.5.1", Message: msg}
}

// errSyntax is a 501 5.5.4 (invalid arguments).
func errSyntax(msg string) *smtp.Error {
	return &smtp.Error{Code: 501, Enhanced: "5.5.4", Message: msg}
}

// hasAuthVerb reports whether line starts with the verb AUTH, whose lines
// may be longer than other commands' (RFC 4954 §4).
func hasAuthVerb(line []byte) bool {
	return len(line) >= 4 && bytes.EqualFold(line[:4], []byte("AUTH")) &&
		(len(line) == 4 || line[4] == ' ')
}

// handle runs one command line.
func (s *session) handle(line []byte) {
	s.verb = ""
	if len(line)+2 > s.lim.MaxCommandLine+dsnLineExtra(line) && !hasAuthVerb(line) {
		s.fail("line_too_long", &smtp.Error{Code: 500, Enhanced: "5.5.2", Message: "Line too long"})
		return
	}
	if looksLikeHTTP(line) { // a cross-protocol request (http.go)
		s.cutHTTP()
		return
	}
	cmd, err := smtp.ParseCommand(line)
	if err != nil {
		s.failErr("syntax", err)
		return
	}
	s.verb = cmd.Verb
	if s.milterDenied && cmd.Verb != "QUIT" {
		s.fail("milter", errMilterDenied)
		return
	}
	if s.bdatBlocks(cmd.Verb) { // RCPT and DATA after BDAT (bdat.go)
		return
	}
	switch cmd.Verb {
	case "EHLO":
		s.cmdHelo(cmd.Arg, true)
	case "HELO":
		s.cmdHelo(cmd.Arg, false)
	case "MAIL":
		s.cmdMail(cmd.Arg)
	case "RCPT":
		s.cmdRcpt(cmd.Arg)
	case "DATA":
		s.cmdData(cmd.Arg)
	case "BDAT":
		s.cmdBdat(cmd.Arg)
	case "RSET":
		if cmd.Arg != "" {
			s.fail("syntax", errSyntax("Syntax: RSET"))
			return
		}
		s.resetTx()
		s.reply(250, "2.0.0", "OK")
	case "NOOP":
		s.reply(250, "2.0.0", "OK")
	case "QUIT":
		s.reply(221, "2.0.0", "Bye")
		s.quit = true
	case "STARTTLS":
		s.cmdStartTLS(cmd.Arg)
	case "AUTH":
		s.cmdAuth(cmd.Arg)
	case "VRFY":
		if cmd.Arg == "" {
			s.fail("syntax", errSyntax("Syntax: VRFY string"))
			return
		}
		// RFC 5321 §3.5.3: neither verified nor denied.
		s.reply(252, "2.5.0", "Cannot VRFY user")
	case "EXPN":
		s.fail("not_implemented", &smtp.Error{Code: 502, Enhanced: "5.5.1", Message: "EXPN not supported"})
	case "HELP":
		s.reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH HELP")
	case "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "VERB", "ONEX":
		s.fail("not_implemented", &smtp.Error{Code: 502, Enhanced: "5.5.1", Message: "Command not implemented"})
	default:
		s.fail("unrecognized", &smtp.Error{Code: 500, Enhanced: "5.5.1", Message: "Command unrecognized"})
	}
}

// cmdHelo handles EHLO and HELO (RFC 5321 §4.1.1.1); both reset any
// transaction.
func (s *session) cmdHelo(arg string, esmtp bool) {
	arg = strings.TrimLeft(arg, " ")
	if i := strings.IndexByte(arg, ' '); i >= 0 {
		arg = arg[:i]
	}
	if arg == "" {
		if esmtp {
			s.fail("syntax", errSyntax("Syntax: EHLO hostname"))
		} else {
			s.fail("syntax", errSyntax("Syntax: HELO hostname"))
		}
		return
	}
	s.resetTx()
	if e := s.milterHelo(arg); e != nil {
		// As Postfix: the refused EHLO forgets the one before.
		s.greeted, s.helo = false, ""
		s.fail("milter", e)
		return
	}
	s.helo = arg
	s.greeted = true
	s.esmtp = esmtp
	if !esmtp {
		s.reply(250, "", s.srv.host)
		return
	}
	lines := append(s.ehloBuf[:0], s.ehlo...)
	if s.tlsState == nil && s.srv.TLSConfig != nil && s.srv.Role != RoleSubmissions {
		lines = append(lines, "STARTTLS") // RFC 3207 §4
	}
	if s.offersRequireTLS() {
		lines = append(lines, "REQUIRETLS") // RFC 8689 §4
	}
	if mechs := s.mechanisms(); len(mechs) > 0 {
		lines = append(lines, "AUTH "+strings.Join(mechs, " ")) // RFC 4954 §3
	}
	smtp.WriteReply(s.bw, 250, "", lines...)
}

// resetTx abandons the mail transaction, if any (RFC 5321 §4.1.1.5).
func (s *session) resetTx() {
	s.dropChunks()
	s.tx = transaction{rcpts: s.tx.rcpts[:0]}
	s.milterAbort()
}

// cmdStartTLS handles STARTTLS (RFC 3207).
func (s *session) cmdStartTLS(arg string) {
	switch {
	case arg != "":
		s.fail("syntax", errSyntax("Syntax: STARTTLS")) // RFC 3207 §4
		return
	case s.tlsState != nil || s.srv.Role == RoleSubmissions:
		s.fail("sequence", errSeq("TLS already active"))
		return
	case s.srv.TLSConfig == nil:
		s.fail("tls_unavailable", &smtp.Error{Code: 454, Enhanced: "4.7.0", Message: "TLS not available"})
		return
	}
	s.reply(220, "2.0.0", "Ready to start TLS")
	if s.flush() != nil {
		s.quit = true
		return
	}
	if !s.handshake() {
		s.quit = true
		return
	}
	// RFC 3207 §4.2: the client must start over; forget all it told us.
	s.greeted, s.esmtp, s.helo, s.authUser = false, false, "", ""
	s.resetTx()
}

// handshake runs the server side of a TLS handshake on the raw
// connection and switches the session to it. Everything the client sent
// in plaintext and the session has not read yet is discarded (RFC 3207
// §4.2): reading continues on a fresh buffered reader.
func (s *session) handshake() bool {
	tc := tls.Server(s.raw, s.srv.TLSConfig)
	s.raw.SetDeadline(time.Now().Add(s.lim.TLSHandshakeTimeout))
	err := tc.Handshake()
	s.raw.SetDeadline(time.Time{})
	if err != nil {
		metrics.TLSHandshakes.WithLabelValues(s.srv.Name, "unknown", "error").Inc()
		s.log.Info("tls handshake failed", "remote", s.remote, "err", err)
		return false
	}
	// The client's Finished is still unacknowledged: acknowledge it
	// now, or a client with Nagle's algorithm waits for the delayed ACK
	// before it sends its EHLO (see ackNow).
	ackNow(s.raw)
	cs := tc.ConnectionState()
	s.tlsState = &cs
	s.mu.Lock()
	s.conn = tc
	s.mu.Unlock()
	old := s.br
	s.br = s.srv.getReader(&s.cr)
	s.srv.putReader(old)
	s.rd = smtp.NewReader(s.br)
	version := tls.VersionName(cs.Version)
	metrics.TLSHandshakes.WithLabelValues(s.srv.Name, strings.TrimPrefix(version, "TLS "), "ok").Inc()
	s.log.Info("tls", "version", version, "cipher", tls.CipherSuiteName(cs.CipherSuite), "sni", cs.ServerName)
	return true
}

// mechanisms returns the SASL mechanisms to advertise: none on mx, none
// before TLS (RFC 4954 §4 and DESIGN.md: no secret before encryption).
func (s *session) mechanisms() []string {
	if !s.srv.Role.submission() || s.srv.Auth == nil || s.tlsState == nil {
		return nil
	}
	return s.srv.Auth.Mechanisms(s.tlsState)
}
