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
