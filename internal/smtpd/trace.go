package smtpd

// The protocol trace: the whole SMTP dialogue of chosen clients in the
// log, as Postfix's debug_peer_list and mox's trace level give it. A
// TraceList names the clients, by address or prefix, or by the user
// name they log in with or claim at AUTH; Trace holds the list a
// running server uses, so that a reload can swap it. Each line the
// client sends and each reply line is one INFO event "smtp trace" with
// from=client or from=server. Secrets never reach it: AUTH's initial
// response and every later AUTH line from the client are replaced by
// their length, and the server's 334 challenges likewise; the message
// data after 354 is not read through the trace at all (one line says
// it was left out).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"unicode/utf8"
)

// TraceList is a parsed list of the clients to trace. The zero value
// and nil trace nobody.
type TraceList struct {
	prefixes []netip.Prefix
	users    map[string]bool // lower-cased
}

// maxTraceEntry bounds an entry (a user name is at most an address).
const maxTraceEntry = 320

// ParseTraceList parses entries: each is an IP address ("192.0.2.7",
// "2001:db8::1"), a prefix ("192.0.2.0/24", "2001:db8::/48"), or else a
// user name as a client logs in or claims to at AUTH
// ("alice@example.com"), matched ignoring case. An entry must not be
// empty, longer than 320 bytes, or hold spaces or control characters.
func ParseTraceList(entries []string) (*TraceList, error) {
	l := &TraceList{}
	for _, e := range entries {
		if p, err := netip.ParsePrefix(e); err == nil {
			l.prefixes = append(l.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			l.prefixes = append(l.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		if err := checkTraceUser(e); err != nil {
			return nil, fmt.Errorf("smtpd: trace entry %q: %w", e, err)
		}
		if l.users == nil {
			l.users = map[string]bool{}
		}
		l.users[strings.ToLower(e)] = true
	}
	return l, nil
}

// checkTraceUser checks an entry that is not an address or prefix.
func checkTraceUser(e string) error {
	switch {
	case e == "":
		return errors.New("empty")
	case len(e) > maxTraceEntry:
		return fmt.Errorf("longer than %d bytes", maxTraceEntry)
	case !utf8.ValidString(e):
		return errors.New("not UTF-8")
	case strings.Contains(e, "/"):
		return errors.New("not a prefix, nor a user name")
	}
	for _, r := range e {
		if r <= ' ' || r == 0x7f {
			return errors.New("a space or control character")
		}
	}
	return nil
}

// Len returns the number of entries.
func (l *TraceList) Len() int {
	if l == nil {
		return 0
	}
	return len(l.prefixes) + len(l.users)
}

// MatchAddr reports whether a, a client's address, is traced.
func (l *TraceList) MatchAddr(a netip.Addr) bool {
	if l == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// MatchUser reports whether user, a user name logged in or claimed, is
// traced.
func (l *TraceList) MatchUser(user string) bool {
	return l != nil && user != "" && l.users[strings.ToLower(user)]
}

// hasUsers reports whether the list names users, whose sessions are
// known only at AUTH.
func (l *TraceList) hasUsers() bool { return l != nil && len(l.users) > 0 }

// Trace holds the TraceList a server uses; Set replaces it (on reload),
// and each new session takes the list current when it starts. The zero
// Trace traces nobody; a Trace is safe for concurrent use.
type Trace struct {
	p atomic.Pointer[TraceList]
}

// Set makes l the list new sessions use; nil traces nobody.
func (t *Trace) Set(l *TraceList) { t.p.Store(l) }

// List returns the list new sessions use.
func (t *Trace) List() *TraceList {
	if t == nil {
		return nil
	}
	return t.p.Load()
}

// maxTraceBuffer bounds the lines a session keeps before AUTH, in case
// the user it logs in as is traced.
const maxTraceBuffer = 64

// tracer is the trace of one session. While waiting gets lines the
// session is not traced yet (its user may be): they are kept, up to
// maxTraceBuffer, and logged if it turns out to be.
type tracer struct {
	log     *slog.Logger
	list    *TraceList
	on      bool
	held    []traceLine
	dropped int
}

type traceLine struct{ from, line string }

// startTrace sets up the session's trace once its address is known:
// on when the address is traced, held back for AUTH when the list
// names users and the session may authenticate, else none.
func (s *session) startTrace() {
	l := s.srv.Trace.List()
	switch {
	case l.MatchAddr(s.remote.Addr()):
		s.trace = &tracer{log: s.log, list: l, on: true}
		s.trace.emit(traceLine{"server", fmt.Sprintf("[trace of %v: address listed]", s.remote)})
	case l.hasUsers() && s.srv.Role.submission():
		s.trace = &tracer{log: s.log, list: l}
	}
}

// traceUser turns the trace on when user (claimed or logged in) is
// listed, logging what was held back first.
func (s *session) traceUser(user string) {
	t := s.trace
	if t == nil || t.on || !t.list.MatchUser(user) {
		return
	}
	t.on = true
	t.emit(traceLine{"server", fmt.Sprintf("[trace of user %s: the dialogue so far follows]", user)})
	if t.dropped > 0 {
		t.emit(traceLine{"server", fmt.Sprintf("[%d earlier lines not kept]", t.dropped)})
	}
	for _, l := range t.held {
		t.emit(l)
	}
	t.held = nil
}

// add logs one line, or holds it.
func (t *tracer) add(from, line string) {
	l := traceLine{from, line}
	if t.on {
		t.emit(l)
		return
	}
	if len(t.held) >= maxTraceBuffer {
		copy(t.held, t.held[1:])
		t.held = t.held[:len(t.held)-1]
		t.dropped++
	}
	t.held = append(t.held, l)
}

func (t *tracer) emit(l traceLine) {
	t.log.LogAttrs(context.Background(), slog.LevelInfo, "smtp trace", slog.String("from", l.from), slog.String("line", l.line))
}

// in traces a command line from the client; an AUTH command keeps its
// mechanism only.
func (t *tracer) in(line []byte) {
	if hasAuthVerb(line) {
		mech, rest, _ := bytes.Cut(bytes.TrimPrefix(line[4:], []byte(" ")), []byte(" "))
		s := "AUTH " + string(mech)
		if len(rest) > 0 {
			s += fmt.Sprintf(" [initial response, %d bytes, not logged]", len(rest))
		}
		t.add("client", s)
		return
	}
	t.add("client", string(line))
}

// authIn traces a line the client sent within an AUTH exchange.
func (t *tracer) authIn(line []byte) {
	if len(line) == 1 && line[0] == '*' {
		t.add("client", "*")
		return
	}
	t.add("client", fmt.Sprintf("[AUTH response, %d bytes, not logged]", len(line)))
}

// out traces reply lines as they are sent (p is what the session's
// writer flushes: whole lines, CRLF-ended). A 334 challenge keeps its
// code only; after a 354 the message data the client sends is not
// traced, and a line says so.
func (t *tracer) out(p []byte) {
	for len(p) > 0 {
		line, rest, _ := bytes.Cut(p, []byte("\r\n"))
		p = rest
		switch {
		case bytes.HasPrefix(line, []byte("334 ")) || bytes.Equal(line, []byte("334")):
			t.add("server", fmt.Sprintf("334 [AUTH challenge, %d bytes, not logged]", max(len(line)-4, 0)))
		case bytes.HasPrefix(line, []byte("354")):
			t.add("server", string(line))
			t.add("client", "[message data, not logged]")
		default:
			t.add("server", string(line))
		}
	}
}
