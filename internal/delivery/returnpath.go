package delivery

import (
	"bytes"
	"strings"
)

// The Return-Path field (RFC 5321 §4.4, RFC 5322 §3.6.7) records the
// envelope sender at final delivery: the Maildir writes it; an LMTP
// server (Dovecot, Cyrus) writes its own from MAIL FROM. A message may
// already carry one, written by its sender: dropReturnPath removes it,
// so that the stored copy holds exactly one, and the true one. (Postfix
// drops it on receipt, message_drop_headers.)

// returnPathField returns the Return-Path field for the envelope sender
// from ("" is the null reverse-path: "<>").
func returnPathField(from string) []byte {
	return []byte("Return-Path: <" + from + ">\r\n")
}

// dropReturnPath returns data without the Return-Path fields of its
// header section (with their folded lines). data itself is returned when
// it has none, which is the rule.
func dropReturnPath(data []byte) []byte {
	var out []byte // the copy, once a field is dropped
	kept := 0      // data[:kept] is in out, or needs no copy yet
	dropping := false
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += i + 1
		}
		line := data[i:end]
		switch {
		case len(bytes.TrimRight(line, "\r\n")) == 0:
			// The end of the header section.
			i = len(data)
			continue
		case line[0] == ' ' || line[0] == '\t':
			// A folded line belongs to the field above it.
		default:
			dropping = isReturnPath(line)
		}
		if dropping {
			if out == nil {
				out = make([]byte, 0, len(data))
			}
			out = append(out, data[kept:i]...)
			kept = end
		}
		i = end
	}
	if out == nil {
		return data
	}
	return append(out, data[kept:]...)
}

// isReturnPath reports whether a header line starts a Return-Path field.
func isReturnPath(line []byte) bool {
	const name = "return-path"
	if len(line) <= len(name) || !strings.EqualFold(string(line[:len(name)]), name) {
		return false
	}
	rest := bytes.TrimLeft(line[len(name):], " \t") // RFC 5322 §4.5.3 obsolete WSP before ":"
	return len(rest) > 0 && rest[0] == ':'
}
