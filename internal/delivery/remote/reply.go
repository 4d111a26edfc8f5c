package remote

import (
	"bufio"

	"postern/internal/smtp"
)

// reply is one reply from the server (smtp.ReadReply).
type reply = smtp.Reply

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
