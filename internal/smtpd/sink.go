package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"postern/internal/smtp"
)

// memoryMax is the most of one message a session keeps in memory while
// it arrives; the rest of a larger one goes to the spool's file (with
// the beginning), and the spool keeps it there. It matches the spool's
// DefaultInlineMax (queue), so that a message held in memory is small
// enough for the spool's group commit and one in a file stays in it.
//
// The first memoryFree bytes of each message are not taken from the
// DataBudget's memory: as the session's read and write buffers, they
// are part of what a session costs. Most messages fit there, and a
// header section that fits is always kept, even when the budget is
// spent; past them a session takes the budget 32 KiB at a time.
const (
	memoryMax  = 128 << 10
	memoryFree = 16 << 10
)

// Errors of a dataSink, answered at the end of DATA (dataError).
var (
	// errDataBudget: the message would pass the DataBudget.
	errDataBudget = errors.New("smtpd: message data over the in-flight budget")
	// errHeaderTooBig: the header section passes Limits.MaxHeaderSize.
	errHeaderTooBig = errors.New("smtpd: header section too big")
)

// dataSink is where cmdData puts a message as ReadData reads it. The
// message starts in a memory buffer, after headroom bytes kept free for
// the header fields prepended later. Once it passes memoryMax bytes (or
// the DataBudget's memory), the sink asks the Spooler for a file, writes
// what it holds there, and writes the rest there as it comes: the
// session's memory no longer grows with the message. The header section
// of such a message (up to the first empty line) is found as it passes
// and kept in memory; it is bounded by Limits.MaxHeaderSize.
//
// A sink's Write fails, and keeps failing, on the first error: the
// budget, a header too big, or the file's (a full disk). ReadData then
// reads on to the end of the data and returns that error.
type dataSink struct {
	s      *session
	id     string         // the message's queue id, for CreateFile
	client netip.Addr     // counted in the per-client shares; invalid when not
	buf    *bytes.Buffer  // headroom, then the message in memory; after a spill the header section
	n      int            // bytes of message written
	file   smtp.SpoolFile // nil until the spill
	hdrEnd int            // offset of the body; -1 while not known
	match  int            // bytes of "\r\n\r\n" matched at the end of what was written
	kept   bool           // after a spill: buf holds the header section
	mem    int64          // memory budget held (past memoryFree)
	flight int64          // in-flight budget held
	err    error
	// hb and msg are the message handed on (message, cmdData): kept
	// here, in the session, so that a message costs no allocation.
	hb  headerBuf
	msg smtp.Message
	// more are the sinks of bodies milters put in place of the
	// message's (newBodySink), released with this one.
	more []*dataSink
}

// budgetClient returns the address the session's message data counts
// under in the DataBudget's per-client shares: the client's, unless it
// logged in (its user's send limits bound it then).
func (s *session) budgetClient() netip.Addr {
	if s.authUser != "" {
		return netip.Addr{}
	}
	return s.remote.Addr()
}

// newSink returns the sink for the message id of session s: the
// session's own, reset, made at its first DATA (an idle session does not
// pay for it).
func (s *session) newSink(id string) *dataSink {
	if s.sink == nil {
		s.sink = new(dataSink)
	}
	d := s.sink
	*d = dataSink{s: s, id: id, buf: s.srv.getBuf(), hdrEnd: -1, client: s.budgetClient()}
	var room [headroom]byte
	d.buf.Write(room[:]) // overwritten by what is prepended
	return d
}

// Len returns the bytes of message written (smtp.DataSink).
func (d *dataSink) Len() int { return d.n }

// Truncate drops all but the first n bytes of message (smtp.DataSink).
// ReadData calls it only after an error that refuses the message: bytes
// already in the file stay there and go with it.
func (d *dataSink) Truncate(n int) {
	if d.file == nil {
		d.buf.Truncate(headroom + n)
	}
	d.n = n
}

// Write appends p to the message (smtp.DataSink).
func (d *dataSink) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if need := int64(d.n+len(p)) - d.flight; need > 0 {
		step := (need + budgetChunk - 1) / budgetChunk * budgetChunk
		if !d.s.srv.Budget.takeFlight(step, d.client) {
			return d.fail(errDataBudget)
		}
		d.flight += step
	}
	if d.file == nil {
		if d.n+len(p) <= memoryMax && d.holdMemory(int64(d.n+len(p))) {
			d.buf.Write(p)
			d.n += len(p)
			return len(p), nil
		}
		if err := d.spill(); err != nil {
			return d.fail(err)
		}
	}
	if d.hdrEnd < 0 {
		d.scanHeader(p, d.n)
		if d.hdrEnd < 0 && d.headerTooBig(d.n+len(p)) {
			return d.fail(errHeaderTooBig)
		}
	}
	if _, err := d.file.Write(p); err != nil {
		return d.fail(err)
	}
	d.n += len(p)
	return len(p), nil
}

func (d *dataSink) fail(err error) (int, error) {
	d.err = &sinkError{err}
	return 0, d.err
}

