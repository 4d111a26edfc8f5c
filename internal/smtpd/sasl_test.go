package smtpd

import (
	"context"
	"fmt"
	"testing"

	"postern/internal/sasl"
)

// TestWithSASLPasswords runs the session with the real PLAIN and LOGIN
// mechanisms of package sasl.
func TestWithSASLPasswords(t *testing.T) {
	check := func(ctx context.Context, user, pass string) (string, error) {
		if user == "Alice" && pass == testPassword {
			return "alice", nil
		}
		return "", fmt.Errorf("no: %w", sasl.ErrInvalidCredentials)
	}
	f := newFixture(t, RoleSubmission, func(s *Server) {
		s.Auth = &sasl.Passwords{Check: check}
		s.Limits.MaxErrors = 100
	})
	c := f.dial()
	c.do("EHLO client.example", "250 ")
	c.do("AUTH PLAIN "+plainAuth("Alice", testPassword), "530 5.7.0")
	c.startTLS()
	c.do("EHLO client.example", "250 AUTH PLAIN LOGIN")
	c.script(
		step{"AUTH PLAIN " + plainAuth("Alice", "wrong"), "535 5.7.8"},
		step{"AUTH PLAIN =", "501 5.5.2"},
		step{"AUTH PLAIN", "334 "},
		step{"*", "501 5.0.0"},
		step{"AUTH LOGIN", "334 VXNlcm5hbWU6"},
		step{b64("Alice"), "334 UGFzc3dvcmQ6"},
		step{b64("wrong"), "535 5.7.8"},
		step{"AUTH PLAIN", "334 "},
		step{plainAuth("Alice", testPassword), "235 2.7.0"},
		step{"MAIL FROM:<alice@example.org>", "250 2.1.0"},
	)
}
