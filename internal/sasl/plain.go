package sasl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxFieldLen is the longest authzid, authcid, password or LOGIN username
// accepted, in octets. RFC 4616 §2 requires servers to accept at least 255
// octets for each PLAIN field; Postern accepts exactly that much and no more,
// so a hostile client cannot make the checker hash a huge input.
const MaxFieldLen = 255

// plain is the server side of the PLAIN mechanism (RFC 4616).
type plain struct {
	guard
	ctx      context.Context
	check    PasswordChecker
	step     oneMessage
	username string
	identity string
}

// NewPlain returns a Server for the PLAIN mechanism (RFC 4616). The client
// sends one message, "authzid NUL authcid NUL passwd"; when it sent no
// initial response the Server first returns an empty challenge
// (RFC 4422 §3.3). check verifies authcid and passwd and is called with
// ctx. A non-empty authzid must equal, ignoring case, either the authcid or
// the canonical user check returns; Postern does not let one user act for
// another.
func NewPlain(ctx context.Context, check PasswordChecker) Guarded {
	return &plain{ctx: ctx, check: check}
}

// Next implements Server.
func (p *plain) Next(response []byte) ([]byte, bool, error) {
	if ok, challenge, err := p.step.take("PLAIN", response); !ok {
		return challenge, false, err
	}

	authzid, authcid, passwd, err := parsePlain(response)
	if authcid != "" {
		p.username = authcid
	}
	if err != nil {
		return nil, false, err
	}
	if !p.allow(authcid) {
		return nil, false, fmt.Errorf("sasl: PLAIN: %w", ErrRefused)
	}
	user, err := runCheck(p.ctx, p.check, authcid, passwd)
	if err != nil {
		return nil, false, fmt.Errorf("sasl: PLAIN: %w", err)
	}
	// RFC 4616 §2: the server verifies that the authcid may act as the
	// authzid. Postern allows only oneself.
	if authzid != "" && !strings.EqualFold(authzid, authcid) && !strings.EqualFold(authzid, user) {
		return nil, false, fmt.Errorf("sasl: PLAIN: authorization identity differs from the user: %w", ErrInvalidCredentials)
	}
	p.identity = user
	return nil, true, nil
}

// Identity implements Server.
func (p *plain) Identity() string { return p.identity }

// Username implements Server.
func (p *plain) Username() string { return p.username }

// parsePlain splits a PLAIN message (RFC 4616 §2):
//
//	message = [authzid] UTF8NUL authcid UTF8NUL passwd
//
// authcid is returned whenever it could be isolated and is valid UTF-8, even
// when err is set, so the caller can log who tried. The error never contains
// any part of the message.
func parsePlain(msg []byte) (authzid, authcid, passwd string, err error) {
	if bytes.Count(msg, []byte{0}) != 2 {
		return "", "", "", fmt.Errorf("sasl: PLAIN: message needs exactly two NULs: %w", ErrMalformed)
	}
	zid, rest, _ := bytes.Cut(msg, []byte{0})
	cid, pw, _ := bytes.Cut(rest, []byte{0})
	if len(cid) > 0 && len(cid) <= MaxFieldLen && utf8.Valid(cid) {
		authcid = string(cid)
	}
	switch {
	case len(cid) == 0:
		return "", "", "", fmt.Errorf("sasl: PLAIN: empty authentication identity: %w", ErrMalformed)
	case len(pw) == 0:
		return "", authcid, "", fmt.Errorf("sasl: PLAIN: empty password: %w", ErrMalformed)
	case len(zid) > MaxFieldLen || len(cid) > MaxFieldLen || len(pw) > MaxFieldLen:
		return "", authcid, "", fmt.Errorf("sasl: PLAIN: field longer than %d octets: %w", MaxFieldLen, ErrMalformed)
	case !utf8.Valid(zid) || !utf8.Valid(cid) || !utf8.Valid(pw):
		// RFC 4616 §2: every field is UTF-8.
		return "", authcid, "", fmt.Errorf("sasl: PLAIN: field is not UTF-8: %w", ErrMalformed)
	}
	return string(zid), authcid, string(pw), nil
}

// runCheck calls check and makes sure the error it returns, if any, wraps
// ErrInvalidCredentials or ErrTemporary: an error that wraps neither is
// treated as temporary (RFC 4954 §6: 454). A checker that returns no error
// but no user is treated as temporary too, so it can never log anyone in
// as "".
func runCheck(ctx context.Context, check PasswordChecker, username, password string) (string, error) {
	if check == nil {
		return "", fmt.Errorf("no password checker: %w", ErrTemporary)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemporary, err)
	}
	user, err := check(ctx, username, password)
	switch {
	case err == nil && user == "":
		return "", fmt.Errorf("password checker returned no user: %w", ErrTemporary)
	case err == nil:
		return user, nil
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrTemporary):
		return "", err
	default:
		return "", fmt.Errorf("%w: %w", ErrTemporary, err)
	}
}
