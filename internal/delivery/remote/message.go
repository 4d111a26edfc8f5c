package remote

import (
	"strings"

	"postern/internal/smtp"
)

// NewMessage returns the outbound message of the spooled message msg,
// with envelope env, for rcpts (all in one domain). It decides what the
// envelope and header ask of the next hop: SMTPUTF8 only when the
// message needs it (NeedsUTF8), 8BITMIME from the BODY parameter,
// REQUIRETLS, "TLS-Required: No" (TLSOptional), and the DSN parameters
// to relay (RFC 3461 §4).
func NewMessage(env *smtp.Envelope, rcpts []string, msg *smtp.Message) *Message {
	return &Message{
		ID: env.ID, From: env.From, Rcpts: rcpts, Data: msg,
		SMTPUTF8: env.SMTPUTF8 && NeedsUTF8(env.From, rcpts, msg.Header), EightBit: env.Body == "8BITMIME",
		RequireTLS: env.RequireTLS, TLSOptional: TLSOptional(msg.Header),
		Ret: env.Ret, EnvID: env.EnvID, DSN: env.DSN,
	}
}

// TLSOptional reports whether the header section hdr holds a
// "TLS-Required: No" field (RFC 8689 §5): the sender waives the
// recipient domain's TLS policy for this message.
func TLSOptional(hdr []byte) bool {
	for _, v := range smtp.HeaderValues(hdr, "TLS-Required") {
		if strings.EqualFold(strings.TrimSpace(v), "No") { // RFC 8689 §5
			return true
		}
	}
	return false
}

// NeedsUTF8 reports whether a message the client sent with SMTPUTF8
// really needs it downstream: only when an address or the header section
// holds non-ASCII (RFC 6531 §3.2). Clients such as Go's net/smtp ask for
// SMTPUTF8 whenever it is offered; an ASCII message so sent must still
// reach servers without the extension (Postfix decides the same way).
func NeedsUTF8(from string, rcpts []string, hdr []byte) bool {
	if !smtp.IsASCII(from) || !isASCIIBytes(hdr) {
		return true
	}
	for _, r := range rcpts {
		if !smtp.IsASCII(r) {
			return true
		}
	}
	return false
}

func isASCIIBytes(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
