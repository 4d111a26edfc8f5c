// Package smtpd implements Postern's SMTP listeners and the session state
// machine for its three roles (mx, submission, submissions). It hands
// accepted mail to a Spooler and asks a Directory and an Authenticator;
// it defines those interfaces and knows nothing of their implementations.
//
// A Server serves one listener, in the manner of net/http's Server: set its
// fields, call Serve with a net.Listener, and stop it with Shutdown (or
// first with Drain, which lets the sessions in progress end on their own).
//
// A session's memory does not grow with the message it receives: past
// 128 KiB the message goes to a file from the Spooler as it arrives, and
// only its header section (bounded by Limits.MaxHeaderSize) stays in
// memory for the Filter; a DataBudget shared by the Servers bounds what
// all sessions hold at once (sink.go, budget.go).
package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"postern/internal/metrics"
	"postern/internal/milter"
	"postern/internal/smtp"
)

// Role is what a listener is for.
type Role int

// The three listener roles.
const (
	RoleMX          Role = iota // port 25: STARTTLS offered, no AUTH, local recipients only
	RoleSubmission              // port 587: STARTTLS, AUTH only after it, MAIL needs AUTH
	RoleSubmissions             // port 465: TLS from the first byte, MAIL needs AUTH
)

// String returns the role's name: "mx", "submission" or "submissions".
func (r Role) String() string {
	switch r {
	case RoleMX:
		return "mx"
	case RoleSubmission:
		return "submission"
	case RoleSubmissions:
		return "submissions"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// submission reports whether the role takes mail from users (AUTH needed).
func (r Role) submission() bool { return r == RoleSubmission || r == RoleSubmissions }

// Limits bounds a session. The limits that Postern's configuration sets
// ([limits]) mean what they say, 0 included: 0 is no limit, no delay or
// no timeout, never a default (the configuration resolves the defaults,
// in internal/config). The four limits no key sets (MaxCommandLine,
// MaxTextLine, MaxReceived, TLSHandshakeTimeout) are this package's: 0
// takes the default named.
type Limits struct {
	// MaxMessageSize is the largest message taken, in bytes; advertised
	// in SIZE (RFC 1870), and SIZE 0 when there is none.
	MaxMessageSize int64
	// MaxRecipients is the most recipients of one transaction; more get
	// 452 4.5.3 (RFC 5321 §4.5.3.1.8).
	MaxRecipients int
	// MaxErrors is the hard error limit: the error reply that makes
	// this many is followed by 421 4.7.0 and the close (Postfix's
	// smtpd_hard_error_limit).
	MaxErrors int
	// ErrorDelayAfter is the soft error limit: once a session has made
	// more errors than this, every reply waits ErrorDelay (Postfix's
	// smtpd_soft_error_limit).
	ErrorDelayAfter int
	// ErrorDelay is that wait (Postfix's smtpd_error_sleep_time).
	ErrorDelay     time.Duration
	MaxCommandLine int           // default 512 (RFC 5321 §4.5.3.1.4)
	MaxTextLine    int           // default 1000 (RFC 5321 §4.5.3.1.6)
	CommandTimeout time.Duration // for each command (RFC 5321 §4.5.3.2.7); also bounds each write
	DataTimeout    time.Duration // for each read in DATA (RFC 5321 §4.5.3.2.5)
	// DataTimeLimit bounds the whole of DATA, from the 354 to the final
	// dot, whatever the pace of the client. Past it the session gets
	// 421 4.4.2 and is closed.
	DataTimeLimit time.Duration
	// MaxHeaderSize bounds the header section of a message (the bytes
	// before the first empty line), which the session keeps in memory.
	// A larger one gets 552 5.3.4.
	MaxHeaderSize int
	// MaxReceived is the loop limit: a message with more Received
	// fields (with the session's own) gets 554 5.4.6 at the end of
	// DATA; default smtp.MaxReceived (50), the queue's own limit.
	MaxReceived   int
	AuthFailDelay time.Duration // before 535
	// TLSHandshakeTimeout bounds the TLS handshake (implicit TLS or after
	// STARTTLS); default 30s.
	TLSHandshakeTimeout time.Duration
}

// authLineMax is the longest AUTH command or continuation line accepted,
// CRLF included (RFC 4954 §4: at least 12288 octets).
const authLineMax = 12288

// withDefaults returns l with the package's defaults in the zero fields
// no configuration key sets.
func (l Limits) withDefaults() Limits {
	if l.MaxCommandLine <= 0 {
		l.MaxCommandLine = 512
	}
	if l.MaxTextLine <= 0 {
		l.MaxTextLine = 1000
	}
	if l.MaxReceived <= 0 {
		l.MaxReceived = smtp.MaxReceived
	}
	if l.TLSHandshakeTimeout <= 0 {
		l.TLSHandshakeTimeout = 30 * time.Second
	}
	return l
}

// deadline returns the deadline d from now, or no deadline (the zero
// time) when d is 0.
func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

// Server serves SMTP sessions on one listener. Set its fields before the
// first call to Serve and do not change them afterwards; a Server must not
// be copied after first use.
type Server struct {
	Name     string // listener name, for logs and metrics
	Role     Role   // what the listener is for
	Hostname string // used in the greeting, EHLO reply and Received; default "localhost"
	// PostmasterAddress is where RCPT TO:<Postmaster> (no domain, RFC 5321
	// §4.1.1.3) is delivered; default "postmaster@"+Hostname. In a
	// domain that is not local it is always accepted (RFC 5321 §4.5.1);
	// in a local one only when the Directory says it exists: accepted
	// for nobody, the mail would bounce later, to a sender who may be
	// forged.
	PostmasterAddress string
	// TLSConfig is used for STARTTLS (mx, submission) and implicit TLS
	// (submissions). Required on submission roles; on mx, nil means
	// STARTTLS is neither offered nor accepted.
	TLSConfig *tls.Config
	Limits    Limits
	Directory Directory     // required
	Auth      Authenticator // required for submission roles; ignored on mx
	Spool     Spooler       // required
	// Budget, when not nil, bounds the message data this Server's
	// sessions hold, together with those of the Servers sharing it
	// (see DataBudget).
	Budget *DataBudget
	Logger *slog.Logger     // nil: slog.Default()
	Now    func() time.Time // nil: time.Now; used for Received, Date and queue ids
	// After, when non-nil, replaces time.After for the waits a session
	// makes before its replies (Limits.ErrorDelay) and for the end of
	// the Screen's greeting delay or DNSBL timeout: tests inject a clock.
	After func(d time.Duration) <-chan time.Time
	// Filter, when non-nil, sees each message before it is spooled and
	// may add header fields, replace it or refuse it (see Filter).
	Filter Filter
	// Admitter, when non-nil, decides when a connection is accepted,
	// before any TLS byte and before the greeting, whether the client
	// may talk at all (bans, allow and deny lists, connection caps and
	// rates; see Admitter).
	Admitter Admitter
	// AuthGuard, when non-nil, is asked around each AUTH (see
	// AuthGuard); its delays replace Limits.AuthFailDelay.
	AuthGuard AuthGuard
	// SendLimiter, when non-nil, limits the sessions, messages and
	// recipients of authenticated users (see SendLimiter).
	SendLimiter SendLimiter
	// Screen, when non-nil, holds the checks an mx listener makes
	// before its greeting: greeting delay and pregreet, DNSBL (screen.go).
	Screen *Screen
	// Trace, when non-nil, names the clients whose whole dialogue is
	// logged (trace.go); its list may change while the server runs.
	Trace *Trace
	// Milters are the mail filters each session hands its events and
	// messages to, in order (milter.go, internal/milter); none when
	// empty. MilterOptions say how to reach them and tell the time
	// (zero: a net.Dialer and the real clock).
	Milters       []milter.Milter
	MilterOptions milter.Options

	// sleep, when set (by tests), replaces the waits before AUTH
	// replies: it is told each delay and reports whether the session
	// may go on (see waitDelay).
	sleep func(d time.Duration) bool

	initOnce   sync.Once
	lim        Limits
	log        *slog.Logger
	host       string   // Hostname or its default
	greeting   string   // the 220 text
	postmaster string   // PostmasterAddress or its default
	ehlo       []string // EHLO keywords common to every session, hostname first
	// live is what SetLimits changes: the limits and EHLO keywords each
	// new session takes.
	live atomic.Pointer[liveLimits]

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   atomic.Bool   // Shutdown: sessions are told 421 4.3.2
	stopped   atomic.Bool   // Drain or Shutdown: no more accepting
	done      chan struct{} // closed by Shutdown

	readers sync.Pool // *bufio.Reader, 4 KiB
	writers sync.Pool // *bufio.Writer, 4 KiB
	bufs    sync.Pool // *bytes.Buffer for DATA

	idleWaits atomic.Int64 // waits for a command without a read buffer (waitIdle), for tests

	mConns    prometheus.Counter
	mSessions prometheus.Gauge
	mAccepted prometheus.Counter
}

// bufSize is the size of each session's pooled reader and writer.
const bufSize = 4096

// maxPooledBuf is the largest DATA buffer returned to the pool; larger
// ones are left to the garbage collector so that one big message does
// not pin its memory.
const maxPooledBuf = 1 << 20

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.lim = s.Limits.withDefaults()
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.Default()
		}
		s.log = s.log.With("listener", s.Name)
		s.host = s.Hostname
		if s.host == "" {
			s.host = "localhost"
		}
		s.greeting = s.host + " ESMTP Postern"
		s.postmaster = s.PostmasterAddress
		if s.postmaster == "" {
			s.postmaster = "postmaster@" + s.host
		}
		s.ehlo = []string{
			s.host,
			"PIPELINING",
			"SIZE " + strconv.FormatInt(s.lim.MaxMessageSize, 10),
			"8BITMIME",
			"CHUNKING", // RFC 3030 §2; BINARYMIME is not offered (bdat.go)
			"ENHANCEDSTATUSCODES",
			"DSN", // RFC 3461 §3
			"SMTPUTF8",
		}
		s.live.Store(&liveLimits{lim: s.lim, ehlo: s.ehlo})
		s.listeners = make(map[net.Listener]struct{})
		s.sessions = make(map[*session]struct{})
		s.done = make(chan struct{})
		s.mConns = metrics.Connections.WithLabelValues(s.Name)
		s.mSessions = metrics.Sessions.WithLabelValues(s.Name)
		s.mAccepted = metrics.MessagesAccepted.WithLabelValues(s.Name)
	})
}

