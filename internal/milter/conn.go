package milter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Macro is one Sendmail macro sent to a milter before an event, such as
// {"j", "mx.example.org"} or {"{auth_authen}", "alice"}.
type Macro struct {
	Name, Value string
}

// The macro stages of SMFIF_SETSYMLIST (SMFIM_*): a milter may name the
// macros it wants at each.
const (
	symConnect = 0
	symHelo    = 1
	symMail    = 2
	symRcpt    = 3
	symData    = 4
	symEOM     = 5
	symEOH     = 6
	numSym     = 7
)

// Conn is a connection to one milter for one SMTP session: Dial
// negotiates the protocol, then the event methods are called in the
// order of the session (Connect, Helo, Mail, Rcpt..., Data, Header...,
// EndOfHeader, Body..., EndOfMessage), Abort ends a message early, and
// Close ends the connection. It is not safe for concurrent use.
//
// An event the milter asked not to get (SMFIP_NO*) is not sent, and one
// it said it does not answer (SMFIP_NR_*) is not waited for: both
// return Continue. After a failure (an *Error) the Conn is broken and
// every later call fails at once.
type Conn struct {
	m       *Milter
	nc      net.Conn
	br      *bufio.Reader
	timers  Timers
	version uint32
	actions uint32
	proto   uint32
	symlist [numSym][]string // macros a milter asked for, nil for the default
	skip    byte             // the command whose further events SMFIR_SKIP skips; 0 for none
	rbuf    []byte
	wbuf    []byte
	broken  error
	expired atomic.Bool // a timeout fired
	stopCtx func() bool // ends the watch of the session's context
}

// Dial connects to m, negotiates the protocol and returns the Conn.
// ctx bounds the Conn's whole life: when it ends, a call in progress
// fails and the Conn breaks.
func Dial(ctx context.Context, m *Milter, o Options) (*Conn, error) {
	network, address, err := ParseAddress(m.Address)
	if err != nil {
		return nil, &Error{Milter: m.Name, Stage: StageNegotiate, Kind: KindUnavailable, Err: err}
	}
	timers := o.timers()
	dctx, cancel := context.WithCancel(ctx)
	var timedOut atomic.Bool
	stop := func() bool { return false }
	if m.ConnectTimeout > 0 {
		stop = timers.AfterFunc(m.ConnectTimeout, func() { timedOut.Store(true); cancel() })
	}
	nc, err := o.dial(dctx, network, address)
	stop()
	cancel()
	if err != nil {
		if timedOut.Load() {
			err = fmt.Errorf("connect: %w", ErrTimeout)
			return nil, &Error{Milter: m.Name, Stage: StageNegotiate, Kind: KindTimeout, Err: err}
		}
		return nil, &Error{Milter: m.Name, Stage: StageNegotiate, Kind: KindUnavailable, Err: err}
	}
	c := &Conn{m: m, nc: nc, br: bufio.NewReaderSize(nc, 4096), timers: timers}
	c.stopCtx = context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	if err := c.negotiate(); err != nil {
		c.nc.Close()
		c.stopCtx()
		return nil, err
	}
	return c, nil
}

// Name returns the milter's name.
func (c *Conn) Name() string { return c.m.Name }

// fail breaks the Conn with err, as an *Error of stage.
func (c *Conn) fail(stage Stage, err error) error {
	if c.expired.Load() {
		err = fmt.Errorf("%w (%v)", ErrTimeout, err)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("session ended: %w", err)
	}
	e := &Error{Milter: c.m.Name, Stage: stage, Kind: kindOf(err), Err: err}
	if c.broken == nil {
		c.broken = e
		c.nc.Close()
	}
	return e
}

// arm starts the timeout of one exchange; the returned function ends it.
// When it fires, the connection's deadline passes and the exchange fails.
func (c *Conn) arm(d time.Duration) func() {
	if d <= 0 {
		return func() {}
	}
	stop := c.timers.AfterFunc(d, func() {
		c.expired.Store(true)
		c.nc.SetDeadline(time.Unix(1, 0))
	})
	return func() { stop() }
}

// negotiate exchanges SMFIC_OPTNEG: Postern offers version 6, every
// action and every protocol option it honours; the milter answers with
// its version, the actions it may take (a subset) and the events it
// does not want or will not answer, and may name the macros it wants.
func (c *Conn) negotiate() error {
	var data [12]byte
	binary.BigEndian.PutUint32(data[0:], protocolVersion)
	binary.BigEndian.PutUint32(data[4:], offeredActions)
	binary.BigEndian.PutUint32(data[8:], offeredProtocol)
	done := c.arm(c.m.CommandTimeout)
	defer done()
	c.wbuf = appendPacket(c.wbuf[:0], cmdOptNeg, data[:])
	if _, err := c.nc.Write(c.wbuf); err != nil {
		return c.fail(StageNegotiate, err)
	}
	p, err := c.read()
	if err != nil {
		return c.fail(StageNegotiate, err)
	}
	if err := c.parseOptNeg(p); err != nil {
		return c.fail(StageNegotiate, err)
	}
	return nil
}

