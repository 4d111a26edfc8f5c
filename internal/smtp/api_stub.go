// Package smtp holds SMTP protocol primitives shared by Postern's server
// and client code: typed replies with enhanced status codes, the command
// and address parsers, the line reader with limits and the strict DATA
// reader. It uses only the standard library.
package smtp

// THIS FILE IS A CONTRACT STUB: the helper that owns internal/smtp replaces
// every panic with a real implementation (and may split the file), keeping
// the exported names and their documented contracts.

import (
	"bufio"
	"bytes"
	"errors"
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

// Error returns "CODE ENHANCED MESSAGE" (and "(REASON)" when set).
func (e *Error) Error() string { panic("unimplemented") }

// NewError returns an Error with the given code, enhanced code and message.
func NewError(code int, enhanced, message string) *Error { panic("unimplemented") }

// WithReason returns a copy of e whose Reason is reason.
func (e *Error) WithReason(reason string) *Error { panic("unimplemented") }

// WriteReply writes one reply: each line is "CODE-ENH TEXT" except the
// last, "CODE ENH TEXT" (RFC 5321 §4.2.1), CRLF-terminated; enhanced may be
// "" (then no enhanced code is written, as for the greeting and EHLO). A
// line of text containing CR or LF is split. It does not flush w.
func WriteReply(w *bufio.Writer, code int, enhanced string, lines ...string) error {
	panic("unimplemented")
}

// Errors returned by Reader.ReadLine and ReadData for hostile input. In
// each case the offending line (through its LF) has been consumed.
var (
	ErrLineTooLong = errors.New("smtp: line too long")
	ErrBareLF      = errors.New("smtp: bare LF")
	ErrBareCR      = errors.New("smtp: bare CR")
	ErrNUL         = errors.New("smtp: NUL byte")
	ErrTooBig      = errors.New("smtp: message too big")
)

// Reader reads CRLF-terminated command lines with limits.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a Reader on br. The session keeps br so that it can
// discard buffered bytes at STARTTLS (RFC 3207 §4.2) and check Buffered()
// for pipelining.
func NewReader(br *bufio.Reader) *Reader { return &Reader{br: br} }

// ReadLine reads one line and returns it without its CRLF. max is the
// longest line allowed including CRLF (512 for commands, RFC 5321
// §4.5.3.1.4). A longer line is consumed through its LF and ErrLineTooLong
// returned, without buffering more than max bytes. A line with a bare LF
// (LF not preceded by CR), a bare CR (CR not followed by LF) or a NUL
// returns ErrBareLF, ErrBareCR or ErrNUL after the line is consumed. I/O
// errors are returned as they are (io.EOF when the peer closed between
// lines, io.ErrUnexpectedEOF when it closed within one). The returned slice
// is valid until the next call.
func (r *Reader) ReadLine(max int) ([]byte, error) { panic("unimplemented") }

// Command is one parsed command line.
type Command struct {
	Verb string // upper-cased verb, e.g. "MAIL", "STARTTLS"
	Arg  string // everything after the single space that follows the verb, as sent; "" when none
}

// ParseCommand splits a command line (without CRLF) into verb and argument.
// The verb is 1 to 16 ASCII letters; anything else returns a 500 5.5.2 *Error.
func ParseCommand(line []byte) (Command, error) { panic("unimplemented") }

// Address is a mailbox "local@domain". Local is the local part as sent,
// with quoted-string quoting removed; Domain is lower-cased (ASCII) or
// as sent (U-labels), or an address literal like "[192.0.2.1]".
type Address struct {
	Local  string
	Domain string
}

// String returns the address in RFC 5321 form, quoting the local part when
// it is not a dot-string.
func (a Address) String() string { panic("unimplemented") }

// Params are the ESMTP parameters of MAIL or RCPT: keys upper-cased,
// values as sent ("" when the keyword had no "=value").
type Params map[string]string

// Path is a parsed reverse-path or forward-path.
type Path struct {
	Addr Address
	Null bool // "<>" (reverse-path only)
	// Postmaster is set for RCPT TO:<Postmaster> without a domain
	// (RFC 5321 §4.1.1.3, case-insensitive); Addr is then {"postmaster", ""}.
	Postmaster bool
}

// ParseMailFrom parses the argument of MAIL ("FROM:<path> params"). The
// keyword is case-insensitive; one space before "<" is tolerated. utf8
// allows non-ASCII in the address (the session passes true when the
// client sent SMTPUTF8 on this MAIL, which ParseMailFrom itself sees in
// params, so utf8 is the server's support for it). Errors are *Error:
// 501 5.5.4 for bad syntax or parameters, 501 5.1.7 for a bad address,
// 553 5.6.7 for non-ASCII without SMTPUTF8 (RFC 6531 §3.5).
func ParseMailFrom(arg string, utf8 bool) (Path, Params, error) { panic("unimplemented") }

// ParseRcptTo parses the argument of RCPT ("TO:<path> params") like
// ParseMailFrom, with 501 5.1.3 for a bad address; "<>" is refused; a
// source route ("@a,@b:user@d") is accepted and ignored (RFC 5321 §C).
func ParseRcptTo(arg string, utf8 bool) (Path, Params, error) { panic("unimplemented") }

// ParseAddress parses "local@domain" (no angle brackets) with the limits
// of RFC 5321 §4.5.3.1 (local part 64 octets, domain 255).
func ParseAddress(s string, utf8 bool) (Address, error) { panic("unimplemented") }

// DataLimits bounds what ReadData accepts.
type DataLimits struct {
	MaxSize int64 // bytes of message (after dot-unstuffing) kept at most
	MaxLine int   // longest text line including CRLF (1000, RFC 5321 §4.5.3.1.6)
}

// ReadData reads a message after the 354 reply up to and including the
// terminating CRLF.CRLF, dot-unstuffs it (RFC 5321 §4.5.2) and appends it
// to dst with its CRLF line endings (the final ".\r\n" not included; an
// empty message appends nothing). Only CRLF "." CRLF ends the message,
// where the first CRLF is a real CRLF or the start of data. It always
// reads through the terminator, discarding the rest once an error is
// known, so the session stays in sync; then it returns the first content
// error met: ErrTooBig (dst holds at most MaxSize bytes), ErrLineTooLong,
// ErrBareLF, ErrBareCR or ErrNUL. I/O errors are returned at once.
func ReadData(br *bufio.Reader, dst *bytes.Buffer, lim DataLimits) error { panic("unimplemented") }

// HeaderEnd returns the offset in msg of the first byte of the body: just
// after the CRLF CRLF that ends the header section, or len(msg) when
// there is none.
func HeaderEnd(msg []byte) int { panic("unimplemented") }

// HeaderValues returns the unfolded values of every field named name
// (case-insensitive) in the header section hdr, in order.
func HeaderValues(hdr []byte, name string) []string { panic("unimplemented") }