// liveLimits is the Limits a session starts with, and its EHLO keywords
// (SIZE follows MaxMessageSize).
type liveLimits struct {
	lim  Limits
	ehlo []string
}

// SetLimits makes l the limits of the sessions that start from now on
// (a reload of the configuration), SIZE in the EHLO reply included; the
// sessions in progress keep the limits they started with.
func (s *Server) SetLimits(l Limits) {
	s.init()
	n := &liveLimits{lim: l.withDefaults(), ehlo: slices.Clone(s.ehlo)}
	for i, k := range n.ehlo {
		if strings.HasPrefix(k, "SIZE ") {
			n.ehlo[i] = "SIZE " + strconv.FormatInt(n.lim.MaxMessageSize, 10)
		}
	}
	s.live.Store(n)
}

// check reports a Server whose required fields are missing.
func (s *Server) check() error {
	switch {
	case s.Spool == nil:
		return errors.New("smtpd: Server.Spool is nil")
	case s.Directory == nil:
		return errors.New("smtpd: Server.Directory is nil")
	case s.Role.submission() && s.TLSConfig == nil:
		return fmt.Errorf("smtpd: listener %q: role %s needs a TLSConfig", s.Name, s.Role)
	case s.Role.submission() && s.Auth == nil:
		return fmt.Errorf("smtpd: listener %q: role %s needs an Authenticator", s.Name, s.Role)
	case s.Role < RoleMX || s.Role > RoleSubmissions:
		return fmt.Errorf("smtpd: listener %q: unknown role %d", s.Name, int(s.Role))
	}
	return nil
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// timer returns a channel that receives once d has passed on the
// Server's clock (After), and the function that releases it.
func (s *Server) timer(d time.Duration) (<-chan time.Time, func()) {
	if s.After != nil {
		return s.After(d), func() {}
	}
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Serve accepts connections on l and serves each in its own goroutine
// until Shutdown; it then returns ErrServerClosed. It closes l when it
// returns. Temporary accept errors are retried with a growing delay; any
// other accept error is returned.
func (s *Server) Serve(l net.Listener) error {
	s.init()
	if err := s.check(); err != nil {
		l.Close()
		return err
	}
	if !s.trackListener(l, true) {
		l.Close()
		return ErrServerClosed
	}
	defer s.trackListener(l, false)
	defer l.Close()

	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.stopped.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept error; retrying", "err", err, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return ErrServerClosed
				}
				continue
			}
			return fmt.Errorf("smtpd: accept on %s: %w", s.Name, err)
		}
		delay = 0
		s.mConns.Inc()
		sess := s.newSession(c)
		if !s.trackSession(sess, true) {
			c.Close()
			sess.release()
			continue
		}
		go sess.serve()
	}
}

