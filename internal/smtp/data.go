package smtp

import (
	"bufio"
	"bytes"
	"io"
)

// DataLimits bounds what ReadData accepts.
type DataLimits struct {
	// MaxSize is the most bytes of message (after dot-unstuffing) that
	// one ReadData call appends to dst; 0 or less means no limit.
	MaxSize int64
	// MaxLine is the longest text line including CRLF, counted before
	// dot-unstuffing; 0 or less means MaxTextLine, 1000 (RFC 5321
	// §4.5.3.1.6).
	MaxLine int
}

// DataSink is where ReadData puts a message. *bytes.Buffer is one; a
// server that streams large messages to disk has its own.
type DataSink interface {
	// Write appends p. An error stops the copying: ReadData reads on to
	// the end of the data and returns the error (the first met).
	Write(p []byte) (int, error)
	// Len returns the number of bytes held.
	Len() int
	// Truncate discards all but the first n bytes held; ReadData calls
	// it only with n at least the Len it found on entry.
	Truncate(n int)
}

// ReadData reads a message after the 354 reply up to and including the
// terminating CRLF.CRLF, dot-unstuffs it (RFC 5321 §4.5.2) and appends it
// to dst with its CRLF line endings (the final ".\r\n" not included; an
// empty message appends nothing).
//
// Only CRLF "." CRLF ends the message, where the first CRLF is a real
// CRLF or the start of data (RFC 5321 §4.1.1.4). LF "." LF, CRLF "." LF
// and LF "." CRLF do not end it: their bare LF is an error and reading
// goes on to the real end, which closes SMTP smuggling.
//
// It always reads through the terminator, discarding the rest once an
// error is known, so the session stays in sync; then it returns the first
// content error met: ErrLineTooLong, ErrBareCR, ErrBareLF, ErrNUL or
// ErrTooBig (when the bytes appended would pass MaxSize; dst never gets
// more than MaxSize bytes from one call), or the error of a dst.Write
// (after which dst gets nothing more). The first line at fault decides;
// for a line with several faults the error is the first in that list, so
// the result never depends on how the input was buffered. After an error
// dst holds the lines before the one at fault, and none of that line.
// I/O errors are returned at once, an end of input before the terminator
// as io.ErrUnexpectedEOF; dst then holds the whole lines read before it.
func ReadData(br *bufio.Reader, dst DataSink, lim DataLimits) error {
	maxLine := lim.MaxLine
	if maxLine <= 0 {
		maxLine = MaxTextLine
	}
	maxSize := lim.MaxSize
	var (
		base      = dst.Len() // MaxSize counts from here
		firstErr  error
		lineLen   int        // bytes of the current line read so far
		lineStart int        // dst.Len() when the current line began
		faults    lineFaults // of the current line
		clean     = true     // the current line starts data or follows a CRLF
		prevCR    bool       // the previous chunk of this line ended with CR
	)
	fast := true // false once fastLines found a fault ahead
	for {
		if fast && firstErr == nil && lineLen == 0 {
			room := int64(-1)
			if maxSize > 0 {
				room = maxSize - int64(dst.Len()-base)
			}
			buf, _ := br.Peek(br.Buffered()) // no I/O
			n, ok, err := fastLines(buf, dst, room, maxLine)
			br.Discard(n)
			fast = ok
			if err != nil {
				firstErr = err
			}
		}
		c, err := br.ReadSlice('\n')
		full := false
		if err != nil {
			if err != bufio.ErrBufferFull {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				if firstErr == nil && lineLen > 0 {
					dst.Truncate(lineStart) // keep only whole lines
				}
				return err
			}
			// c fills the buffer and holds no LF; the line goes on.
			full = true
		}
		first := lineLen == 0
		lineLen += len(c)
		// RFC 5321 §4.5.2: CRLF "." CRLF ends the message. ReadSlice
		// returns a partial line only when it fills the whole buffer
		// (at least 16 bytes), so this 3-byte line comes in one piece.
		if first && clean && !full && len(c) == 3 && c[0] == '.' && c[1] == '\r' {
			return firstErr
		}
		if firstErr == nil {
			if first {
				lineStart = dst.Len()
				faults = 0
			}
			faults |= checkChunk(c, full, prevCR)
			if lineLen > maxLine {
				faults |= lineTooLong
			}
			if faults == 0 {
				text := c
				if first && c[0] == '.' {
					text = c[1:] // RFC 5321 §4.5.2 transparency
				}
				if maxSize > 0 && int64(dst.Len()-base+len(text)) > maxSize {
					faults |= lineTooBig
				} else if _, err := dst.Write(text); err != nil {
					firstErr = err
				}
			}
			if firstErr == nil && !full && faults != 0 {
				firstErr = faults.err()
				// Drop what was kept of the line at fault.
				dst.Truncate(lineStart)
			}
		}
		if full {
			prevCR = c[len(c)-1] == '\r'
			continue
		}
		n := len(c)
		clean = n >= 2 && c[n-2] == '\r' || n == 1 && prevCR
		lineLen = 0
		prevCR = false
	}
}

