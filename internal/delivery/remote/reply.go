package remote

import "postern/internal/smtp"

// reply is one reply from the server (smtp.ReadReply).
type reply = smtp.Reply

// truncate shortens s to at most n bytes for logs.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