// parseOptNeg checks the milter's SMFIC_OPTNEG and records what it
// settled.
func (c *Conn) parseOptNeg(p packet) error {
	if p.code != cmdOptNeg || len(p.data) < 12 {
		return fmt.Errorf("%w: want SMFIC_OPTNEG, got %q with %d bytes", errProtocol, p.code, len(p.data))
	}
	c.version = binary.BigEndian.Uint32(p.data[0:])
	c.actions = binary.BigEndian.Uint32(p.data[4:])
	proto := binary.BigEndian.Uint32(p.data[8:])
	if c.version < 2 || c.version > protocolVersion {
		return fmt.Errorf("%w: milter protocol version %d (Postern speaks 2 to %d)", errProtocol, c.version, protocolVersion)
	}
	if c.actions&^offeredActions != 0 {
		return fmt.Errorf("%w: the milter asks for actions 0x%x, Postern offers 0x%x", errProtocol, c.actions, offeredActions)
	}
	// Options Postern did not offer (the data size flags, SMFIP_RCPT_REJ)
	// are ignored, as Postfix does; events older versions do not know
	// are not sent.
	c.proto = proto & offeredProtocol
	if c.version < 4 {
		c.proto |= optNoData
	}
	rest := p.data[12:]
	for len(rest) > 0 {
		if len(rest) < 5 {
			return fmt.Errorf("%w: truncated macro list", errProtocol)
		}
		stage := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		i := 0
		for i < len(rest) && rest[i] != 0 {
			i++
		}
		if i == len(rest) {
			return fmt.Errorf("%w: macro list without NUL terminator", errProtocol)
		}
		if stage < numSym {
			c.symlist[stage] = append([]string{}, strings.Fields(string(rest[:i]))...)
		}
		rest = rest[i+1:]
	}
	return nil
}

// read reads the next packet.
func (c *Conn) read() (packet, error) {
	p, buf, err := readPacket(c.br, c.rbuf)
	c.rbuf = buf
	if cap(c.rbuf) > 256<<10 {
		c.rbuf = nil // one long reply does not pin its buffer
	}
	return p, err
}

// wanted reports whether a milter that named the macros it wants at
// stage asked for name; one that named none gets them all.
func (c *Conn) wanted(stage int, name string) bool {
	list := c.symlist[stage]
	if list == nil {
		return true
	}
	bare := strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}")
	for _, n := range list {
		if n == name || strings.TrimSuffix(strings.TrimPrefix(n, "{"), "}") == bare {
			return true
		}
	}
	return false
}

// appendMacros appends an SMFIC_MACRO packet for the event cmd to
// c.wbuf, with the macros the milter wants at stage.
func (c *Conn) appendMacros(cmd byte, stage int, macros []Macro) {
	parts := [][]byte{{cmd}}
	for _, m := range macros {
		if m.Value != "" && c.wanted(stage, m.Name) {
			parts = append(parts, cstring(m.Name), cstring(m.Value))
		}
	}
	if len(parts) > 1 {
		c.wbuf = appendPacket(c.wbuf, cmdMacro, parts...)
	}
}

// event sends one event with its macros and returns the milter's
// answer. noSend is the SMFIP_NO* option that says the milter does not
// want it, noReply the SMFIP_NR_* one that says it will not answer.
func (c *Conn) event(stage Stage, timeout time.Duration, cmd byte, noSend, noReply uint32, sym int, macros []Macro, data ...[]byte) (Response, error) {
	if c.broken != nil {
		return Response{}, c.broken
	}
	if c.proto&noSend != 0 || c.skip == cmd {
		return Response{Action: Continue}, nil
	}
	c.skip = 0
	done := c.arm(timeout)
	defer done()
	c.wbuf = c.wbuf[:0]
	if sym >= 0 {
		c.appendMacros(cmd, sym, macros)
	}
	c.wbuf = appendPacket(c.wbuf, cmd, data...)
	if _, err := c.nc.Write(c.wbuf); err != nil {
		return Response{}, c.fail(stage, err)
	}
	if c.proto&noReply != 0 {
		return Response{Action: Continue}, nil
	}
	return c.response(stage, cmd)
}

// response reads the answer to event cmd, waiting through
// SMFIR_PROGRESS. Unlike Sendmail, Postern does not restart the timeout
// at each: it bounds the whole exchange, so that a milter that only
// ever says it is busy cannot hold a session.
func (c *Conn) response(stage Stage, cmd byte) (Response, error) {
	for {
		p, err := c.read()
		if err != nil {
			return Response{}, c.fail(stage, err)
		}
		if p.code == repProgress && len(p.data) == 0 {
			continue
		}
		r, skip, err := parseResponse(p)
		if err != nil {
			return Response{}, c.fail(stage, err)
		}
		if skip {
			// SMFIR_SKIP: no more events of this kind (recipients,
			// header fields, body chunks) until the next kind.
			c.skip = cmd
		}
		return r, nil
	}
}

