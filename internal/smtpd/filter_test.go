package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"postern/internal/smtp"
)

// funcFilter is a Filter made of a function; it records what it saw.
type funcFilter struct {
	mu   sync.Mutex
	envs []smtp.Envelope
	seen [][]byte
	fn   func(env *smtp.Envelope, data []byte) (FilterResult, error)
}

// recordingPrepend returns a funcFilter (which records what it saw)
// that prepends the header fields hdr to every message.
func recordingPrepend(hdr string) *funcFilter {
	return &funcFilter{fn: func(env *smtp.Envelope, data []byte) (FilterResult, error) {
		return FilterResult{Prepend: []byte(hdr)}, nil
	}}
}

// Filter reads the whole message to give it to fn; the tests' messages
// are small.
func (f *funcFilter) Filter(ctx context.Context, env *smtp.Envelope, msg *smtp.Message) (FilterResult, error) {
	data, err := io.ReadAll(msg.Reader())
	if err != nil {
		return FilterResult{}, err
	}
	f.mu.Lock()
	f.envs = append(f.envs, *env)
	f.seen = append(f.seen, data)
	f.mu.Unlock()
	return f.fn(env, data)
}

func TestFilterPrepend(t *testing.T) {
	for name, head := range map[string]string{
		"small": "Authentication-Results: " + testHost + "; spf=pass\r\n",
		// Larger than the headroom: the message is copied.
		"large": "X-Big: " + strings.Repeat("a", 3*headroom) + "\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			flt := recordingPrepend(head)
			f := newFixture(t, RoleMX, func(s *Server) { s.Filter = flt })
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			c.transaction("a@example.net", "bob@example.org")
			c.do(message("From: a@example.net", "Subject: test")+".", "250 2.0.0")
			m := f.spool.messages()[0]
			if len(flt.seen) != 1 || !strings.HasPrefix(string(flt.seen[0]), "Received: from client.example") {
				t.Fatalf("filter saw %q", flt.seen)
			}
			if want := head + string(flt.seen[0]); string(m.data) != want {
				t.Errorf("spooled\n%q\nwant\n%q", m.data, want)
			}
			if e := flt.envs[0]; e.From != "a@example.net" || e.Helo != "client.example" || e.ID != m.env.ID || e.Listener != f.srv.Name {
				t.Errorf("filter envelope %+v", e)
			}
		})
	}
}

func TestFilterReplaceHeader(t *testing.T) {
	flt := &funcFilter{fn: func(env *smtp.Envelope, data []byte) (FilterResult, error) {
		hdr := data[:smtp.HeaderEnd(data)]
		return FilterResult{Header: bytes.Replace(hdr, []byte("X-Drop: me\r\n"), nil, 1), Prepend: []byte("X-Top: 1\r\n")}, nil
	}}
	f := newFixture(t, RoleMX, func(s *Server) { s.Filter = flt })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("X-Drop: me", "From: a@example.net")+".", "250 2.0.0")
	got := string(f.spool.messages()[0].data)
	if !strings.HasPrefix(got, "X-Top: 1\r\nReceived: ") || strings.Contains(got, "X-Drop") || !strings.Contains(got, "From: a@example.net\r\n") {
		t.Errorf("spooled\n%s", got)
	}
}

func TestFilterReject(t *testing.T) {
	flt := &funcFilter{fn: func(env *smtp.Envelope, data []byte) (FilterResult, error) {
		if bytes.Contains(data, []byte("Subject: bad")) {
			return FilterResult{Reject: &smtp.Error{Code: 550, Enhanced: "5.7.1", Message: "DMARC policy reject"}}, nil
		}
		if bytes.Contains(data, []byte("Subject: fail")) {
			return FilterResult{}, errors.New("dns down")
		}
		return FilterResult{}, nil
	}}
	f := newFixture(t, RoleMX, func(s *Server) { s.Filter = flt })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net", "Subject: bad")+".", "550 5.7.1 DMARC policy reject")
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net", "Subject: fail")+".", "451 4.3.0")
	// The session goes on; a good message is spooled unchanged.
	c.transaction("a@example.net", "bob@example.org")
	c.do(message("From: a@example.net", "Subject: good")+".", "250 2.0.0")
	msgs := f.spool.messages()
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].data), "Subject: good") || string(msgs[0].data) != string(flt.seen[2]) {
		t.Errorf("spooled %+v", msgs)
	}
	waitLog(t, f, "reason=\"filter: dns down\"")
}

func TestFilterSubmission(t *testing.T) {
	flt := recordingPrepend("DKIM-Signature: v=1; d=example.org\r\n")
	f := newFixture(t, RoleSubmission, func(s *Server) { s.Filter = flt })
	c := f.dial()
	c.loginTLS()
	c.transaction("alice@example.org", "bob@example.org")
	c.do(message("From: alice@example.org", "Subject: x")+".", "250 2.0.0")
	m := f.spool.messages()[0]
	if flt.envs[0].AuthUser != "alice" {
		t.Errorf("filter envelope %+v", flt.envs[0])
	}
	// The filter sees the repaired message (Message-ID, Date added).
	if s := string(flt.seen[0]); !strings.Contains(s, "\r\nMessage-ID: <") || !strings.Contains(s, "\r\nDate: ") {
		t.Errorf("filter saw\n%s", s)
	}
	if !strings.HasPrefix(string(m.data), "DKIM-Signature: v=1; d=example.org\r\nReceived: ") {
		t.Errorf("spooled\n%s", m.data)
	}
}
