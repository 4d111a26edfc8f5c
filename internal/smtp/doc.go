// Package smtp holds SMTP protocol primitives shared by Postern's server
// and client code: typed replies with enhanced status codes, the command
// and address parsers, the line reader with limits, the strict DATA
// reader and the DATA writer that mirrors it, the reply reader, the
// envelope of an accepted message and its queue id (NewID), and the
// header fields a server writes (Received, and the Message-ID and Date
// of submission). It uses only the standard library.
//
// Every function here treats its input as hostile: lines and messages are
// bounded, a bare CR or bare LF is an error rather than a line ending
// (this closes SMTP smuggling), and a reader that meets bad input still
// consumes it to the next line or to the end of the message, so that the
// session stays in step with its client.
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
