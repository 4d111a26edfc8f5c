package milter

import (
	"errors"
	"fmt"
	"io"
)

// maxPending bounds the header and envelope changes one milter may ask
// for at the end of one message, in bytes.
const maxPending = 1 << 20

// pending holds one milter's changes until its final answer
// (Changes): header and envelope changes in memory (at most maxPending
// bytes), a new body on its way to the Transaction's BodyWriter.
type pending struct {
	c       *Chain
	tx      Transaction
	headers []headerChange
	env     EnvelopeChanges
	quar    string
	body    *bodyNormalizer
	size    int
	err     error // the first change refused
}

// headerChange is one of AddHeader (index -1), ChangeHeader (change)
// and InsertHeader.
type headerChange struct {
	change      bool
	index       int
	name, value string
}

// count counts n bytes of changes and reports whether they may be kept.
func (p *pending) count(n int) bool {
	if p.size += n; p.size > maxPending && p.err == nil {
		p.err = fmt.Errorf("%w: more than %d bytes of changes", errProtocol, maxPending)
	}
	return p.err == nil
}

func (p *pending) AddHeader(name, value string) {
	if !p.count(len(name) + len(value)) {
		return
	}
	p.headers = append(p.headers, headerChange{index: -1, name: name, value: value})
}

func (p *pending) ChangeHeader(index int, name, value string) {
	if !p.count(len(name) + len(value)) {
		return
	}
	p.headers = append(p.headers, headerChange{change: true, index: index, name: name, value: value})
}

func (p *pending) InsertHeader(index int, name, value string) {
	if !p.count(len(name) + len(value)) {
		return
	}
	p.headers = append(p.headers, headerChange{index: index, name: name, value: value})
}

func (p *pending) ChangeFrom(from string, args []string) {
	if !p.count(len(from) + 8) {
		return
	}
	p.env.From, p.env.FromArgs = &from, args
}

func (p *pending) AddRcpt(rcpt string, args []string) {
	if !p.count(len(rcpt) + 8) {
		return
	}
	p.env.Add = append(p.env.Add, rcpt)
	p.env.AddArgs = append(p.env.AddArgs, args)
}

func (p *pending) DeleteRcpt(rcpt string) {
	if !p.count(len(rcpt) + 8) {
		return
	}
	p.env.Delete = append(p.env.Delete, rcpt)
}

func (p *pending) Quarantine(reason string) {
	if p.quar == "" {
		p.quar = reason
	}
}

func (p *pending) ReplaceBody(chunk []byte) error {
	if p.err != nil {
		return p.err
	}
	if p.body == nil {
		w, err := p.tx.NewBody()
		if err != nil {
			return err
		}
		p.body = newBodyNormalizer(w, p.c.opts.MaxLine, p.c.opts.MaxSize)
	}
	_, err := p.body.Write(chunk)
	return err
}

// drop discards a new body.
func (p *pending) drop() {
	if p.body != nil {
		p.body.w.Discard()
		p.body = nil
	}
}

// apply makes the changes: the envelope's (which may be refused), then
// the header's, then the new body.
func (p *pending) apply(h *Header) error {
	if p.err != nil {
		return p.err
	}
	if !p.env.empty() {
		if err := p.tx.ChangeEnvelope(p.env); err != nil {
			return fmt.Errorf("%w: envelope change refused: %v", errProtocol, err)
		}
	}
	for _, hc := range p.headers {
		switch {
		case hc.change:
			h.Change(hc.index, hc.name, hc.value)
		case hc.index < 0:
			h.Add(hc.name, hc.value)
		default:
			h.Insert(hc.index, hc.name, hc.value)
		}
	}
	if p.body != nil {
		err := p.body.close()
		p.body = nil
		if err != nil {
			return &LocalError{err}
		}
	}
	return nil
}

