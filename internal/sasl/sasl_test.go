package sasl

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// fakeChecker knows a fixed set of users; the key is the lower-cased
// username, the value the password and the canonical name.
type fakeChecker struct {
	users map[string][2]string
	calls int
	err   error // returned for every call when set
}

func (f *fakeChecker) check(ctx context.Context, username, password string) (string, error) {
	f.calls++
	if f.err != nil {
		return "", f.err
	}
	u, ok := f.users[strings.ToLower(username)]
	if !ok || u[0] != password {
		return "", fmt.Errorf("fake: %w", ErrInvalidCredentials)
	}
	return u[1], nil
}

func newFake() *fakeChecker {
	return &fakeChecker{users: map[string][2]string{
		"tim":                 {"tanstaaftanstaaf", "tim"},
		"kurt":                {"xipj3plmq", "kurt"},
		"alice@example.org":   {"secret", "alice@example.org"},
		"alias@example.org":   {"pw", "Canon@example.org"},
		"ünïcødé@example.org": {"pässwörd", "ünïcødé@example.org"},
	}}
}

// run feeds responses to s and returns the challenges, whether it finished
// and the last error.
func run(s Server, responses ...[]byte) (challenges []string, done bool, err error) {
	for _, r := range responses {
		var c []byte
		c, done, err = s.Next(r)
		if err != nil || done {
			return challenges, done, err
		}
		challenges = append(challenges, string(c))
	}
	return challenges, false, nil
}

func TestPlainRFC4616Examples(t *testing.T) {
	// RFC 4616 §4, first example: no authzid.
	f := newFake()
	s := NewPlain(context.Background(), f.check)
	_, done, err := run(s, []byte("\x00tim\x00tanstaaftanstaaf"))
	if err != nil || !done {
		t.Fatalf("tim: done=%v err=%v", done, err)
	}
	if s.Identity() != "tim" || s.Username() != "tim" {
		t.Errorf("identity %q username %q", s.Identity(), s.Username())
	}

	// RFC 4616 §4, second example: Kurt acting as Ursel. Valid password,
	// but Postern lets nobody act for another user.
	s = NewPlain(context.Background(), f.check)
	_, done, err = run(s, []byte("Ursel\x00Kurt\x00xipj3plmq"))
	if done || !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("Ursel/Kurt: done=%v err=%v, want ErrInvalidCredentials", done, err)
	}
	if s.Identity() != "" || s.Username() != "Kurt" {
		t.Errorf("identity %q username %q", s.Identity(), s.Username())
	}
}

func TestPlainAuthzid(t *testing.T) {
	for _, tc := range []struct {
		msg, want string
	}{
		{"tim\x00tim\x00tanstaaftanstaaf", "tim"},
		{"TIM\x00tim\x00tanstaaftanstaaf", "tim"},
		{"canon@example.org\x00alias@example.org\x00pw", "Canon@example.org"},
		{"CANON@EXAMPLE.ORG\x00alias@example.org\x00pw", "Canon@example.org"},
		{"ALIAS@example.org\x00alias@example.org\x00pw", "Canon@example.org"},
		{"\x00ünïcødé@example.org\x00pässwörd", "ünïcødé@example.org"},
	} {
		s := NewPlain(context.Background(), newFake().check)
		_, done, err := run(s, []byte(tc.msg))
		if err != nil || !done || s.Identity() != tc.want {
			t.Errorf("%q: done=%v err=%v identity=%q, want %q", tc.msg, done, err, s.Identity(), tc.want)
		}
	}
}

func TestPlainNoInitialResponse(t *testing.T) {
	s := NewPlain(context.Background(), newFake().check)
	c, done, err := s.Next(nil)
	if err != nil || done || c == nil || len(c) != 0 {
		t.Fatalf("first Next(nil) = %q, %v, %v; want empty non-nil challenge", c, done, err)
	}
	_, done, err = s.Next([]byte("\x00tim\x00tanstaaftanstaaf"))
	if err != nil || !done || s.Identity() != "tim" {
		t.Fatalf("done=%v err=%v identity=%q", done, err, s.Identity())
	}
	// Called again after done: refused, never a second success.
	if _, done, err = s.Next([]byte("\x00tim\x00tanstaaftanstaaf")); done || err == nil {
		t.Errorf("Next after done: done=%v err=%v", done, err)
	}

	// nil twice is malformed.
	s = NewPlain(context.Background(), newFake().check)
	s.Next(nil)
	if _, _, err := s.Next(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil after empty challenge: %v", err)
	}
}

