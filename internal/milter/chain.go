package milter

import (
	"context"
	"errors"
	"io"
	"net/netip"
)

// Verdict is what the milters of a Chain decided at one stage.
type Verdict struct {
	// Action is Continue to go on; Reject, Tempfail or Discard stop
	// there. At connect and HELO, and within a message, Accept from one
	// milter only ends what that milter is asked: the Verdict is
	// Continue.
	Action Action
	// Reply is the deciding milter's own reply, nil for the default text
	// of the action.
	Reply *Reply
	// Milter names the milter that decided ("" for Continue).
	Milter string
	// Default is set when the Verdict is a failed milter's default
	// action (DefaultTempfail).
	Default bool
	// Quarantine, at the end of a message, is the reason a milter gave
	// for holding it; "" when none did. The first reason is kept.
	Quarantine string
	// QuarantineBy names the milter that quarantined.
	QuarantineBy string
}

// Observer is told what a Chain's milters do, for logs and metrics.
type Observer interface {
	// Failed: a milter failed; its default action applies.
	Failed(err *Error, action DefaultAction)
	// Decided: a milter answered stage with something other than
	// Continue, or quarantined (action Continue, reason set).
	Decided(milter string, stage Stage, action Action, quarantine string)
}

// ChainOptions configure a Chain.
type ChainOptions struct {
	Options
	// Observer, when not nil, is told failures and decisions.
	Observer Observer
	// MaxLine and MaxSize bound a body a milter puts in place of the
	// message's: its lines, with CRLF, and its size in bytes.
	MaxLine int
	MaxSize int64
}

// state is where a milter of a Chain stands in the session.
type state int

const (
	stateActive   state = iota // asked about every event
	stateDoneConn              // accepted the connection, or failed with DefaultAccept: asked nothing more
	stateDoneMsg               // accepted the message: asked nothing more until the next
	stateTempfail              // failed with DefaultTempfail: every event fails for now
)

// member is one milter of a Chain.
type member struct {
	m         *Milter
	conn      *Conn
	state     state
	inMessage bool // has had MAIL and not yet the end of the message, or an abort
}

// Chain runs the milters of one SMTP session in order, as Postfix does:
// Postern's own checks first, then each milter; the first that refuses
// decides. Each milter gets its own connection for the session. A milter
// that fails takes its DefaultAction, for the rest of the session. It is
// not safe for concurrent use.
type Chain struct {
	ctx     context.Context
	opts    ChainOptions
	members []*member
	discard string // the milter that discarded the message in progress
}

// NewChain returns a Chain of milters for one session; ctx bounds its
// connections. Nothing is dialled before Connect.
func NewChain(ctx context.Context, milters []Milter, o ChainOptions) *Chain {
	c := &Chain{ctx: ctx, opts: o}
	for i := range milters {
		c.members = append(c.members, &member{m: &milters[i]})
	}
	return c
}

// failed applies m's default action after err; stop reports a Verdict
// that ends the stage.
func (c *Chain) failed(m *member, err error) (v Verdict, stop bool) {
	var me *Error
	if !errors.As(err, &me) {
		me = &Error{Milter: m.m.Name, Stage: StageNegotiate, Kind: kindOf(err), Err: err}
	}
	if c.opts.Observer != nil {
		c.opts.Observer.Failed(me, m.m.DefaultAction)
	}
	m.inMessage = false
	if m.m.DefaultAction == DefaultAccept {
		m.state = stateDoneConn
		return Verdict{}, false
	}
	m.state = stateTempfail
	return Verdict{Action: Tempfail, Milter: m.m.Name, Default: true}, true
}

// decide records a milter's answer to stage; stop reports a Verdict that
// ends the stage.
func (c *Chain) decide(m *member, stage Stage, r Response) (v Verdict, stop bool) {
	if r.Action != Continue && c.opts.Observer != nil {
		c.opts.Observer.Decided(m.m.Name, stage, r.Action, "")
	}
	switch r.Action {
	case Continue:
	case Accept:
		if stage == StageConnect || stage == StageHelo {
			m.state = stateDoneConn
		} else {
			m.state = stateDoneMsg
		}
	case Discard:
		if stage == StageConnect || stage == StageHelo {
			break // not for a connection (Postfix ignores it too)
		}
		return Verdict{Action: Discard, Milter: m.m.Name}, true
	default:
		return Verdict{Action: r.Action, Reply: r.Reply, Milter: m.m.Name}, true
	}
	return Verdict{}, false
}