// Message hands the message to each milter still asked about it, in
// order: its header fields as h holds them (the first Received hidden),
// its body in chunks of at most 64 KiB read from tx, and the end of the
// message, with eohMacros and eomMacros. Each milter sees the message as
// the milters before it left it. A milter's changes are applied only
// when its final answer lets the message go on; a milter that fails
// midway leaves the message as it was, and its default action applies.
// A message discarded earlier (Discarding) is not handed on.
//
// The error is a local failure (a new body that could not be stored):
// the caller answers it as its own.
func (c *Chain) Message(h *Header, tx Transaction, eohMacros, eomMacros []Macro) (Verdict, error) {
	var v Verdict
	if c.discard != "" {
		return Verdict{Action: Discard, Milter: c.discard}, nil
	}
	var chunk []byte // one buffer for the body chunks of every milter
	for _, m := range c.members {
		switch m.state {
		case stateDoneConn, stateDoneMsg:
			continue
		case stateTempfail:
			return Verdict{Action: Tempfail, Milter: m.m.Name, Default: true}, nil
		}
		if want := int(min(max(tx.BodySize(), 1), bodyChunk)); len(chunk) < want && m.conn.proto&optNoBody == 0 {
			// No larger than the body (a milter before may have put a
			// larger one in place), no larger than a chunk.
			chunk = make([]byte, want)
		}
		r, quar, err := c.message(m, h, tx, chunk, eohMacros, eomMacros)
		var le *LocalError
		switch {
		case errors.As(err, &le):
			// The connection was cut midway through no fault of the
			// milter's; it is asked nothing more, and nothing passes
			// unfiltered: what follows fails for now.
			m.state, m.inMessage = stateTempfail, false
			return Verdict{}, le
		case err != nil:
			if fv, stop := c.failed(m, err); stop {
				return fv, nil
			}
			continue
		}
		m.inMessage = r.stage != StageEOM // an answer before the end: the milter still waits for it
		if quar != "" && v.Quarantine == "" {
			v.Quarantine, v.QuarantineBy = quar, m.m.Name
			if c.opts.Observer != nil {
				c.opts.Observer.Decided(m.m.Name, StageEOM, Continue, quar)
			}
		}
		if fv, stop := c.decide(m, r.stage, r.Response); stop {
			fv.Quarantine, fv.QuarantineBy = v.Quarantine, v.QuarantineBy
			return fv, nil
		}
	}
	return v, nil
}

// stageResponse is a Response and the stage that gave it.
type stageResponse struct {
	Response
	stage Stage
}

// message runs one milter over the message: fields, their end, body
// chunks, end of message. It returns the first answer that is not
// Continue, or the final one, and the quarantine reason.
func (c *Chain) message(m *member, h *Header, tx Transaction, chunk []byte, eohMacros, eomMacros []Macro) (stageResponse, string, error) {
	conn := m.conn
	var r Response
	var err error
	h.Each(conn.leadingSpace(), func(name, value string) bool {
		r, err = conn.Header(name, value)
		return err == nil && r.Action == Continue && conn.skip != cmdHeader
	})
	if err != nil || r.Action != Continue {
		return stageResponse{r, StageHeader}, "", err
	}
	if r, err = conn.EndOfHeader(eohMacros); err != nil || r.Action != Continue {
		return stageResponse{r, StageHeader}, "", err
	}
	if conn.proto&optNoBody == 0 {
		body := tx.Body()
		for conn.skip != cmdBody {
			n, rerr := io.ReadFull(body, chunk)
			if n > 0 {
				if r, err = conn.Body(chunk[:n]); err != nil || r.Action != Continue {
					return stageResponse{r, StageBody}, "", err
				}
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				break
			}
			if rerr != nil {
				conn.fail(StageBody, rerr)
				return stageResponse{}, "", &LocalError{fmt.Errorf("reading the body: %w", rerr)}
			}
		}
	}
	p := &pending{c: c, tx: tx}
	r, err = conn.EndOfMessage(eomMacros, p)
	if err != nil {
		p.drop()
		return stageResponse{}, "", err
	}
	if r.Action != Continue && r.Action != Accept {
		p.drop()
		return stageResponse{r, StageEOM}, "", nil
	}
	if err := p.apply(h); err != nil {
		p.drop()
		var le *LocalError
		if !errors.As(err, &le) {
			err = conn.fail(StageEOM, err)
		}
		return stageResponse{}, "", err
	}
	return stageResponse{r, StageEOM}, p.quar, nil
}