// serveConn serves one connection in the calling goroutine (for tests
// and fuzzing; Serve uses the same path).
func (s *Server) serveConn(c net.Conn) {
	s.init()
	sess := s.newSession(c)
	if !s.trackSession(sess, true) {
		c.Close()
		sess.release()
		return
	}
	sess.serve()
}

func (s *Server) trackListener(l net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.stopped.Load() {
			return false
		}
		s.listeners[l] = struct{}{}
	} else {
		delete(s.listeners, l)
	}
	return true
}

func (s *Server) trackSession(sess *session, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.closing.Load() {
			return false
		}
		s.sessions[sess] = struct{}{}
	} else {
		delete(s.sessions, sess)
	}
	return true
}

// Shutdown stops accepting, lets sessions finish the transaction in hand,
// and when ctx ends closes the rest (after 421 4.3.2). It returns ctx.Err()
// when sessions had to be cut.
//
// Sessions waiting for a command are told 421 4.3.2 at once and closed;
// a session reading DATA or waiting for the Spooler finishes that message
// and then gets 421 4.3.2 instead of its next command. When ctx ends, the
// sessions left get 421 4.3.2 and are closed at once, and their pending
// Directory and Spooler calls see their context canceled.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.stopped.Store(true)
	if !s.closing.Swap(true) {
		close(s.done)
	}
	for l := range s.listeners {
		l.Close()
	}
	for sess := range s.sessions {
		sess.interruptIfIdle()
	}
	s.mu.Unlock()

	err := s.waitUntil(ctx, func() bool { return len(s.sessions) == 0 })
	if err == nil {
		return nil
	}
	s.mu.Lock()
	cut := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		cut = append(cut, sess)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, sess := range cut {
		wg.Go(sess.kill)
	}
	wg.Wait()
	return err
}