// each asks every milter that is still asked about stage, with send, in
// order, until one decides.
func (c *Chain) each(stage Stage, send func(*Conn) (Response, error)) Verdict {
	for _, m := range c.members {
		switch m.state {
		case stateDoneConn, stateDoneMsg:
			continue
		case stateTempfail:
			return Verdict{Action: Tempfail, Milter: m.m.Name, Default: true}
		}
		if stage == StageMail {
			m.inMessage = true
		}
		r, err := send(m.conn)
		if err != nil {
			if v, stop := c.failed(m, err); stop {
				return v
			}
			continue
		}
		if v, stop := c.decide(m, stage, r); stop {
			return v
		}
	}
	return Verdict{}
}

// Connect connects to each milter and tells it about the client
// (hostname, address; see Conn.Connect).
func (c *Chain) Connect(hostname string, addr netip.AddrPort, macros []Macro) Verdict {
	for _, m := range c.members {
		if m.state != stateActive || m.conn != nil {
			continue
		}
		conn, err := Dial(c.ctx, m.m, c.opts.Options)
		if err != nil {
			c.failed(m, err)
			continue
		}
		m.conn = conn
	}
	return c.each(StageConnect, func(conn *Conn) (Response, error) { return conn.Connect(hostname, addr, macros) })
}

// Helo tells each milter the EHLO or HELO argument.
func (c *Chain) Helo(name string, macros []Macro) Verdict {
	return c.each(StageHelo, func(conn *Conn) (Response, error) { return conn.Helo(name, macros) })
}

// Mail starts a message with its reverse-path and parameters.
func (c *Chain) Mail(from string, args []string, macros []Macro) Verdict {
	c.discard = ""
	return c.each(StageMail, func(conn *Conn) (Response, error) { return conn.Mail(from, args, macros) })
}

// Rcpt asks about one recipient Postern accepted; a refusal is for that
// recipient alone.
func (c *Chain) Rcpt(to string, args []string, macros []Macro) Verdict {
	if c.discard != "" {
		return Verdict{}
	}
	return c.each(StageRcpt, func(conn *Conn) (Response, error) { return conn.Rcpt(to, args, macros) })
}

// Data asks about the DATA command.
func (c *Chain) Data(macros []Macro) Verdict {
	if c.discard != "" {
		return Verdict{}
	}
	return c.each(StageData, func(conn *Conn) (Response, error) { return conn.Data(macros) })
}

// Discarding records that a milter discarded the message in progress
// (a Discard Verdict before its end): the other milters are asked
// nothing more about it, and Message discards it.
func (c *Chain) Discarding(v Verdict) { c.discard = v.Milter }

// Abort ends the message in progress without its end (RSET, a refusal,
// a new EHLO, the end of the session): each milter that had its MAIL is
// told to forget it (SMFIC_ABORT).
func (c *Chain) Abort() {
	c.discard = ""
	for _, m := range c.members {
		if m.state == stateDoneMsg {
			m.state = stateActive
		}
		if !m.inMessage {
			continue
		}
		m.inMessage = false
		if m.state == stateActive {
			if err := m.conn.Abort(); err != nil {
				c.failed(m, err)
			}
		}
	}
}

// Close ends the connections (SMFIC_QUIT).
func (c *Chain) Close() {
	for _, m := range c.members {
		if m.conn != nil {
			m.conn.Close()
		}
	}
}

// Active reports whether any milter may still be asked about the
// session: a Chain whose milters all accepted the connection, or failed
// with DefaultAccept, has nothing more to do.
func (c *Chain) Active() bool {
	for _, m := range c.members {
		if m.state != stateDoneConn {
			return true
		}
	}
	return false
}

// Transaction is the message a Chain's milters see at its end, and what
// their changes to the body and the envelope go to.
type Transaction interface {
	// Body returns a new reader of the body as it stands, and BodySize
	// its size in bytes.
	Body() io.Reader
	BodySize() int64
	// NewBody starts a body in place of the message's (SMFIR_REPLBODY).
	NewBody() (BodyWriter, error)
	// ChangeEnvelope applies one milter's envelope changes, all or none;
	// an error refuses them (an address that is no address, too many
	// recipients, none left) and counts as the milter's failure.
	ChangeEnvelope(e EnvelopeChanges) error
}

// EnvelopeChanges are the envelope changes of one milter.
type EnvelopeChanges struct {
	// From, when not nil, is the new reverse-path ("" for the null
	// sender), FromArgs its ESMTP parameters.
	From     *string
	FromArgs []string
	// Add are recipients to add (with AddArgs, their ESMTP
	// parameters), Delete recipients to remove, in order.
	Add     []string
	AddArgs [][]string
	Delete  []string
}

// empty reports whether e changes nothing.
func (e *EnvelopeChanges) empty() bool {
	return e.From == nil && len(e.Add) == 0 && len(e.Delete) == 0
}
