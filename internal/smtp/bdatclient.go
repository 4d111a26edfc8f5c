package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// ErrChunkChanged is returned by Client.Bdat when the message did not
// give the octets counted for its chunk: the chunk was not completed
// and the Client is broken.
var ErrChunkChanged = errors.New("smtp: BDAT: the message changed while it was sent")

// ChunkSize returns the size of m as a NewChunkWriter writes it: its
// octets with each bare CR or LF made CRLF and, when it does not end
// with a line ending, CRLF at the end. The body is read as a stream.
func ChunkSize(m *Message) (int64, error) {
	var lc lineCounter
	lc.Write(m.Header)
	if _, err := m.Body.WriteTo(&lc); err != nil {
		return 0, fmt.Errorf("smtp: read the message: %w", err)
	}
	return lc.total(), nil
}

// lineCounter counts the octets a chunk DataWriter writes for what is
// written to it, without copying them.
type lineCounter struct {
	n    int64
	cr   bool // the last octet was a CR (counted as a bare one)
	last byte // the last octet, when n > 0
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	crlf := bytes.Count(p, []byte("\r\n"))
	n := int64(len(p)) +
		int64(bytes.Count(p, []byte{'\r'})-crlf) + // each bare CR gets an LF
		int64(bytes.Count(p, []byte{'\n'})-crlf) // each bare LF gets a CR
	if c.cr && p[0] == '\n' {
		n -= 2 // the CR ending the last piece and this LF are a CRLF
	}
	c.n += n
	c.last = p[len(p)-1]
	c.cr = c.last == '\r'
	return len(p), nil
}

// total returns the count, with the CRLF added at the end of content
// that does not end with a line ending.
func (c *lineCounter) total() int64 {
	if c.n > 0 && c.last != '\n' && c.last != '\r' {
		return c.n + 2
	}
	return c.n
}

// Bdat sends m as one chunk, "BDAT size LAST" (RFC 3030 §2), with the
// content as NewChunkWriter writes it (CRLF line endings, no
// dot-stuffing), each block within d, and reads nothing: the caller
// reads the reply, or with LMTP one reply per accepted recipient, as
// after Data. The size is counted first in a pass over the message
// (ChunkSize); the body is streamed, never held in memory. A body that
// cannot be read, or that does not give the octets counted, leaves the
// Client broken with the chunk incomplete: the server takes no part of
// the message, and never reads message octets as commands.
func (c *Client) Bdat(d time.Duration, m *Message) error {
	size, err := ChunkSize(m)
	if err != nil {
		return err
	}
	c.deadline(d)
	line := "BDAT " + strconv.FormatInt(size, 10) + " LAST\r\n"
	if err := c.bw.Flush(); err != nil {
		c.broken = true
		return err
	}
	c.room = int64(len(line)) + size
	defer func() { c.room = -1 }()
	c.bw.WriteString(line)
	w := NewChunkWriter(c.bw)
	if _, err := w.Write(m.Header); err != nil {
		c.broken = true
		return err
	}
	if _, err := m.Body.WriteTo(w); err != nil {
		c.broken = true
		return err
	}
	if err := w.Close(); err != nil { // flushes
		c.broken = true
		return err
	}
	if c.room != 0 {
		c.broken = true
		return ErrChunkChanged
	}
	return nil
}

// errChunkOverrun is the write error past the end of a chunk.
var errChunkOverrun = fmt.Errorf("%w (more octets than counted)", ErrChunkChanged)

// limitChunk cuts p to the room left in the chunk being sent (Bdat).
func (c *Client) limitChunk(p []byte) ([]byte, error) {
	if c.room < 0 {
		return p, nil
	}
	if int64(len(p)) > c.room {
		return p[:c.room], errChunkOverrun
	}
	return p, nil
}

var _ io.Writer = (*lineCounter)(nil)