// fastLines appends to dst the lines at the start of buf that need no
// more than a copy: complete, ending in CRLF, no longer than maxLine, not
// starting with a dot (so neither stuffed nor the terminator), holding no
// other CR and no NUL, and fitting in room bytes (room < 0: no limit). It
// returns the bytes of buf it took; ok is false when a fault lies in the
// lines it looked at, so that the caller leaves them to the line-by-line
// path, which will meet the fault. err is dst's Write error.
func fastLines(buf []byte, dst DataSink, room int64, maxLine int) (n int, ok bool, err error) {
	lines := 0
	for n < len(buf) && buf[n] != '.' {
		i := bytes.IndexByte(buf[n:], '\n')
		if i < 1 || i >= maxLine || buf[n+i-1] != '\r' || room >= 0 && int64(n+i+1) > room {
			break
		}
		n += i + 1
		lines++
	}
	if n == 0 {
		return 0, true, nil
	}
	run := buf[:n]
	// Each line has its CR before the LF; any other CR is bare.
	if bytes.Count(run, []byte{'\r'}) != lines || bytes.IndexByte(run, 0) >= 0 {
		return 0, false, nil
	}
	_, err = dst.Write(run)
	return n, true, err
}

// lineFaults is a set of things wrong with one line of data.
type lineFaults uint8

const (
	lineTooLong lineFaults = 1 << iota
	lineBareCR
	lineBareLF
	lineNUL
	lineTooBig
)

// err returns the error for the most serious fault in f.
func (f lineFaults) err() error {
	switch {
	case f&lineTooLong != 0:
		return ErrLineTooLong
	case f&lineBareCR != 0:
		return ErrBareCR
	case f&lineBareLF != 0:
		return ErrBareLF
	case f&lineNUL != 0:
		return ErrNUL
	case f&lineTooBig != 0:
		return ErrTooBig
	}
	return nil
}

// checkChunk checks one chunk c of a data line as ReadSlice returned it:
// full means c filled the buffer without an LF; otherwise c ends with the
// line's LF. prevCR is whether the previous chunk of the line ended in CR.
func checkChunk(c []byte, full, prevCR bool) lineFaults {
	var f lineFaults
	n := len(c)
	if prevCR && c[0] != '\n' {
		f |= lineBareCR
	}
	// The only CR allowed in c is the one just before its LF, or its last
	// byte when the LF has not been read yet; a first CR there is the only
	// CR, since nothing but the LF may follow it.
	allowed := n - 2
	if full {
		allowed = n - 1
	}
	if i := bytes.IndexByte(c, '\r'); i >= 0 && i != allowed {
		f |= lineBareCR
	}
	if !full && !(n >= 2 && c[n-2] == '\r' || n == 1 && prevCR) {
		f |= lineBareLF
	}
	if bytes.IndexByte(c, 0) >= 0 {
		f |= lineNUL
	}
	return f
}
