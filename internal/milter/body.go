package milter

import (
	"fmt"
	"io"
)

// BodyWriter takes a new body as a milter sends it, from a Transaction.
type BodyWriter interface {
	io.Writer
	// Commit makes what was written the message's body.
	Commit() error
	// Discard drops what was written.
	Discard()
}

// bodyNormalizer checks and normalizes a replacement body on its way to
// a BodyWriter, as the session's DATA reader would a client's: every
// line end becomes CRLF (a lone LF or CR too, as Postfix takes them: a
// bare one would reach the next hop), NUL is refused, lines are at most
// maxLine bytes with their CRLF, the body at most maxSize bytes. It
// holds no more than its small buffer.
type bodyNormalizer struct {
	w       BodyWriter
	maxLine int
	maxSize int64
	size    int64
	line    int  // bytes of the current line
	cr      bool // the last byte was a CR
	buf     []byte
}

func newBodyNormalizer(w BodyWriter, maxLine int, maxSize int64) *bodyNormalizer {
	return &bodyNormalizer{w: w, maxLine: maxLine, maxSize: maxSize, buf: make([]byte, 0, 32<<10)}
}

// Write normalizes p.
func (n *bodyNormalizer) Write(p []byte) (int, error) {
	for _, c := range p {
		if n.cr {
			n.cr = false
			if err := n.emit('\r', '\n'); err != nil {
				return 0, err
			}
			if c == '\n' {
				continue
			}
		}
		switch c {
		case '\r':
			n.cr = true
		case '\n':
			if err := n.emit('\r', '\n'); err != nil {
				return 0, err
			}
		case 0:
			return 0, fmt.Errorf("%w: NUL in the new body", errProtocol)
		default:
			if n.line+3 > n.maxLine {
				return 0, fmt.Errorf("%w: a line of the new body is longer than %d bytes", errProtocol, n.maxLine)
			}
			if err := n.emit(c); err != nil {
				return 0, err
			}
		}
	}
	return len(p), nil
}

// emit appends bytes of output: one byte of text, or a CRLF.
func (n *bodyNormalizer) emit(b ...byte) error {
	if n.size += int64(len(b)); n.size > n.maxSize {
		return fmt.Errorf("%w: the new body is larger than %d bytes", errProtocol, n.maxSize)
	}
	if len(b) == 2 {
		n.line = 0
	} else {
		n.line++
	}
	n.buf = append(n.buf, b...)
	if len(n.buf) >= cap(n.buf)-2 {
		return n.flush()
	}
	return nil
}

func (n *bodyNormalizer) flush() error {
	if len(n.buf) == 0 {
		return nil
	}
	_, err := n.w.Write(n.buf)
	n.buf = n.buf[:0]
	if err != nil {
		return err
	}
	return nil
}

// close ends the last line when it has no line end, writes what is
// buffered and commits the body.
func (n *bodyNormalizer) close() error {
	if n.cr || n.line > 0 {
		n.cr = false
		if err := n.emit('\r', '\n'); err != nil {
			return err
		}
	}
	if err := n.flush(); err != nil {
		return err
	}
	return n.w.Commit()
}
