package smtp

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Error is an SMTP reply that ends a command unsuccessfully (or any reply
// the session wants to send with a reason to log). Message is what the
// client is told; Reason is logged and never sent.
type Error struct {
	Code     int    // three-digit reply code, e.g. 550
	Enhanced string // RFC 3463 enhanced status code, e.g. "5.7.1"; "" for none
	Message  string // text for the client; may contain "\n" for a multi-line reply
	Reason   string // text for the log only
}

// Error returns "CODE ENHANCED MESSAGE", followed by " (reason: REASON)"
// when Reason is set, e.g. "550 5.7.1 relaying denied (reason: not local)".
// The enhanced code is left out when it is "".
func (e *Error) Error() string {
	var b strings.Builder
	b.Grow(8 + len(e.Enhanced) + len(e.Message) + len(e.Reason) + 12)
	b.WriteString(strconv.Itoa(e.Code))
	if e.Enhanced != "" {
		b.WriteByte(' ')
		b.WriteString(e.Enhanced)
	}
	if e.Message != "" {
		b.WriteByte(' ')
		b.WriteString(e.Message)
	}
	if e.Reason != "" {
		b.WriteString(" (reason: ")
		b.WriteString(e.Reason)
		b.WriteByte(')')
	}
	return b.String()
}

// NewError returns an Error with the given code, enhanced code and message.
func NewError(code int, enhanced, message string) *Error {
	return &Error{Code: code, Enhanced: enhanced, Message: message}
}

// WithReason returns a copy of e whose Reason is reason; e is unchanged,
// so a shared *Error value can be given a reason per use.
func (e *Error) WithReason(reason string) *Error {
	c := *e
	c.Reason = reason
	return &c
}

// WriteReplyTo writes e as a reply to w with WriteReply, splitting
// Message into lines at CR and LF; Reason is not written. It does not
// flush w.
func (e *Error) WriteReplyTo(w *bufio.Writer) error {
	return WriteReply(w, e.Code, e.Enhanced, e.Message)
}

// WriteReply writes one reply: each line is "CODE-ENH TEXT" except the
// last, "CODE ENH TEXT" (RFC 5321 §4.2.1), CRLF-terminated; enhanced may be
// "" (then no enhanced code is written, as for the greeting and EHLO). A
// line of text containing CR or LF is split there (CRLF, CR and LF each end
// one line), so no text can inject a line of its own. With no lines, it
// writes "CODE ENH" alone. code must be in 200..599 and enhanced, when
// given, must be a well-formed RFC 3463 code whose class is the first
// digit of code; otherwise nothing is written and an error returned. It
// does not flush w; a write error of w is returned as it is.
func WriteReply(w *bufio.Writer, code int, enhanced string, lines ...string) error {
	if code < 200 || code > 599 {
		return fmt.Errorf("smtp: write reply: code %d out of range", code)
	}
	if enhanced != "" && !validEnhanced(enhanced, byte('0'+code/100)) {
		return fmt.Errorf("smtp: write reply: bad enhanced code %q for %d", enhanced, code)
	}
	d0, d1, d2 := byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10)

	// Count the lines after splitting, so the last one gets the space.
	total := 0
	for _, l := range lines {
		total += countLines(l)
	}
	if total == 0 {
		w.WriteByte(d0)
		w.WriteByte(d1)
		w.WriteByte(d2)
		if enhanced != "" {
			w.WriteByte(' ')
			w.WriteString(enhanced)
		}
		_, err := w.WriteString("\r\n")
		return err
	}
	n := 0
	for _, l := range lines {
		for {
			i := strings.IndexAny(l, "\r\n")
			text := l
			if i >= 0 {
				text = l[:i]
			}
			n++
			// WriteByte, not Write of an array, which would escape.
			w.WriteByte(d0)
			w.WriteByte(d1)
			w.WriteByte(d2)
			switch {
			case n < total:
				w.WriteByte('-')
			case enhanced != "" || text != "":
				w.WriteByte(' ') // none before CRLF (RFC 5321 §4.2.1)
			}
			if enhanced != "" {
				w.WriteString(enhanced)
				if text != "" {
					w.WriteByte(' ')
				}
			}
			w.WriteString(text)
			if _, err := w.WriteString("\r\n"); err != nil {
				return err
			}
			if i < 0 {
				break
			}
			if l[i] == '\r' && i+1 < len(l) && l[i+1] == '\n' {
				i++
			}
			l = l[i+1:]
		}
	}
	return nil
}

// countLines returns how many reply lines WriteReply makes of s.
func countLines(s string) int {
	n := 1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			n++
		case '\n':
			n++
		}
	}
	return n
}

// validEnhanced reports whether s is class "." subject "." detail with
// the given class (RFC 3463 §2: class is 2, 4 or 5; subject and detail
// are 1 to 3 digits).
func validEnhanced(s string, class byte) bool {
	if len(s) < 5 || s[0] != class || s[1] != '.' {
		return false
	}
	rest := s[2:]
	dot := strings.IndexByte(rest, '.')
	if dot < 0 {
		return false
	}
	return digits1to3(rest[:dot]) && digits1to3(rest[dot+1:])
}

// digits1to3 reports whether s is 1 to 3 ASCII digits.
func digits1to3(s string) bool {
	if len(s) < 1 || len(s) > 3 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
