package autoconfig

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// testHandler serves example.com and example.org from mail.example.com
// (465 and 587) with imap.example.com:993.
func testHandler(t testing.TB) *Handler {
	t.Helper()
	h, err := New(Options{
		Domains:     []string{"example.com", "example.org"},
		Submissions: &Endpoint{Host: "mail.example.com", Port: 465, Mechanisms: []string{"PLAIN", "LOGIN", "SCRAM-SHA-256"}},
		Submission:  &Endpoint{Host: "mail.example.com", Port: 587, Mechanisms: []string{"PLAIN", "CRAM-MD5", "OAUTHBEARER"}},
		IMAP:        &Endpoint{Host: "imap.example.com", Port: 993},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// get sends a request to h and returns the status and the body.
func get(h http.Handler, method, host, target, body string) (int, http.Header, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Header(), w.Body.String()
}

// serveRaw sends h a request built by hand, so that any query the
// fuzzer makes reaches the handler (httptest.NewRequest parses a
// request line, which refuses some).
func serveRaw(h http.Handler, method, path, rawQuery, body string) (int, string) {
	r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}, Host: "autoconfig.example.com",
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), RemoteAddr: "192.0.2.1:1234"}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// node is an XML element as a tree: the checks of the published formats
// walk it.
type node struct {
	Name     xml.Name
	Attrs    map[string]string
	Text     string
	Children []*node
}

// parseTree parses a whole XML document strictly; error when it is not
// well-formed.
func parseTree(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return root, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{Name: t.Name, Attrs: map[string]string{}}
			for _, a := range t.Attr {
				n.Attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(t)
			}
		}
	}
}

// all returns the children named local.
func (n *node) all(local string) []*node {
	var out []*node
	for _, c := range n.Children {
		if c.Name.Local == local {
			out = append(out, c)
		}
	}
	return out
}

// one returns the only child named local, failing the test otherwise.
func (n *node) one(t *testing.T, local string) *node {
	t.Helper()
	cs := n.all(local)
	if len(cs) != 1 {
		t.Fatalf("<%s>: %d <%s>, want 1", n.Name.Local, len(cs), local)
		return &node{}
	}
	return cs[0]
}

func (n *node) text(t *testing.T, local string) string {
	t.Helper()
	return strings.TrimSpace(n.one(t, local).Text)
}