func TestPlainMalformed(t *testing.T) {
	long := strings.Repeat("a", MaxFieldLen+1)
	for _, msg := range []string{
		"",
		"=",
		"tim",
		"\x00tim",
		"\x00tim\x00",              // empty password
		"\x00\x00tanstaaftanstaaf", // empty authcid
		"\x00\x00",
		"\x00tim\x00tanstaaf\x00tanstaaf", // three NULs
		"\x00\x00\x00",
		long + "\x00tim\x00tanstaaftanstaaf",
		"\x00" + long + "\x00tanstaaftanstaaf",
		"\x00tim\x00" + long,
		"\x00tim\x00\xff\xfe",
		"\x00t\xc3\x28im\x00tanstaaftanstaaf",
		"\xc3\x28\x00tim\x00tanstaaftanstaaf",
	} {
		f := newFake()
		s := NewPlain(context.Background(), f.check)
		_, done, err := s.Next([]byte(msg))
		if done || !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: done=%v err=%v, want ErrMalformed", msg, done, err)
		}
		if f.calls != 0 {
			t.Errorf("%q: checker called on a malformed message", msg)
		}
		if err != nil && strings.Contains(err.Error(), "tanstaaf") {
			t.Errorf("%q: error %q contains the password", msg, err)
		}
	}
	// A 255-octet field is accepted (RFC 4616 §2).
	ok := strings.Repeat("p", MaxFieldLen)
	f := &fakeChecker{users: map[string][2]string{"tim": {ok, "tim"}}}
	s := NewPlain(context.Background(), f.check)
	if _, done, err := s.Next([]byte("\x00tim\x00" + ok)); !done || err != nil {
		t.Errorf("255-octet password: done=%v err=%v", done, err)
	}
}

func TestPlainWrongPassword(t *testing.T) {
	for _, msg := range []string{"\x00tim\x00wrong", "\x00nobody\x00tanstaaftanstaaf", "\x00tim\x00TANSTAAFTANSTAAF"} {
		s := NewPlain(context.Background(), newFake().check)
		_, done, err := s.Next([]byte(msg))
		if done || !errors.Is(err, ErrInvalidCredentials) || s.Identity() != "" {
			t.Errorf("%q: done=%v err=%v identity=%q", msg, done, err, s.Identity())
		}
		if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), "tanstaaf") {
			t.Errorf("error %q contains the password", err)
		}
	}
}

func TestCheckerErrors(t *testing.T) {
	other := errors.New("disk on fire")
	for _, tc := range []struct {
		name    string
		checker PasswordChecker
		want    error
	}{
		{"temporary", func(context.Context, string, string) (string, error) {
			return "", fmt.Errorf("userdb: %w", ErrTemporary)
		}, ErrTemporary},
		{"other", func(context.Context, string, string) (string, error) { return "", other }, ErrTemporary},
		{"no user", func(context.Context, string, string) (string, error) { return "", nil }, ErrTemporary},
		{"nil checker", nil, ErrTemporary},
	} {
		for _, mk := range []func(context.Context, PasswordChecker) Guarded{NewPlain, NewLogin} {
			s := mk(context.Background(), tc.checker)
			var err error
			if _, ok := s.(*plain); ok {
				_, _, err = s.Next([]byte("\x00tim\x00pw"))
			} else {
				_, _, err = run(s, []byte("tim"), []byte("pw"))
			}
			if !errors.Is(err, tc.want) || s.Identity() != "" {
				t.Errorf("%s %T: err=%v identity=%q", tc.name, s, err, s.Identity())
			}
			if tc.name == "other" && !errors.Is(err, other) {
				t.Errorf("%s: cause lost: %v", tc.name, err)
			}
		}
	}
	// A canceled context never reaches the checker.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f := newFake()
	s := NewPlain(ctx, f.check)
	if _, _, err := s.Next([]byte("\x00tim\x00tanstaaftanstaaf")); !errors.Is(err, ErrTemporary) || !errors.Is(err, context.Canceled) || f.calls != 0 {
		t.Errorf("canceled: err=%v calls=%d", err, f.calls)
	}
}

