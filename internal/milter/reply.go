package milter

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"postern/internal/smtp"
)

// Action is what a milter decided about a connection, a command or a
// message.
type Action int

// The actions of a Response.
const (
	// Continue goes on to the next stage (SMFIR_CONTINUE).
	Continue Action = iota
	// Accept takes what is left without asking this milter again: the
	// rest of the message, or at connect and HELO the rest of the
	// connection (SMFIR_ACCEPT).
	Accept
	// Reject refuses permanently: the connection, the command (one
	// recipient at RCPT) or the message (SMFIR_REJECT, or
	// SMFIR_REPLYCODE with a 5xx reply).
	Reject
	// Tempfail refuses for now (SMFIR_TEMPFAIL, SMFIR_REPLYCODE with a
	// 4xx reply, SMFIR_SHUTDOWN).
	Tempfail
	// Discard takes the message and drops it (SMFIR_DISCARD).
	Discard
)

// String returns the action's name for logs and metrics: "continue",
// "accept", "reject", "tempfail" or "discard".
func (a Action) String() string {
	switch a {
	case Continue:
		return "continue"
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Tempfail:
		return "tempfail"
	case Discard:
		return "discard"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Response is a milter's answer to one event.
type Response struct {
	// Action is what the milter decided.
	Action Action
	// Reply is the milter's own SMTP reply for a Reject or a Tempfail
	// (SMFIR_REPLYCODE, SMFIR_SHUTDOWN); nil means the MTA's default
	// text for the action.
	Reply *Reply
}

// Reply is an SMTP reply a milter chose (RFC 5321 §4.2).
type Reply struct {
	// Code is the reply code, 400 to 599.
	Code int
	// Enhanced is the RFC 3463 enhanced status code of its first line,
	// "" when it has none.
	Enhanced string
	// Text is the reply's text, its lines joined by "\n".
	Text string
}

// String returns the reply as "CODE ENHANCED TEXT" on one line.
func (r *Reply) String() string {
	s := fmt.Sprint(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	if r.Text != "" {
		s += " " + strings.ReplaceAll(r.Text, "\n", " ")
	}
	return s
}

// maxReplyText bounds the reply a milter may choose.
const maxReplyText = 4096

// parseReplyCode parses the data of SMFIR_REPLYCODE: a NUL-terminated
// SMTP reply such as "550 5.7.1 Spam message rejected", possibly of
// several lines separated by CRLF (smfi_setmlreply). The code must be
// 4xx or 5xx, every line must carry it, and the text must be printable.
// Sendmail uses the reply as a format string, so milters double their
// '%'; as Postfix does, "%%" becomes "%" and a lone '%' is dropped.
func parseReplyCode(data []byte) (*Reply, error) {
	strs, err := cstrings(data)
	if err != nil {
		return nil, err
	}
	if len(strs) != 1 || strs[0] == "" || len(strs[0]) > maxReplyText {
		return nil, fmt.Errorf("%w: SMFIR_REPLYCODE is not one reply of 1 to %d bytes", errProtocol, maxReplyText)
	}
	text := unpercent(strs[0])
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < ' ' && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			return nil, fmt.Errorf("%w: control character in reply %q", errProtocol, text)
		}
	}
	br := bufio.NewReader(strings.NewReader(text + "\r\n"))
	r, err := smtp.ReadReply(smtp.NewReader(br))
	if err != nil {
		return nil, fmt.Errorf("%w: reply %q: %v", errProtocol, text, err)
	}
	if br.Buffered() > 0 {
		return nil, fmt.Errorf("%w: reply %q: lines after its last", errProtocol, text)
	}
	if r.Code < 400 {
		return nil, fmt.Errorf("%w: reply %q is not 4xx or 5xx", errProtocol, text)
	}
	return &Reply{Code: r.Code, Enhanced: r.Enhanced, Text: strings.Join(r.Lines, "\n")}, nil
}

// unpercent undoes Sendmail's format-string quoting: "%%" is '%', a
// lone '%' is dropped.
func unpercent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			b.WriteByte('%')
			i++
		}
	}
	return b.String()
}

// parseResponse turns a packet answering an event into a Response.
// Progress packets are handled by the caller; skip reports SMFIR_SKIP.
func parseResponse(p packet) (r Response, skip bool, err error) {
	if p.code != repReplyCode && len(p.data) != 0 {
		return r, false, fmt.Errorf("%w: reply %q with %d bytes of data", errProtocol, p.code, len(p.data))
	}
	switch p.code {
	case repContinue:
		return Response{Action: Continue}, false, nil
	case repAccept:
		return Response{Action: Accept}, false, nil
	case repReject:
		return Response{Action: Reject}, false, nil
	case repTempfail:
		return Response{Action: Tempfail}, false, nil
	case repDiscard:
		return Response{Action: Discard}, false, nil
	case repSkip:
		return Response{Action: Continue}, true, nil
	case repShutdown:
		// Postfix's answer to SMFIR_SHUTDOWN: 421, and the connection
		// closes.
		return Response{Action: Tempfail, Reply: &Reply{Code: 421, Enhanced: "4.7.0", Text: "Server closing connection"}}, false, nil
	case repReplyCode:
		rep, err := parseReplyCode(p.data)
		if err != nil {
			return r, false, err
		}
		a := Reject
		if rep.Code < 500 {
			a = Tempfail
		}
		return Response{Action: a, Reply: rep}, false, nil
	}
	return r, false, fmt.Errorf("%w: unexpected reply %q", errProtocol, p.code)
}
