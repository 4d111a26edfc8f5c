package smtpd

import (
	"errors"
	"os"
	"strconv"
	"time"

	"postern/internal/smtp"
)

// This file is CHUNKING (RFC 3030 §2, §3): the message comes in BDAT
// chunks of announced sizes instead of after DATA. The chunks go
// through the same sink as DATA (sink.go), under the same limits, and
// the last one ends the message with the same checks (acceptMessage).
// BINARYMIME is not offered: a chunked message is still text, checked
// line by line as in DATA (smtp.ChunkReader), since it may leave by DATA.

// chunking is the message in progress between the first BDAT of a
// transaction and its LAST.
type chunking struct {
	active   bool             // a chunk of this transaction was taken
	id       string           // the message's queue id
	rd       smtp.ChunkReader // the lines across chunks
	deadline time.Time        // Limits.DataTimeLimit from the first chunk; zero: none
}

// cmdBdat handles BDAT (RFC 3030 §2). Every chunk whose size is known
// is read, refused or not, so that the session stays in step; one too
// large to read past (larger than the message size limit on its own)
// is refused and the session closed, as is a size that is not a
// number, which loses the framing.
func (s *session) cmdBdat(arg string) {
	size, last, err := smtp.ParseBDAT(arg)
	if errors.Is(err, smtp.ErrChunkSyntax) {
		s.fail("syntax", errSyntax("Syntax: BDAT chunk-size [LAST]"))
		s.quit = true
		return
	}
	if err != nil {
		s.refuseChunk(size, &labeledError{"syntax", errSyntax("Syntax: BDAT chunk-size [LAST]")})
		return
	}
	if e := s.dataSequence(); e != nil {
		s.refuseChunk(size, e)
		return
	}
	if max := s.lim.MaxMessageSize; max > 0 && size > max-s.chunked() {
		// RFC 1870 §6, RFC 3030 §2: the sizes announced pass the limit;
		// refused before a chunk octet is read.
		s.refuseChunk(size, &labeledError{"too_big", &smtp.Error{Code: 552, Enhanced: "5.3.4", Message: "Message too big"}})
		return
	}
	if !s.bdat.active {
		id, ok := s.openMessage()
		if !ok {
			s.skipChunk(size)
			return
		}
		s.bdat = chunking{active: true, id: id, deadline: deadline(s.lim.DataTimeLimit)}
		s.bdat.rd.Reset(s.lim.MaxTextLine)
		s.newSink(id)
	} else if s.pastTimeLimit() {
		return
	}
	if s.br.Buffered() == 0 && s.flush() != nil { // the replies so far, before waiting
		s.quit = true
		return
	}
	sink := s.sink
	s.cr.inData, s.cr.dataTimeout, s.cr.dataDeadline = true, s.lim.DataTimeout, s.bdat.deadline
	err = s.bdat.rd.Read(s.br, size, sink)
	if err == nil && last {
		err = s.bdat.rd.End(sink)
	}
	s.cr.inData, s.cr.dataTimeout, s.cr.dataDeadline = false, 0, time.Time{}
	if errors.Is(err, os.ErrDeadlineExceeded) && !s.bdat.deadline.IsZero() && !time.Now().Before(s.bdat.deadline) {
		err = errDataTimeLimit
	}
	switch {
	case err != nil:
		// RFC 3030 §2: the transaction has failed; later chunks get 503.
		s.dataError(err)
		s.resetTx()
	case !last:
		s.reply(250, "2.0.0", strconv.FormatInt(s.bdat.rd.Size(), 10)+" octets received")
	default:
		s.acceptMessage(s.bdat.id, sink)
		s.resetTx()
	}
}

// refuseChunk answers a BDAT refused before its chunk was read, reads
// the chunk past, and ends the transaction (RFC 3030 §2: the following
// chunks get 503).
func (s *session) refuseChunk(size int64, e *labeledError) {
	s.fail(e.label, e.err)
	s.resetTx()
	s.skipChunk(size)
}

// skipChunk reads past the size octets of a refused chunk, under the
// data timeouts. A chunk larger than the message size limit is not
// read: the session is closed instead (RFC 3030 §2 allows either), so
// that a client announcing 2^63 octets costs nothing.
func (s *session) skipChunk(size int64) {
	if s.quit || size == 0 {
		return
	}
	if max := s.lim.MaxMessageSize; max > 0 && size > max {
		s.log.Info("closing: chunk too large to read past", "size", size)
		s.quit = true
		return
	}
	if s.br.Buffered() == 0 && s.flush() != nil {
		s.quit = true
		return
	}
	limit := deadline(s.lim.DataTimeLimit)
	s.cr.inData, s.cr.dataTimeout, s.cr.dataDeadline = true, s.lim.DataTimeout, limit
	err := smtp.DiscardN(s.br, size)
	s.cr.inData, s.cr.dataTimeout, s.cr.dataDeadline = false, 0, time.Time{}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && !limit.IsZero() && !time.Now().Before(limit) {
			err = errDataTimeLimit
		}
		s.dataError(err)
		s.quit = true
	}
}

// pastTimeLimit answers 421 and reports true when the message in
// chunks has passed Limits.DataTimeLimit, counted from its first chunk:
// a client may not stretch a message over NOOPs and slow chunks.
func (s *session) pastTimeLimit() bool {
	if !s.bdat.active || s.bdat.deadline.IsZero() || time.Now().Before(s.bdat.deadline) {
		return false
	}
	s.dataError(errDataTimeLimit)
	s.resetTx()
	return true
}

// bdatBlocks answers the commands that a message in chunks does not
// allow before its LAST and reports true for them: RCPT and DATA get
// 503 and end the transaction (RFC 3030 §2: DATA after BDAT is a bad
// sequence; a recipient added after the content began would not be
// the milters'), and any command past the data time limit gets 421.
func (s *session) bdatBlocks(verb string) bool {
	if !s.bdat.active {
		return false
	}
	if s.pastTimeLimit() {
		return true
	}
	switch verb {
	case "DATA":
		s.fail("sequence", errSeq("DATA not allowed after BDAT (RFC 3030)"))
	case "RCPT":
		s.fail("sequence", errSeq("RCPT not allowed after BDAT"))
	default:
		return false
	}
	s.resetTx()
	return true
}

// chunked returns the octets of the message in chunks taken so far.
func (s *session) chunked() int64 {
	if !s.bdat.active {
		return 0
	}
	return s.bdat.rd.Size()
}

// dropChunks releases the message in chunks, if any: its sink, its
// spool file and its budget (resetTx, and the end of the session).
func (s *session) dropChunks() {
	if s.bdat.active {
		s.bdat.active = false
		s.sink.release()
	}
}
