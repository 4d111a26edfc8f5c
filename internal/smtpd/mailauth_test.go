package smtpd

import (
	"bytes"
	"context"
	"testing"

	"postern/internal/mailauth"
	"postern/internal/smtp"
)

// TestSignFilter: a message of an authenticated user whose From domain
// has a key gets a DKIM-Signature prepended; one without a user, or of a
// domain without a key, passes unsigned.
func TestSignFilter(t *testing.T) {
	key, _, err := mailauth.GenerateKey(mailauth.Ed25519SHA256)
	if err != nil {
		t.Fatal(err)
	}
	s, err := mailauth.NewSigner([]mailauth.SigningKey{{Domain: "example.org", Selector: "s1", Key: key}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := SignFilter{Signer: s}
	msg := func(from string) *smtp.Message {
		return &smtp.Message{Header: []byte("From: " + from + "\r\nSubject: s\r\n\r\n"), Body: smtp.BodyBytes([]byte("Hi\r\n"))}
	}
	ctx := context.Background()
	res, err := f.Filter(ctx, &smtp.Envelope{AuthUser: "a"}, msg("a@example.org"))
	if err != nil || !bytes.HasPrefix(res.Prepend, []byte("DKIM-Signature: v=1; a=ed25519-sha256;")) || !bytes.Contains(res.Prepend, []byte("d=example.org; s=s1;")) {
		t.Errorf("signed: %q %v", res.Prepend, err)
	}
	if res, err := f.Filter(ctx, &smtp.Envelope{}, msg("a@example.org")); err != nil || res.Prepend != nil {
		t.Errorf("signed an unauthenticated message: %q %v", res.Prepend, err)
	}
	if res, err := f.Filter(ctx, &smtp.Envelope{AuthUser: "a"}, msg("a@other.example")); err != nil || res.Prepend != nil {
		t.Errorf("signed for a domain without a key: %q %v", res.Prepend, err)
	}
}

// TestSwitchFilter: unset and set to nil it passes the message; set, it
// is the filter set last.
func TestSwitchFilter(t *testing.T) {
	var s SwitchFilter
	ctx, env, msg := context.Background(), &smtp.Envelope{}, &smtp.Message{}
	if res, err := s.Filter(ctx, env, msg); err != nil || res.Reject != nil || res.Prepend != nil {
		t.Errorf("unset: %+v, %v", res, err)
	}
	prepend := func(h string) Filter { return prependFilter(h) }
	s.Set(prepend("A: 1\r\n"))
	s.Set(prepend("B: 2\r\n"))
	if res, err := s.Filter(ctx, env, msg); err != nil || string(res.Prepend) != "B: 2\r\n" {
		t.Errorf("set: %+v, %v", res, err)
	}
	s.Set(nil)
	if res, err := s.Filter(ctx, env, msg); err != nil || res.Prepend != nil {
		t.Errorf("set to nil: %+v, %v", res, err)
	}
}

// prependFilter prepends its header field to every message.
type prependFilter string

func (p prependFilter) Filter(context.Context, *smtp.Envelope, *smtp.Message) (FilterResult, error) {
	return FilterResult{Prepend: []byte(p)}, nil
}
