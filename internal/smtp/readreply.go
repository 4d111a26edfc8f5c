package smtp

import (
	"errors"
	"fmt"
	"strings"
)

// MaxReplyLine is the longest reply line ReadReply accepts, CRLF
// included. RFC 5321 §4.5.3.1.5 says 512; real servers sometimes send
// longer text, so there is some slack while the read stays bounded.
const MaxReplyLine = 2048

// MaxReplyLines bounds a multi-line reply (an EHLO reply has one line per
// extension; a few dozen is generous).
const MaxReplyLines = 128

// ErrBadReply is wrapped by ReadReply's error when a server's reply is
// not valid SMTP.
var ErrBadReply = errors.New("malformed reply")

// Reply is one reply read from an SMTP or LMTP server (RFC 5321 §4.2):
// its code, the RFC 3463 enhanced status code of its first line when
// present, and its text lines with the code (and enhanced code) removed.
type Reply struct {
	Code     int
	Enhanced string
	Lines    []string
}

// Text returns the reply's text lines joined by a space.
func (r Reply) Text() string { return strings.Join(r.Lines, " ") }

// String returns the reply as "CODE ENHANCED TEXT" for logs and errors.
func (r Reply) String() string {
	s := fmt.Sprintf("%d", r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if t := r.Text(); t != "" {
		s += " " + t
	}
	return s
}

// Err returns the reply as an *Error.
func (r Reply) Err() *Error {
	return &Error{Code: r.Code, Enhanced: r.Enhanced, Message: r.Text()}
}

// ReadReply reads one possibly multi-line reply (RFC 5321 §4.2.1): lines
// "CODE-text" continue, "CODE text" (or "CODE" alone) ends. Every line
// must carry the same code, from 200 to 599 (a client never receives a
// 1yz reply in SMTP). The enhanced code (RFC 2034 §4) is taken from the
// first line when its class matches the reply code, and removed from
// every line that carries the same one. A line longer than MaxReplyLine,
// a bare CR or LF in a line, or more than MaxReplyLines lines is an
// error; a malformed line wraps ErrBadReply.
func ReadReply(r *Reader) (Reply, error) {
	var rep Reply
	for n := 0; ; n++ {
		if n >= MaxReplyLines {
			return rep, fmt.Errorf("%w: more than %d lines", ErrBadReply, MaxReplyLines)
		}
		line, err := r.ReadLine(MaxReplyLine)
		if err != nil {
			return rep, err
		}
		if len(line) < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) ||
			line[0] < '2' || line[0] > '5' || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return rep, fmt.Errorf("%w: %q", ErrBadReply, clip(string(line), 80))
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if n == 0 {
			rep.Code = code
		} else if code != rep.Code {
			return rep, fmt.Errorf("%w: code %d inside reply %d", ErrBadReply, code, rep.Code)
		}
		text := ""
		if len(line) > 4 {
			text = string(line[4:])
		}
		word, rest, _ := strings.Cut(text, " ")
		if validEnhanced(word, line[0]) {
			if n == 0 {
				rep.Enhanced = word
			}
			if word == rep.Enhanced {
				text = rest
			}
		}
		rep.Lines = append(rep.Lines, text)
		if len(line) == 3 || line[3] == ' ' {
			return rep, nil
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// clip shortens s to at most n bytes for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