// holdMemory makes the memory held n bytes, taking from the budget or
// giving back what passes memoryFree; it reports false when the budget
// has no room.
func (d *dataSink) holdMemory(n int64) bool {
	b := d.s.srv.Budget
	n = max(0, n-memoryFree)
	switch {
	case n > d.mem:
		step := max(n-d.mem, min(budgetChunk/2, memoryMax-memoryFree-d.mem))
		if !b.take(step, true) {
			return false
		}
		d.mem += step
	case n < d.mem:
		b.give(d.mem-n, true)
		d.mem = n
	}
	return true
}

// spill moves the message to a file from the Spooler: what the buffer
// holds is written there, and only the header section, when it is
// complete, stays in memory.
func (d *dataSink) spill() error {
	f, err := d.s.srv.Spool.CreateFile(d.id)
	if err != nil {
		return err
	}
	d.file = f
	msg := d.buf.Bytes()[headroom : headroom+d.n]
	if _, err := f.Write(msg); err != nil {
		return err
	}
	if d.hdrEnd < 0 {
		d.scanHeader(msg, 0)
	}
	if d.hdrEnd >= 0 && !d.headerTooBig(d.hdrEnd) {
		d.buf.Truncate(headroom + d.hdrEnd)
		d.kept = true
		d.holdMemory(int64(d.hdrEnd))
	} else {
		d.buf.Truncate(headroom)
		d.holdMemory(0)
	}
	return nil
}

// headerTooBig reports whether a header section of n bytes passes
// Limits.MaxHeaderSize (0: no limit).
func (d *dataSink) headerTooBig(n int) bool {
	return d.s.lim.MaxHeaderSize > 0 && n > d.s.lim.MaxHeaderSize
}

// scanHeader looks for the end of the header section in p, the bytes
// of the message from offset base on, which follow those scanned before
// (RFC 5322 §2.1: the first empty line; as smtp.HeaderEnd finds it, a
// message that starts with CRLF has an empty header section).
func (d *dataSink) scanHeader(p []byte, base int) {
	const end = "\r\n\r\n"
	if base == 0 && d.match == 0 {
		d.match = 2 // the start of the message counts as after a CRLF
	}
	for i, c := range p {
		switch {
		case c == end[d.match]:
			d.match++
		case c == '\r':
			d.match = 1
		default:
			d.match = 0
		}
		if d.match == len(end) {
			d.hdrEnd = base + i + 1
			return
		}
	}
}

// message returns the message read, its header section in memory after
// the headroom (see headerBuf), its body in memory or in the file. It
// fails with errHeaderTooBig for a header section past the limit, and
// with errDataBudget when the memory for reading back a header section
// that was not kept is not there.
func (d *dataSink) message() (*headerBuf, smtp.Body, error) {
	if d.file == nil {
		msg := d.buf.Bytes()[headroom : headroom+d.n]
		end := smtp.HeaderEnd(msg)
		if d.headerTooBig(end) {
			return nil, smtp.Body{}, errHeaderTooBig
		}
		d.hb = headerBuf{b: d.buf.Bytes()[:headroom+end], start: headroom}
		return &d.hb, smtp.BodyBytes(msg[end:]), nil
	}
	end := d.hdrEnd
	if end < 0 {
		end = d.n // no empty line: all header
	}
	if d.headerTooBig(end) {
		return nil, smtp.Body{}, errHeaderTooBig
	}
	if !d.kept {
		if !d.holdMemory(int64(end)) {
			return nil, smtp.Body{}, errDataBudget
		}
		d.buf.Write(make([]byte, end))
		if _, err := d.file.ReadAt(d.buf.Bytes()[headroom:headroom+end], 0); err != nil {
			return nil, smtp.Body{}, fmt.Errorf("smtpd: read back the header: %w", err)
		}
		d.kept = true
	}
	d.hb = headerBuf{b: d.buf.Bytes()[:headroom+end], start: headroom}
	return &d.hb, smtp.BodyFile(d.file, int64(end), int64(d.n-end)), nil
}

// release ends the sink: it closes the file (the Spooler removes it
// unless it took it) and gives back the budget it held.
func (d *dataSink) release() {
	for _, m := range d.more {
		m.release()
	}
	if d.file != nil {
		if err := d.file.Close(); err != nil {
			d.s.log.Warn("closing the spool file of a message", "err", err)
		}
	}
	b := d.s.srv.Budget
	b.give(d.mem, true)
	b.giveFlight(d.flight, d.client)
	d.s.srv.putBuf(d.buf)
	*d = dataSink{} // holds nothing of the message until the next
}

// headerBuf is a message's header section with room in front for the
// fields the session and its Filter put on top: prepending costs no copy
// of the section while the room lasts.
type headerBuf struct {
	b     []byte // room, then the header section
	start int    // the section begins at b[start:]
}

// bytes returns the header section with what was prepended.
func (h *headerBuf) bytes() []byte { return h.b[h.start:] }

// prepend puts head on top of the header section.
func (h *headerBuf) prepend(head []byte) {
	if len(head) <= h.start {
		h.start -= len(head)
		copy(h.b[h.start:], head)
		return
	}
	nb := make([]byte, 0, len(head)+len(h.b)-h.start)
	nb = append(append(nb, head...), h.b[h.start:]...)
	h.b, h.start = nb, 0
}

// replace makes hdr the header section (a Filter's FilterResult.Header).
func (h *headerBuf) replace(hdr []byte) { h.b, h.start = hdr, 0 }
