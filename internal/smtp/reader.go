package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Errors returned by Reader.ReadLine and ReadData for hostile input. In
// each case the offending line (through its LF) has been consumed.
var (
	// ErrLineTooLong means a line, CRLF included, was longer than the
	// limit (RFC 5321 §4.5.3.1.4, §4.5.3.1.6).
	ErrLineTooLong = errors.New("smtp: line too long")
	// ErrBareLF means an LF was not preceded by CR (RFC 5321 §2.3.8).
	ErrBareLF = errors.New("smtp: bare LF")
	// ErrBareCR means a CR was not immediately followed by LF
	// (RFC 5321 §2.3.8).
	ErrBareCR = errors.New("smtp: bare CR")
	// ErrNUL means a line held a NUL byte.
	ErrNUL = errors.New("smtp: NUL byte")
	// ErrTooBig means a message was longer than DataLimits.MaxSize; the
	// session replies 552 5.3.4 (RFC 5321 §4.5.3.1.10, RFC 3463 §3.4).
	ErrTooBig = errors.New("smtp: message too big")
)

// Reader reads CRLF-terminated command lines with limits. It is not safe
// for concurrent use.
type Reader struct {
	br  *bufio.Reader
	buf []byte // the current line, reused; never longer than max
}

// NewReader returns a Reader on br. The session keeps br so that it can
// discard buffered bytes at STARTTLS (RFC 3207 §4.2) and check Buffered()
// for pipelining.
func NewReader(br *bufio.Reader) *Reader { return &Reader{br: br} }

// Reset makes r read from br, keeping its line buffer.
func (r *Reader) Reset(br *bufio.Reader) { r.br = br }

// ReadLine reads one line and returns it without its CRLF. max is the
// longest line allowed including CRLF (512 for commands, RFC 5321
// §4.5.3.1.4). A longer line is consumed through its LF and ErrLineTooLong
// returned, without buffering more than max bytes. A line with a bare LF
// (LF not preceded by CR), a bare CR (CR not immediately followed by LF)
// or a NUL returns ErrBareLF, ErrBareCR or ErrNUL after the line is
// consumed; when a line has several faults, ErrLineTooLong wins, then
// ErrBareCR, then ErrBareLF, then ErrNUL. So after any of these errors the
// next call starts at the next line. I/O errors are returned as they are
// (io.EOF when the peer closed between lines, io.ErrUnexpectedEOF when it
// closed within one, whether or not the line was too long). The returned
// slice is valid until the next call.
func (r *Reader) ReadLine(max int) ([]byte, error) {
	r.buf = r.buf[:0]
	tooLong := false
	started := false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(chunk) > 0 {
			started = true
		}
		if !tooLong {
			if len(r.buf)+len(chunk) > max {
				tooLong = true
				r.buf = r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk...)
			}
		}
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && started {
			err = io.ErrUnexpectedEOF
		}
		r.buf = r.buf[:0]
		return nil, err
	}
	if tooLong {
		return nil, ErrLineTooLong
	}
	line := r.buf
	n := len(line) - 1 // index of the LF
	// A CR is allowed only just before the LF; the first CR found there
	// is the only one.
	if i := bytes.IndexByte(line[:n], '\r'); i >= 0 && i != n-1 {
		return nil, ErrBareCR
	}
	if n == 0 || line[n-1] != '\r' {
		return nil, ErrBareLF
	}
	line = line[:n-1]
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, ErrNUL
	}
	return line, nil
}