func TestLogin(t *testing.T) {
	// Without initial response: Username:, Password:.
	s := NewLogin(context.Background(), newFake().check)
	ch, done, err := run(s, nil, []byte("tim"), []byte("tanstaaftanstaaf"))
	if err != nil || !done || !slices.Equal(ch, []string{"Username:", "Password:"}) {
		t.Fatalf("challenges %q done=%v err=%v", ch, done, err)
	}
	if s.Identity() != "tim" || s.Username() != "tim" {
		t.Errorf("identity %q username %q", s.Identity(), s.Username())
	}
	// The initial response is the username.
	s = NewLogin(context.Background(), newFake().check)
	ch, done, err = run(s, []byte("alias@example.org"), []byte("pw"))
	if err != nil || !done || !slices.Equal(ch, []string{"Password:"}) || s.Identity() != "Canon@example.org" {
		t.Fatalf("challenges %q done=%v err=%v identity %q", ch, done, err, s.Identity())
	}
	// Wrong password.
	s = NewLogin(context.Background(), newFake().check)
	_, done, err = run(s, []byte("tim"), []byte("nope"))
	if done || !errors.Is(err, ErrInvalidCredentials) || s.Username() != "tim" || s.Identity() != "" {
		t.Errorf("wrong password: done=%v err=%v", done, err)
	}
	if _, done, err := s.Next([]byte("tanstaaftanstaaf")); done || err == nil {
		t.Errorf("Next after failure: done=%v err=%v", done, err)
	}
}

func TestLoginMalformed(t *testing.T) {
	long := []byte(strings.Repeat("a", MaxFieldLen+1))
	for _, tc := range [][][]byte{
		{nil, {}},
		{{}},
		{nil, []byte("a\x00b")},
		{nil, long},
		{nil, []byte("\xff")},
		{[]byte("tim"), {}},
		{[]byte("tim"), nil},
		{[]byte("tim"), []byte("pa\x00ss")},
		{[]byte("tim"), long},
		{[]byte("tim"), []byte("\xc3\x28")},
	} {
		f := newFake()
		s := NewLogin(context.Background(), f.check)
		_, done, err := run(s, tc...)
		if done || !errors.Is(err, ErrMalformed) || f.calls != 0 {
			t.Errorf("%q: done=%v err=%v calls=%d", tc, done, err, f.calls)
		}
	}
}

func TestPasswords(t *testing.T) {
	f := newFake()
	cs := &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
	p := &Passwords{Check: f.check}
	if m := p.Mechanisms(nil); m != nil {
		t.Errorf("Mechanisms(nil) = %q, want nil", m)
	}
	if m := p.Mechanisms(cs); !slices.Equal(m, []string{"PLAIN", "LOGIN"}) {
		t.Errorf("Mechanisms = %q", m)
	}
	for _, mech := range []string{"PLAIN", "plain", "LOGIN", "Login"} {
		if _, ok := p.Start(context.Background(), mech, nil); ok {
			t.Errorf("Start(%s) without TLS succeeded", mech)
		}
		s, ok := p.Start(context.Background(), mech, cs)
		if !ok || s == nil {
			t.Fatalf("Start(%s) failed", mech)
		}
	}
	for _, mech := range []string{"CRAM-MD5", "", "XOAUTH2", "PLAIN "} {
		if _, ok := p.Start(context.Background(), mech, cs); ok {
			t.Errorf("Start(%q) succeeded", mech)
		}
	}
	s, _ := p.Start(context.Background(), "PLAIN", cs)
	if _, done, err := s.Next([]byte("\x00tim\x00tanstaaftanstaaf")); !done || err != nil {
		t.Errorf("PLAIN through Passwords: %v", err)
	}

	only := &Passwords{Check: f.check, Mechs: []string{"login", "CRAM-MD5", "LOGIN"}}
	if m := only.Mechanisms(cs); !slices.Equal(m, []string{"LOGIN"}) {
		t.Errorf("Mechanisms = %q", m)
	}
	if _, ok := only.Start(context.Background(), "PLAIN", cs); ok {
		t.Error("PLAIN started though not configured")
	}
	if m := (&Passwords{}).Mechanisms(cs); len(m) != 0 {
		t.Errorf("no checker: Mechanisms = %q", m)
	}
}

