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
// content error met: ErrTooBig (when the bytes appended would pass
// MaxSize; dst never gets more than MaxSize bytes from one call),
// ErrLineTooLong, ErrBareCR, ErrBareLF or ErrNUL (for a line with several
// faults, in that order, except that a bare CR in an earlier part of a
// long line is met first). After an error dst holds the lines before the
// one at fault, and none of that line.
// I/O errors are returned at once, an end of input before the terminator
// as io.ErrUnexpectedEOF.
func ReadData(br *bufio.Reader, dst *bytes.Buffer, lim DataLimits) error {
	maxLine := lim.MaxLine
	if maxLine <= 0 {
		maxLine = MaxTextLine
	}
	maxSize := lim.MaxSize
	var (
		firstErr  error
		written   int64
		lineLen   int    // bytes of the current line read so far
		clean     = true // the current line starts data or follows a CRLF
		prevCR    bool   // the previous chunk of this line ended with CR
		lineStart int    // dst.Len() when the current line began
	)
	for {
		c, err := br.ReadSlice('\n')
		full := false
		if err != nil {
			if err != bufio.ErrBufferFull {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
			// c fills the buffer and holds no LF; the line goes on.
			full = true
		}
		first := lineLen == 0
		if first {
			lineStart = dst.Len()
		}
		lineLen += len(c)
		// RFC 5321 §4.5.2: CRLF "." CRLF ends the message. ReadSlice
		// returns a partial line only when it fills the whole buffer
		// (at least 16 bytes), so the 3-byte line comes in one piece.
		if first && clean && !full && len(c) == 3 && c[0] == '.' && c[1] == '\r' {
			return firstErr
		}
		if firstErr == nil {
			firstErr = checkChunk(c, full, prevCR, lineLen, maxLine)
			if firstErr != nil {
				// Drop what was kept of the line at fault, so that dst
				// does not depend on the buffer size.
				dst.Truncate(lineStart)
			} else {
				text := c
				if first && c[0] == '.' {
					text = c[1:] // RFC 5321 §4.5.2 transparency
				}
				if maxSize > 0 && written+int64(len(text)) > maxSize {
					firstErr = ErrTooBig
					written -= int64(dst.Len() - lineStart)
					dst.Truncate(lineStart)
				} else {
					dst.Write(text)
					written += int64(len(text))
				}
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

// checkChunk checks one chunk c of a data line as ReadSlice returned it:
// full means c filled the buffer without an LF; otherwise c ends with the
// line's LF. prevCR is whether the previous chunk of the line ended in CR,
// lineLen the length of the line so far including c.
func checkChunk(c []byte, full, prevCR bool, lineLen, maxLine int) error {
	if lineLen > maxLine {
		return ErrLineTooLong
	}
	n := len(c)
	if prevCR && c[0] != '\n' {
		return ErrBareCR
	}
	// The only CR allowed in c is the one just before its LF, or its last
	// byte when the LF has not been read yet; a first CR there is the only
	// CR, since nothing but the LF may follow it.
	allowed := n - 2
	if full {
		allowed = n - 1
	}
	if i := bytes.IndexByte(c, '\r'); i >= 0 && i != allowed {
		return ErrBareCR
	}
	if !full && !(n >= 2 && c[n-2] == '\r' || n == 1 && prevCR) {
		return ErrBareLF
	}
	if bytes.IndexByte(c, 0) >= 0 {
		return ErrNUL
	}
	return nil
}
