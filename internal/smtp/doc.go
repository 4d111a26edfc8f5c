// Package smtp holds SMTP protocol primitives shared by Postern's server
// and client code: typed replies with enhanced status codes, the command
// and address parsers, the line reader with limits, the strict DATA
// reader and the DATA writer that mirrors it, the BDAT chunk reader
// (ChunkReader, RFC 3030) with the same line rules, the reply reader, the
// envelope of an accepted message and its queue id (NewID), and the
// header fields a server writes (Received, and the Message-ID and Date
// of submission). It uses only the standard library.
//
// Every function here treats its input as hostile: lines and messages are
// bounded, a bare CR or bare LF is an error rather than a line ending
// (this closes SMTP smuggling), and a reader that meets bad input still
// consumes it to the next line or to the end of the message, so that the
// session stays in step with its client.
//
// # The client side
//
// Outbound delivery (internal/delivery/remote), LMTP delivery to a
// mailbox server (internal/delivery) and the load generator
// (internal/loadgen) all speak through Client: one reply reader
// (ReadReply: bounded lines, at most MaxReplyLines lines, a bare CR or
// LF refused), one DATA writer (DataWriter: dot-stuffing, every line
// ended by CRLF, the mirror of the strict ReadData), one BDAT sender
// (Client.Bdat: the same lines without stuffing, in one chunk whose
// size is counted first and never overrun), one STARTTLS that
// abandons a session whose server sent anything after its 220, and a
// context that cuts any exchange short. The protocol logic above it
// (pipelining, per-recipient LMTP replies, the REQUIRETLS and SMTPUTF8
// parameters, TLS policy) stays with each caller.
//
// We keep our own rather than emersion/go-smtp's client (v0.25.1),
// which speaks SMTP and LMTP too, because it breaks rules we keep, as
// measured against a scripted server: it takes an EHLO reply of 100,000
// lines whole (net/textproto bounds a line, not the lines of a reply),
// takes replies ended by a bare LF, passes a bare CR in message content
// on to the next hop, and at STARTTLS silently drops what the server
// sent after its 220 instead of abandoning the session; and its commands
// take no context, so a delivery cannot be cut short at shutdown.
package smtp

// Line length limits of RFC 5321 §4.5.3.1.
const (
	// MaxCommandLine is the longest command line, including CRLF
	// (RFC 5321 §4.5.3.1.4).
	MaxCommandLine = 512
	// MaxTextLine is the longest line of message text, including CRLF
	// (RFC 5321 §4.5.3.1.6).
	MaxTextLine = 1000
)