// Connect sends the client's connection (SMFIC_CONNECT): hostname is its
// name, or "[address]" when it has none; addr is its address, the zero
// AddrPort when unknown.
func (c *Conn) Connect(hostname string, addr netip.AddrPort, macros []Macro) (Response, error) {
	data := cstring(hostname)
	switch a := addr.Addr(); {
	case !addr.IsValid():
		data = append(data, 'U') // SMFIA_UNKNOWN
	case a.Is4() || a.Is4In6():
		data = append(data, '4')
		data = binary.BigEndian.AppendUint16(data, addr.Port())
		data = append(data, cstring(a.Unmap().String())...)
	default:
		data = append(data, '6')
		data = binary.BigEndian.AppendUint16(data, addr.Port())
		data = append(data, cstring(a.String())...)
	}
	return c.event(StageConnect, c.m.CommandTimeout, cmdConnect, optNoConnect, optNRConnect, symConnect, macros, data)
}

// Helo sends the EHLO or HELO argument.
func (c *Conn) Helo(name string, macros []Macro) (Response, error) {
	return c.event(StageHelo, c.m.CommandTimeout, cmdHelo, optNoHelo, optNRHelo, symHelo, macros, cstring(name))
}

// Mail sends the reverse-path (without angle brackets; "" for the null
// sender) and MAIL's ESMTP parameters ("BODY=8BITMIME").
func (c *Conn) Mail(from string, args []string, macros []Macro) (Response, error) {
	data := cstring("<" + from + ">")
	for _, a := range args {
		data = append(data, cstring(a)...)
	}
	return c.event(StageMail, c.m.CommandTimeout, cmdMail, optNoMail, optNRMail, symMail, macros, data)
}

// Rcpt sends one accepted forward-path and its ESMTP parameters.
func (c *Conn) Rcpt(to string, args []string, macros []Macro) (Response, error) {
	data := cstring("<" + to + ">")
	for _, a := range args {
		data = append(data, cstring(a)...)
	}
	return c.event(StageRcpt, c.m.CommandTimeout, cmdRcpt, optNoRcpt, optNRRcpt, symRcpt, macros, data)
}

// Data sends the DATA command, before the session answers it.
func (c *Conn) Data(macros []Macro) (Response, error) {
	return c.event(StageData, c.m.CommandTimeout, cmdData, optNoData, optNRData, symData, macros)
}

// Header sends one header field: its name, and its value as Sendmail
// sends it: without the space after the colon (unless the milter asked
// for it, SMFIP_HDR_LEADSPC), lines separated by "\n", no line end.
func (c *Conn) Header(name, value string) (Response, error) {
	return c.event(StageHeader, c.m.ContentTimeout, cmdHeader, optNoHeaders, optNRHeader, -1, nil, cstring(name), cstring(value))
}

// leadingSpace reports whether the milter wants header values with the
// space after the colon kept (SMFIP_HDR_LEADSPC).
func (c *Conn) leadingSpace() bool { return c.proto&optHdrLeadSpc != 0 }

// EndOfHeader sends the end of the header section.
func (c *Conn) EndOfHeader(macros []Macro) (Response, error) {
	return c.event(StageHeader, c.m.ContentTimeout, cmdEOH, optNoEOH, optNREOH, symEOH, macros)
}

// Body sends one chunk of the body, of at most 65535 bytes.
func (c *Conn) Body(chunk []byte) (Response, error) {
	if c.broken != nil {
		return Response{}, c.broken
	}
	if c.proto&optNoBody != 0 || c.skip == cmdBody {
		return Response{Action: Continue}, nil
	}
	done := c.arm(c.m.ContentTimeout)
	defer done()
	var head [5]byte
	binary.BigEndian.PutUint32(head[:], uint32(len(chunk)+1))
	head[4] = cmdBody
	bufs := net.Buffers{head[:], chunk} // the chunk is not copied
	if _, err := bufs.WriteTo(c.nc); err != nil {
		return Response{}, c.fail(StageBody, err)
	}
	if c.proto&optNRBody != 0 {
		return Response{Action: Continue}, nil
	}
	return c.response(StageBody, cmdBody)
}

// Abort tells the milter that the message ended without its end (RSET,
// a refusal, a new EHLO): it forgets it and waits for the next MAIL.
func (c *Conn) Abort() error {
	if c.broken != nil {
		return c.broken
	}
	c.skip = 0
	done := c.arm(c.m.CommandTimeout)
	defer done()
	c.wbuf = appendPacket(c.wbuf[:0], cmdAbort)
	if _, err := c.nc.Write(c.wbuf); err != nil {
		return c.fail(StageData, err)
	}
	return nil
}

// Close says goodbye (SMFIC_QUIT) and closes the connection.
func (c *Conn) Close() error {
	defer c.stopCtx()
	if c.broken != nil {
		return nil
	}
	c.broken = errors.New("milter: connection closed")
	done := c.arm(c.m.CommandTimeout)
	c.wbuf = appendPacket(c.wbuf[:0], cmdQuit)
	_, err := c.nc.Write(c.wbuf)
	done()
	if cerr := c.nc.Close(); err == nil {
		err = cerr
	}
	return err
}