func FuzzPlain(f *testing.F) {
	f.Add([]byte("\x00tim\x00tanstaaftanstaaf"), false)
	f.Add([]byte("tim\x00tim\x00tanstaaftanstaaf"), true)
	f.Add([]byte("Ursel\x00Kurt\x00xipj3plmq"), false)
	f.Add([]byte("\x00\x00"), false)
	f.Add([]byte(""), true)
	f.Fuzz(func(t *testing.T, msg []byte, challengeFirst bool) {
		var yes bool
		var gotUser, gotPass string
		check := func(_ context.Context, u, p string) (string, error) {
			gotUser, gotPass = u, p
			if strings.EqualFold(u, "tim") && p == "tanstaaftanstaaf" {
				yes = true
				return "tim", nil
			}
			return "", ErrInvalidCredentials
		}
		s := NewPlain(context.Background(), check)
		if challengeFirst {
			if c, done, err := s.Next(nil); err != nil || done || len(c) != 0 {
				t.Fatalf("Next(nil): %q %v %v", c, done, err)
			}
		}
		c, done, err := s.Next(msg)
		if c != nil {
			t.Fatalf("challenge %q after the message", c)
		}
		if done != (err == nil) {
			t.Fatalf("done=%v err=%v", done, err)
		}
		if done && (!yes || s.Identity() != "tim") {
			t.Fatalf("success without the checker's yes: identity %q", s.Identity())
		}
		if !done && s.Identity() != "" {
			t.Fatalf("identity %q after failure", s.Identity())
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unexpected error %v", err)
		}
		// Error texts are constant; 16 octets cannot match them by chance.
		if len(gotPass) >= 16 && strings.Contains(err2s(err), gotPass) {
			t.Fatalf("error %q contains the password", err)
		}
		if len(gotUser) > MaxFieldLen || len(gotPass) > MaxFieldLen {
			t.Fatal("checker got an over-long field")
		}
	})
}

func FuzzLogin(f *testing.F) {
	f.Add([]byte("tim"), []byte("tanstaaftanstaaf"), true)
	f.Add([]byte("tim"), []byte("tanstaaftanstaaf"), false)
	f.Add([]byte(""), []byte("x"), false)
	f.Add([]byte("a\x00"), []byte("\xff"), true)
	f.Fuzz(func(t *testing.T, user, pass []byte, initial bool) {
		var yes bool
		check := func(_ context.Context, u, p string) (string, error) {
			if u == "tim" && p == "tanstaaftanstaaf" {
				yes = true
				return "tim", nil
			}
			return "", ErrInvalidCredentials
		}
		s := NewLogin(context.Background(), check)
		steps := [][]byte{user, pass}
		if !initial {
			steps = append([][]byte{nil}, steps...)
		}
		_, done, err := run(s, steps...)
		if done && (!yes || s.Identity() != "tim" || err != nil) {
			t.Fatalf("success without the checker's yes: identity %q err %v", s.Identity(), err)
		}
		if !done && s.Identity() != "" {
			t.Fatalf("identity %q after failure", s.Identity())
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unexpected error %v", err)
		}
		if len(pass) >= 16 && strings.Contains(err2s(err), string(pass)) {
			t.Fatalf("error %q contains the password", err)
		}
	})
}

func err2s(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// authenticator copies smtpd.Authenticator's method set (sasl may not
// import smtpd); both Passwords and *Passwords must have it.
type authenticator interface {
	Mechanisms(cs *tls.ConnectionState) []string
	Start(ctx context.Context, mech string, cs *tls.ConnectionState) (s Server, ok bool)
}

var (
	_ authenticator = Passwords{}
	_ authenticator = (*Passwords)(nil)
)

// TestFieldProblem: the rules a LOGIN field and a password being set
// (userdb.CheckNewPassword) share.
func TestFieldProblem(t *testing.T) {
	for in, want := range map[string]string{
		"tanstaaf":                         "",
		strings.Repeat("a", MaxFieldLen):   "",
		"":                                 "empty",
		strings.Repeat("a", MaxFieldLen+1): "longer than 255 octets",
		"a\x00b":                           "contains NUL",
		"\xff":                             "not UTF-8",
	} {
		if got := FieldProblem([]byte(in)); got != want {
			t.Errorf("FieldProblem(%q) = %q, want %q", in, got, want)
		}
	}
}
