package remote

import "strings"

// maxRemoteID bounds the queue id RemoteQueueID returns.
const maxRemoteID = 64

// RemoteQueueID returns the queue id a server names in the text of its
// reply to the end of DATA (the reply without its code and enhanced
// code), or "" when it names none the function knows. RFC 5321 gives
// the text no form; these are the common ones:
//
//	Ok: queued as 4Fq1x72Wdvz9v        Postfix, Postern ("OK queued as ID")
//	OK id=1qZ3Ab-0004Xy-Q2              Exim
//	<m@x> [InternalId=1234, Hostname=h] Queued mail for delivery   Exchange
//	x7GAbcde012345 Message accepted for delivery   Sendmail
//	OK  1700000000 a1si123456plj.123 - gsmtp       Gmail
//	ok 1700000000 qp 12345                         qmail
//
// The id is at most 64 characters of letters, digits and "._-@"; the
// text comes from a remote server and is hostile.
func RemoteQueueID(text string) string {
	lower := asciiLower(text) // the same length as text, whatever its bytes
	for _, m := range []string{"queued as ", "id=", "internalid="} {
		if i := strings.Index(lower, m); i >= 0 && (m != "id=" || i == 0 || !isIDChar(lower[i-1])) {
			return idToken(text[i+len(m):])
		}
	}
	fields := strings.Fields(text)
	switch {
	case len(fields) >= 2 && strings.HasPrefix(lower, asciiLower(fields[0])+" message accepted"):
		return idToken(fields[0])
	case len(fields) >= 3 && fields[len(fields)-1] == "gsmtp" && fields[len(fields)-2] == "-":
		return idToken(fields[len(fields)-3])
	case len(fields) >= 4 && strings.EqualFold(fields[0], "ok") && fields[2] == "qp":
		return idToken(fields[3])
	}
	return ""
}

// idToken returns the id at the start of s: the run of id characters,
// without trailing dots; "" when it is empty or too long.
func idToken(s string) string {
	s = strings.TrimLeft(s, " <")
	n := 0
	for n < len(s) && isIDChar(s[n]) {
		n++
	}
	id := strings.TrimRight(s[:n], ".")
	if len(id) > maxRemoteID {
		return ""
	}
	return id
}

// isIDChar reports whether c may be part of a queue id.
func isIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-' || c == '@'
}

// asciiLower lower-cases the ASCII letters of s and leaves every other
// byte, so that an index into the result is one into s (strings.ToLower
// replaces invalid UTF-8, which changes lengths).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
