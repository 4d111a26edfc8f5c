package milter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// DefaultAction is what a Chain does when a milter is down, too slow or
// breaks the protocol (Postfix's milter_default_action).
type DefaultAction string

// The default actions.
const (
	// DefaultTempfail refuses for now what the milter was asked about:
	// 421 at connect, 451 4.7.1 after (Postfix's default). The client
	// tries again later.
	DefaultTempfail DefaultAction = "tempfail"
	// DefaultAccept goes on as if the milter were not configured, for
	// the rest of the session.
	DefaultAccept DefaultAction = "accept"
)

// Milter is one mail filter and how to talk to it.
type Milter struct {
	// Name names the milter in logs and metrics.
	Name string
	// Address is where the milter listens, as Postfix writes it:
	// "inet:host:port" (TCP) or "unix:/path" (a unix socket); see
	// ParseAddress.
	Address string
	// ConnectTimeout bounds connecting to the milter; CommandTimeout
	// option negotiation and each of connect, HELO, MAIL, RCPT and DATA;
	// ContentTimeout each header field, body chunk and the end of the
	// message (Postfix's milter_connect_timeout, milter_command_timeout,
	// milter_content_timeout). A timeout of 0 means none.
	ConnectTimeout, CommandTimeout, ContentTimeout time.Duration
	// DefaultAction is what happens when the milter fails.
	DefaultAction DefaultAction
}

// ParseAddress splits a milter address as Postfix writes it into a
// network and an address for net.Dial: "inet:host:port" is TCP to
// host:port (an IPv6 host in brackets, "inet:[::1]:11332"), "unix:/path"
// and "local:/path" a unix socket. The milter's own syntax
// ("inet:11332@localhost") is refused with a hint.
func ParseAddress(s string) (network, address string, err error) {
	kind, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return "", "", fmt.Errorf("milter: address %q: want inet:host:port or unix:/path", s)
	}
	switch kind {
	case "inet":
		if port, host, ok := strings.Cut(rest, "@"); ok {
			return "", "", fmt.Errorf("milter: address %q is the milter's own syntax: write inet:%s:%s", s, host, port)
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" || port == "" {
			return "", "", fmt.Errorf("milter: address %q: want inet:host:port", s)
		}
		return "tcp", rest, nil
	case "unix", "local":
		return "unix", rest, nil
	}
	return "", "", fmt.Errorf("milter: address %q: unknown transport %q (want inet or unix)", s, kind)
}

// Stage is the SMTP event a milter is asked about.
type Stage string

// The stages, in the order of an SMTP session.
const (
	StageNegotiate Stage = "negotiate" // connecting and option negotiation
	StageConnect   Stage = "connect"
	StageHelo      Stage = "helo"
	StageMail      Stage = "mail"
	StageRcpt      Stage = "rcpt"
	StageData      Stage = "data"
	StageHeader    Stage = "header" // the header fields and their end
	StageBody      Stage = "body"
	StageEOM       Stage = "eom" // the end of the message and the changes
)

// ErrorKind sorts milter failures for metrics.
type ErrorKind string

// The kinds of failure.
const (
	// KindUnavailable: the milter could not be reached.
	KindUnavailable ErrorKind = "unavailable"
	// KindTimeout: the milter did not answer in time.
	KindTimeout ErrorKind = "timeout"
	// KindProtocol: the milter broke the protocol (a malformed packet,
	// an unexpected reply, a change it was not allowed or that Postern
	// refuses).
	KindProtocol ErrorKind = "protocol"
	// KindIO: the connection failed (closed, reset).
	KindIO ErrorKind = "io"
)

// Error is the failure of one milter at one stage.
type Error struct {
	Milter string
	Stage  Stage
	Kind   ErrorKind
	Err    error
}

// Error returns "milter NAME: STAGE: ERR".
func (e *Error) Error() string {
	return fmt.Sprintf("milter %s: %s: %v", e.Milter, e.Stage, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrTimeout is the cause of an Error of KindTimeout.
var ErrTimeout = errors.New("timed out")

// kindOf sorts err.
func kindOf(err error) ErrorKind {
	switch {
	case errors.Is(err, ErrTimeout):
		return KindTimeout
	case errors.Is(err, errProtocol):
		return KindProtocol
	}
	return KindIO
}

// Timers starts the timers of the milter timeouts. The default is the
// real clock (time.AfterFunc); tests inject their own.
type Timers interface {
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// the returned stop function is called first (it reports whether
	// it stopped the timer, as time.Timer.Stop does).
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// realTimers is Timers on the real clock.
type realTimers struct{}

func (realTimers) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// Options are what a Chain or Dial needs besides the Milter: how to
// reach the network and tell the time.
type Options struct {
	// Dial connects to a milter; nil means a net.Dialer's DialContext.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Timers runs the timeouts; nil means the real clock.
	Timers Timers
}

func (o Options) timers() Timers {
	if o.Timers == nil {
		return realTimers{}
	}
	return o.Timers
}

func (o Options) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if o.Dial != nil {
		return o.Dial(ctx, network, address)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}
