package sasl

import (
	"bytes"
	"context"
	"fmt"
	"unicode/utf8"
)

// The challenges of the LOGIN mechanism (draft-murchison-sasl-login-00 §2).
const (
	loginUsername = "Username:"
	loginPassword = "Password:"
)

// login is the server side of the LOGIN mechanism.
type login struct {
	guard
	ctx      context.Context
	check    PasswordChecker
	step     int // 0: start; 1: "Username:" sent; 2: "Password:" sent; 3: finished
	username string
	identity string
}

// NewLogin returns a Server for the obsolete but widely used LOGIN mechanism
// (draft-murchison-sasl-login-00). It sends the challenge "Username:", then
// "Password:"; an initial response, when the client sends one, is the
// username and skips the first challenge. check verifies the pair and is
// called with ctx. Each value must be non-empty UTF-8 without NUL, at most
// MaxFieldLen octets.
func NewLogin(ctx context.Context, check PasswordChecker) Guarded {
	return &login{ctx: ctx, check: check}
}

// Next implements Server.
func (l *login) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte(loginUsername), false, nil
		}
		return l.takeUsername(response)
	case 1:
		return l.takeUsername(response)
	case 2:
		l.step = 3
		if err := loginField(response); err != nil {
			return nil, false, fmt.Errorf("sasl: LOGIN: password: %w", err)
		}
		if !l.allow(l.username) {
			return nil, false, fmt.Errorf("sasl: LOGIN: %w", ErrRefused)
		}
		user, err := runCheck(l.ctx, l.check, l.username, string(response))
		if err != nil {
			return nil, false, fmt.Errorf("sasl: LOGIN: %w", err)
		}
		l.identity = user
		return nil, true, nil
	default:
		return nil, false, fmt.Errorf("sasl: LOGIN: exchange already finished: %w", ErrMalformed)
	}
}

// takeUsername records the username and asks for the password.
func (l *login) takeUsername(response []byte) ([]byte, bool, error) {
	if err := loginField(response); err != nil {
		l.step = 3
		return nil, false, fmt.Errorf("sasl: LOGIN: username: %w", err)
	}
	l.username = string(response)
	l.step = 2
	return []byte(loginPassword), false, nil
}

// loginField checks one LOGIN response. The error never contains the value.
func loginField(b []byte) error {
	if p := FieldProblem(b); p != "" {
		return fmt.Errorf("%s: %w", p, ErrMalformed)
	}
	return nil
}

// FieldProblem says what makes b unfit as a LOGIN field or a PLAIN
// password (RFC 4616 §2): "empty", "longer than 255 octets" (MaxFieldLen),
// "contains NUL" or "not UTF-8"; "" when it is fit. userdb applies it to
// a password being set, so that every password that can be set can be
// used to log in. It never returns any part of b.
func FieldProblem(b []byte) string {
	switch {
	case len(b) == 0:
		return "empty"
	case len(b) > MaxFieldLen:
		return fmt.Sprintf("longer than %d octets", MaxFieldLen)
	case bytes.IndexByte(b, 0) >= 0:
		return "contains NUL"
	case !utf8.Valid(b):
		return "not UTF-8"
	}
	return ""
}

// Identity implements Server.
func (l *login) Identity() string { return l.identity }

// Username implements Server.
func (l *login) Username() string { return l.username }
