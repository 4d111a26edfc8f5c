package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrChunkSyntax is the error of ParseBDAT for an argument whose chunk
// size is not a number: the server cannot tell where the chunk ends,
// so the session has lost its framing and must be closed.
var ErrChunkSyntax = errors.New("smtp: BDAT: chunk size is not a number")

// ErrChunkMarker is the error of ParseBDAT for an argument with a valid
// chunk size followed by something other than LAST: the chunk can be
// read past, and refused.
var ErrChunkMarker = errors.New("smtp: BDAT: end marker is not LAST")

// ParseBDAT parses the argument of BDAT (RFC 3030 §2: chunk-size
// [SP end-marker], chunk-size 1*DIGIT, end-marker "LAST"). A size too
// large for an int64 is returned as math.MaxInt64: it is a number, too
// big for any message. An argument whose size is not a number fails
// with ErrChunkSyntax (size is then meaningless); a size followed by
// anything but LAST fails with ErrChunkMarker, size valid.
func ParseBDAT(arg string) (size int64, last bool, err error) {
	num, rest, _ := strings.Cut(arg, " ")
	if num == "" || len(num) > 100 {
		return 0, false, ErrChunkSyntax
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return 0, false, ErrChunkSyntax
		}
	}
	size, err = strconv.ParseInt(num, 10, 64)
	if err != nil { // only ErrRange is left: digits past int64
		size = math.MaxInt64
	}
	switch {
	case len(arg) == len(num):
		return size, false, nil
	case strings.EqualFold(rest, "LAST"):
		return size, true, nil
	}
	return size, false, ErrChunkMarker
}

// ChunkReader reads the message a client sends in BDAT chunks
// (RFC 3030 §2): each chunk is exactly the octets announced, with no
// dot-stuffing and no terminator, and the message is their
// concatenation. CHUNKING without BINARYMIME still carries a text
// message, so ChunkReader checks its lines across chunk boundaries as
// ReadData does: a bare CR or LF (RFC 5321 §2.3.8), a NUL or a line
// longer than the limit (RFC 5321 §4.5.3.1.6) refuses the message, which
// may leave by DATA, where a bare line ending would be a smuggling
// vector. The zero ChunkReader is ready, with MaxTextLine; Reset starts
// a new message.
type ChunkReader struct {
	maxLine int
	lineLen int   // octets of the current line so far
	prevCR  bool  // the last octet read was a CR
	size    int64 // octets of message read
	err     error // the first fault met
}

// Reset makes r ready for a new message whose lines, CRLF included,
// are at most maxLine octets (0 or less: MaxTextLine).
func (r *ChunkReader) Reset(maxLine int) {
	if maxLine <= 0 {
		maxLine = MaxTextLine
	}
	*r = ChunkReader{maxLine: maxLine}
}

// Size returns the octets of the message read so far.
func (r *ChunkReader) Size() int64 { return r.size }

// Read reads one chunk of n octets from br and appends it to dst. It
// reads all n octets whatever they hold, so that the session stays in
// step with the client, and returns the message's first content error
// (ErrLineTooLong, ErrBareCR, ErrBareLF, ErrNUL) or dst's Write error;
// dst gets nothing more once one is met, and nothing of the piece that
// held it. An I/O error is returned at once, the end of input inside
// the chunk as io.ErrUnexpectedEOF.
func (r *ChunkReader) Read(br *bufio.Reader, n int64, dst io.Writer) error {
	if r.maxLine == 0 {
		r.maxLine = MaxTextLine
	}
	for n > 0 {
		if br.Buffered() == 0 {
			if _, err := br.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		p, _ := br.Peek(int(min(int64(br.Buffered()), n))) // no I/O
		if r.err == nil {
			if f := r.check(p); f != 0 {
				r.err = f.err()
			} else if _, err := dst.Write(p); err != nil {
				r.err = err
			}
		}
		br.Discard(len(p))
		n -= int64(len(p))
		r.size += int64(len(p))
	}
	return r.err
}

// End ends the message after its last chunk: a last line without its
// line ending gets CRLF, written to dst, so that the message is text
// again; a final CR alone is a bare CR. It returns the message's first
// error, as Read does.
func (r *ChunkReader) End(dst io.Writer) error {
	if r.maxLine == 0 {
		r.maxLine = MaxTextLine
	}
	switch {
	case r.err != nil:
	case r.prevCR:
		r.err = ErrBareCR
	case r.lineLen > 0 && r.lineLen+2 > r.maxLine:
		r.err = ErrLineTooLong
	case r.lineLen > 0:
		if _, err := io.WriteString(dst, "\r\n"); err != nil {
			r.err = err
		}
		r.lineLen = 0
	}
	return r.err
}

// check checks the lines in p, which follow what was read before, and
// returns their faults; it keeps the state of the last line.
func (r *ChunkReader) check(p []byte) lineFaults {
	for len(p) > 0 {
		seg, partial := p, true
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			seg, partial = p[:i+1], false
		}
		f := checkChunk(seg, partial, r.prevCR)
		r.lineLen += len(seg)
		if r.lineLen > r.maxLine {
			f |= lineTooLong
		}
		if f != 0 {
			return f
		}
		if partial {
			r.prevCR = seg[len(seg)-1] == '\r'
		} else {
			r.lineLen, r.prevCR = 0, false
		}
		p = p[len(seg):]
	}
	return 0
}

// DiscardN reads and drops n octets from br (a chunk refused before it
// was read). An I/O error is returned at once, the end of input as
// io.ErrUnexpectedEOF.
func DiscardN(br *bufio.Reader, n int64) error {
	for n > 0 {
		k, err := br.Discard(int(min(n, 1<<30)))
		n -= int64(k)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}
