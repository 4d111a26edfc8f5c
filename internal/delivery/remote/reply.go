package remote

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"postern/internal/smtp"
)

// maxReplyLine is the longest reply line accepted, CRLF included. RFC 5321
// §4.5.3.1.5 says 512; real servers sometimes send longer text, so allow
// some slack while keeping the read bounded.
const maxReplyLine = 2048

// maxReplyLines bounds a multi-line reply (an EHLO reply has one line per
// extension; a few dozen is generous).
const maxReplyLines = 128

// errBadReply is wrapped when a server's reply is not valid SMTP.
var errBadReply = errors.New("malformed reply")

// reply is one SMTP reply (RFC 5321 §4.2): its code, the RFC 3463
// enhanced status code of its first line when present, and its text lines
// with the code (and enhanced code) removed.
type reply struct {
	Code     int
	Enhanced string
	Lines    []string
}

// Text returns the reply's text lines joined by a space.
func (r reply) Text() string { return strings.Join(r.Lines, " ") }

// String returns the reply as "CODE ENHANCED TEXT" for logs and errors.
func (r reply) String() string {
	s := fmt.Sprintf("%d", r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if t := r.Text(); t != "" {
		s += " " + t
	}
	return s
}

// err returns the reply as an *smtp.Error.
func (r reply) err() *smtp.Error {
	return &smtp.Error{Code: r.Code, Enhanced: r.Enhanced, Message: r.Text()}
}

// readReply reads one possibly multi-line reply (RFC 5321 §4.2.1): lines
// "CODE-text" continue, "CODE text" (or "CODE" alone) ends. Every line must
// carry the same code. The enhanced code (RFC 2034 §4) is taken from the
// first line when its class matches the reply code, and removed from every
// line that carries it.
func readReply(r *smtp.Reader) (reply, error) {
	var rep reply
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			return rep, fmt.Errorf("%w: more than %d lines", errBadReply, maxReplyLines)
		}
		line, err := r.ReadLine(maxReplyLine)
		if err != nil {
			return rep, err
		}
		if len(line) < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) ||
			line[0] < '2' || line[0] > '5' || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return rep, fmt.Errorf("%w: %q", errBadReply, truncate(string(line), 80))
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if n == 0 {
			rep.Code = code
		} else if code != rep.Code {
			return rep, fmt.Errorf("%w: code %d inside reply %d", errBadReply, code, rep.Code)
		}
		text := ""
		if len(line) > 4 {
			text = string(line[4:])
		}
		if enh, rest, ok := splitEnhanced(text, line[0]); ok {
			if n == 0 {
				rep.Enhanced = enh
			}
			if enh == rep.Enhanced {
				text = rest
			}
		}
		rep.Lines = append(rep.Lines, text)
		if len(line) == 3 || line[3] == ' ' {
			return rep, nil
		}
	}
}

// splitEnhanced splits "X.Y.Z rest" into the enhanced code and rest when
// the code is well formed and its class is class (RFC 3463 §2).
func splitEnhanced(text string, class byte) (enh, rest string, ok bool) {
	i := strings.IndexByte(text, ' ')
	word := text
	if i >= 0 {
		word, rest = text[:i], text[i+1:]
	}
	if len(word) < 5 || word[0] != class || word[1] != '.' {
		return "", "", false
	}
	parts := strings.Split(word[2:], ".")
	if len(parts) != 2 || !digits(parts[0], 3) || !digits(parts[1], 3) {
		return "", "", false
	}
	return word, rest, true
}

// digits reports whether s is 1 to max ASCII digits.
func digits(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// truncate shortens s to at most n bytes for logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// writeDotStuffed writes data as DATA content (RFC 5321 §4.5.2): a line
// that starts with "." gets another "." in front, every line ends with
// CRLF (a bare LF or bare CR becomes CRLF, so the next hop never sees a
// bare line ending, RFC 5321 §2.3.8), and a final CRLF is added when data
// does not end with one. The terminating ".CRLF" is not written.
func writeDotStuffed(w *bufio.Writer, data []byte) error {
	bol := true // at the beginning of a line
	start := 0  // first byte not yet written
	for i := 0; i < len(data); i++ {
		c := data[i]
		if bol && c == '.' {
			w.Write(data[start:i])
			w.WriteByte('.')
			start = i
		}
		bol = false
		switch c {
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			} else {
				w.Write(data[start:i])
				w.WriteString("\r\n")
				start = i + 1
			}
			bol = true
		case '\n':
			w.Write(data[start:i])
			w.WriteString("\r\n")
			start = i + 1
			bol = true
		}
	}
	w.Write(data[start:])
	if !bol {
		w.WriteString("\r\n")
	}
	return w.Flush()
}
