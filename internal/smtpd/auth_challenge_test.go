package smtpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"postern/internal/sasl"
)

// errChallengeMech fails its first response with an error message for the
// client, as OAUTHBEARER (RFC 7628 §3.2.2) and SCRAM (RFC 5802 §7) do.
type errChallengeMech struct {
	calls int
	user  string
}

func (m *errChallengeMech) Next(resp []byte) ([]byte, bool, error) {
	m.calls++
	if m.calls > 1 {
		return nil, false, fmt.Errorf("called again: %w", sasl.ErrMalformed)
	}
	m.user = string(resp)
	if m.user == "good" {
		return nil, true, nil
	}
	return []byte(`{"status":"invalid_token"}`), false, fmt.Errorf("bad token: %w", sasl.ErrInvalidCredentials)
}
func (m *errChallengeMech) Identity() string {
	if m.user == "good" {
		return "good"
	}
	return ""
}
func (m *errChallengeMech) Username() string { return m.user }

type errChallengeAuth struct{}

func (errChallengeAuth) Mechanisms(*tls.ConnectionState) []string { return []string{"X-ERR"} }
func (errChallengeAuth) Start(context.Context, string, *tls.ConnectionState) (sasl.Server, bool) {
	return &errChallengeMech{}, true
}

// TestAuthErrorChallenge: a mechanism that fails with a challenge gets it
// sent as 334; whatever the client answers ("\x01", "*", garbage), the
// outcome is 535 and is logged as a failure, not a cancel.
func TestAuthErrorChallenge(t *testing.T) {
	f := newFixture(t, RoleSubmissions, func(s *Server) {
		s.Auth = errChallengeAuth{}
		s.Limits.MaxErrors = 100
	})
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	json := b64(`{"status":"invalid_token"}`)
	c.script(
		step{"AUTH X-ERR " + b64("bad"), "334 " + json},
		step{"AQ==", "535 5.7.8"},
		step{"AUTH X-ERR " + b64("bad"), "334 " + json},
		step{"*", "535 5.7.8"},
		step{"AUTH X-ERR " + b64("bad"), "334 " + json},
		step{"!!not base64", "535 5.7.8"},
		step{"AUTH X-ERR " + b64("good"), "235 2.7.0"},
	)
	logs := f.logs.String()
	if n := strings.Count(logs, "outcome=failure"); n != 3 {
		t.Errorf("%d failures logged, want 3:\n%s", n, logs)
	}
	if strings.Contains(logs, "outcome=canceled") {
		t.Errorf("a failure was logged as canceled:\n%s", logs)
	}
}

// TestAuthErrorChallengeHangup: a client that hangs up after the error
// challenge (curl does, for XOAUTH2) is logged as a failure, so that
// leaving early does not hide a wrong credential.
func TestAuthErrorChallengeHangup(t *testing.T) {
	f := newFixture(t, RoleSubmissions, func(s *Server) { s.Auth = errChallengeAuth{} })
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("AUTH X-ERR "+b64("bad"), "334 ")
	c.conn.Close()
	waitLog(t, f, "outcome=failure")
	if strings.Contains(f.logs.String(), "outcome=error") {
		t.Errorf("hang-up logged as error:\n%s", f.logs.String())
	}
}

// TestAuthHangUpIsCanceled is issue 12 §8: a client that hangs up in the
// middle of an exchange (after a 334) canceled it; that is logged and
// counted as outcome=canceled, not as a server error.
func TestAuthHangUpIsCanceled(t *testing.T) {
	for _, start := range []string{"AUTH LOGIN", "AUTH PLAIN", "AUTH LOGIN " + b64("alice")} {
		t.Run(start, func(t *testing.T) {
			f := newFixture(t, RoleSubmissions)
			c := f.dial()
			c.do("EHLO client.example", "250 ")
			c.do(start, "334 ")
			c.conn.Close()
			waitFor(t, "the exchange logged", func() bool { return strings.Contains(f.logs.String(), `msg=auth `) })
			if logs := f.logs.String(); !strings.Contains(logs, "outcome=canceled") || strings.Contains(logs, "outcome=error") {
				t.Errorf("hang-up during AUTH not logged as canceled:\n%s", logs)
			}
		})
	}
}
