package remote

import "postern/internal/smtp"

// The DSN parameters (RFC 3461) go on to a next hop that offers DSN
// (RFC 3461 §5.2.1), encoded again as the session decoded them; a next
// hop without DSN gets none, and the queue reports the success itself
// ("relayed", §5.2.2) when the sender asked for it.

// mailDSN returns the RET and ENVID parameters of msg's MAIL command
// for c, with a leading space; "" when there are none or c does not
// offer DSN.
func mailDSN(msg *Message, c *conn) string {
	if !c.has("DSN") {
		return ""
	}
	s := ""
	if msg.Ret != "" {
		s += " RET=" + msg.Ret // RFC 3461 §4.3
	}
	if msg.EnvID != "" {
		s += " ENVID=" + smtp.XtextEncode(msg.EnvID) // RFC 3461 §4.4
	}
	return s
}

// rcptDSN returns the NOTIFY and ORCPT parameters of the RCPT command
// for rcpt, with a leading space; "" when there are none or c does not
// offer DSN.
func rcptDSN(msg *Message, rcpt string, c *conn) string {
	rd, ok := msg.DSN[rcpt]
	if !ok || !c.has("DSN") {
		return ""
	}
	s := ""
	if rd.Notify != 0 {
		s += " NOTIFY=" + rd.Notify.String() // RFC 3461 §4.1
	}
	if rd.ORcpt != "" {
		s += " ORCPT=" + smtp.EncodeORcpt(rd.ORcpt) // RFC 3461 §4.2
	}
	return s
}
