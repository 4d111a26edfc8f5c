package smtpd

import (
	"bytes"

	"postern/internal/smtp"
)

// httpMethods are the HTTP methods (RFC 9110 §9, and PATCH) whose
// request line ends a session: none is an SMTP verb.
var httpMethods = [...]string{"GET", "POST", "HEAD", "PUT", "CONNECT", "OPTIONS", "DELETE", "TRACE", "PATCH"}

// looksLikeHTTP reports whether a command line is the start of an HTTP
// request: a request line (RFC 9112 §3: a method, then a target that is
// a path, "*", an absolute URL or, for CONNECT, host:port; or anything
// followed by an HTTP version) or a Host header field. A browser can be
// made to send such a request to an SMTP port (a form posted to
// http://mx.example.org:25/), with SMTP commands in its body: the
// cross-protocol attack that Postfix answers by hanging up.
func looksLikeHTTP(line []byte) bool {
	if len(line) >= 5 && bytes.EqualFold(line[:5], []byte("Host:")) {
		return true // RFC 9112 §3.2
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	method, target := line[:sp], line[sp+1:]
	known := false
	for _, m := range httpMethods {
		if bytes.EqualFold(method, []byte(m)) {
			known = true
			break
		}
	}
	if !known || len(target) == 0 {
		return false
	}
	if i := bytes.LastIndexByte(target, ' '); i >= 0 && len(target)-i > 5 &&
		bytes.EqualFold(target[i+1:i+6], []byte("HTTP/")) {
		return true // RFC 9112 §2.3: HTTP-version
	}
	switch {
	case target[0] == '/', target[0] == '*':
		return true
	case bytes.Contains(target, []byte("://")):
		return true
	case bytes.EqualFold(method, []byte("CONNECT")) && bytes.IndexByte(target, ':') > 0:
		return true // RFC 9110 §9.3.6: authority-form
	}
	return false
}

// cutHTTP ends a session whose client spoke HTTP: one reply, as
// Postfix's smtpd_forbidden_commands gives, then the close.
func (s *session) cutHTTP() {
	s.verb = ""
	s.refuse("http_request", &smtp.Error{Code: 221, Enhanced: "2.7.0", Message: "This is an SMTP server, not HTTP; closing connection",
		Reason: "HTTP request on an SMTP port"})
	s.quit = true
}