// Drain stops accepting connections and waits, until ctx ends, for the
// sessions in progress to end on their own. Unlike Shutdown it
// interrupts nothing: a session accepted before Drain goes on as usual
// (TLS handshake, greeting, commands, whole transactions) until the
// client quits or a limit ends it. Drain returns nil once every session
// has ended and every Serve has returned (with ErrServerClosed), or
// ctx.Err() with the remaining sessions still open: call Shutdown then
// to end them. A drained Server does not serve again.
//
// A graceful restart drains: the listening socket stays open in the new
// process, which accepts the connections that Drain no longer does.
func (s *Server) Drain(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.stopped.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()

	// A Serve still running may hold a connection it accepted but has
	// not tracked yet: wait for the listeners' Serve to return too.
	return s.waitUntil(ctx, func() bool { return len(s.sessions)+len(s.listeners) == 0 })
}

// waitUntil checks done, with mu held, every 10 ms until it is true
// (nil) or ctx ends (ctx.Err()).
func (s *Server) waitUntil(ctx context.Context, done func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		ok := done()
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Server) getReader(r *connReader) *bufio.Reader {
	if v := s.readers.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufSize)
}

func (s *Server) putReader(br *bufio.Reader) {
	br.Reset(nil)
	s.readers.Put(br)
}

func (s *Server) getWriter(w *connWriter) *bufio.Writer {
	if v := s.writers.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, bufSize)
}

func (s *Server) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	s.writers.Put(bw)
}

func (s *Server) getBuf() *bytes.Buffer {
	if v := s.bufs.Get(); v != nil {
		b := v.(*bytes.Buffer)
		b.Reset()
		return b
	}
	return new(bytes.Buffer)
}

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		s.bufs.Put(b)
	}
}
