package smtpd

import (
	"strings"
	"testing"

	"postern/internal/metrics"
)

// TestHTTPRequestCut checks the cross-protocol defence: a browser made
// to post a form to an SMTP port sends an HTTP request whose body could
// hold SMTP commands. Its first line ends the session at once, as
// Postfix does, and is counted.
func TestHTTPRequestCut(t *testing.T) {
	for _, tt := range []struct {
		role  Role
		first string
	}{
		{RoleMX, "POST / HTTP/1.1"},
		{RoleMX, "GET /index.html HTTP/1.0"},
		{RoleMX, "CONNECT mx.example.org:25 HTTP/1.1"},
		{RoleMX, "Host: mx.example.org:25"},
		{RoleSubmission, "PUT http://mx.example.org:587/ HTTP/1.1"},
		{RoleSubmissions, "HEAD / HTTP/1.1"},
	} {
		t.Run(tt.role.String()+" "+tt.first, func(t *testing.T) {
			f := newFixture(t, tt.role)
			before := value(metrics.MessagesRejected.WithLabelValues(f.srv.Name, "http_request"))
			c := f.dial()
			c.raw(tt.first + "\r\nHost: mx.example.org\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n\r\n" +
				"EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
			c.expect("221 2.7.0")
			c.expectClosed()
			if got := value(metrics.MessagesRejected.WithLabelValues(f.srv.Name, "http_request")) - before; got != 1 {
				t.Errorf("http_request rejections +%v, want +1", got)
			}
			waitLog(t, f, "session end")
			if !strings.Contains(f.logs.String(), "HTTP request on an SMTP port") {
				t.Errorf("no log of the HTTP request:\n%s", f.logs)
			}
		})
	}
}

func TestLooksLikeHTTP(t *testing.T) {
	for line, want := range map[string]bool{
		"GET / HTTP/1.1":                       true,
		"get / http/1.1":                       true,
		"POST /form":                           true,
		"POST http://mx.example.org/ HTTP/1.1": true,
		"HEAD * HTTP/1.0":                      true,
		"OPTIONS * HTTP/1.1":                   true,
		"PUT /x HTTP/1.1":                      true,
		"CONNECT mx.example.org:25 HTTP/1.1":   true,
		"CONNECT 192.0.2.1:25":                 true,
		"DELETE /x HTTP/1.1":                   true,
		"Host: mx.example.org":                 true,
		"host:mx.example.org":                  true,
		"GET":                                  false,
		"GET something":                        false,
		"POSTMASTER / HTTP/1.1":                false,
		"MAIL FROM:<get@example.org>":          false,
		"RCPT TO:<host:x@example.org>":         false,
		"HOST mx.example.org":                  false,
		"EHLO GET / HTTP/1.1":                  false,
		"HELP":                                 false,
		"":                                     false,
	} {
		if got := looksLikeHTTP([]byte(line)); got != want {
			t.Errorf("looksLikeHTTP(%q) = %v, want %v", line, got, want)
		}
	}
}

// FuzzLooksLikeHTTP checks that no SMTP command is ever taken for HTTP,
// whatever its argument, and that the classifier never panics.
func FuzzLooksLikeHTTP(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1", "Host: x", "CONNECT a:1", "MAIL FROM:<a@b>", "POST *", "HEAD  HTTP/", ""} {
		f.Add(s)
	}
	verbs := []string{"EHLO", "HELO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "STARTTLS", "AUTH", "BDAT"}
	f.Fuzz(func(t *testing.T, line string) {
		got := looksLikeHTTP([]byte(line))
		verb, _, _ := strings.Cut(line, " ")
		for _, v := range verbs {
			if strings.EqualFold(verb, v) && got {
				t.Fatalf("SMTP command %q taken for HTTP", line)
			}
		}
	})
}
