package sendmail

import (
	"context"
	"errors"
	"testing"

	"postern/internal/smtp"
	"postern/internal/smtpd"
)

type spoolRec struct{ msgs []*smtp.Message }

func (s *spoolRec) PutMessage(_ context.Context, _ *smtp.Envelope, msg *smtp.Message) error {
	s.msgs = append(s.msgs, msg)
	return nil
}

type signFunc func() (smtpd.FilterResult, error)

func (f signFunc) Filter(context.Context, *smtp.Envelope, *smtp.Message) (smtpd.FilterResult, error) {
	return f()
}

// Local prepends the signer's fields without touching the caller's
// header, and spools nothing when signing fails.
func TestLocalSubmit(t *testing.T) {
	var sp spoolRec
	hdr := []byte("Subject: s\r\n")
	msg := &smtp.Message{Header: hdr, Body: smtp.BodyBytes([]byte("b\r\n"))}
	env := &smtp.Envelope{}
	if err := (Local{Spool: &sp}).Submit(context.Background(), env, msg); err != nil || len(sp.msgs) != 1 || sp.msgs[0] != msg {
		t.Fatalf("unsigned: %v, %d", err, len(sp.msgs))
	}
	sign := signFunc(func() (smtpd.FilterResult, error) {
		return smtpd.FilterResult{Prepend: []byte("DKIM-Signature: x\r\n")}, nil
	})
	if err := (Local{Spool: &sp, Sign: sign}).Submit(context.Background(), env, msg); err != nil || len(sp.msgs) != 2 ||
		string(sp.msgs[1].Header) != "DKIM-Signature: x\r\nSubject: s\r\n" || string(msg.Header) != "Subject: s\r\n" {
		t.Fatalf("signed: %v, %q", err, sp.msgs[len(sp.msgs)-1].Header)
	}
	bad := signFunc(func() (smtpd.FilterResult, error) { return smtpd.FilterResult{}, errors.New("no key") })
	if err := (Local{Spool: &sp, Sign: bad}).Submit(context.Background(), env, msg); err == nil || len(sp.msgs) != 2 {
		t.Fatalf("signing failed: %v, %d spooled", err, len(sp.msgs))
	}
}

type dirFake map[string]bool

func (d dirFake) IsLocalDomain(domain string) bool { return domain == "example.com" }
func (d dirFake) RecipientExists(_ context.Context, addr string) (bool, error) {
	if addr == "broken@example.com" {
		return false, errors.New("db down")
	}
	return d[addr], nil
}

func TestRouteBare(t *testing.T) {
	route := RouteBare(dirFake{"alice@example.com": true}, "postmaster@example.com")
	for in, want := range map[string]string{
		"alice@example.com": "alice@example.com",
		"root@example.com":  "postmaster@example.com",
		"root@other.test":   "root@other.test",
	} {
		if got, err := route(context.Background(), in); err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := route(context.Background(), "broken@example.com"); err == nil {
		t.Error("a directory error is not returned")
	}
}
