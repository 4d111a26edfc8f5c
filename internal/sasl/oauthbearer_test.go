package sasl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fakeTokens maps tokens to users; "temp" is a temporary failure.
type fakeTokens map[string]string

func (f fakeTokens) VerifyToken(ctx context.Context, token string) (string, error) {
	if token == "temp" {
		return "", fmt.Errorf("fake: %w", ErrTemporary)
	}
	u, ok := f[token]
	if !ok {
		return "", fmt.Errorf("fake: unknown token: %w", ErrInvalidCredentials)
	}
	return u, nil
}

var rfcToken = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="

func testTokens() fakeTokens {
	return fakeTokens{rfcToken: "user@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg": "someuser@example.com"}
}

func TestOAuthBearer(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		want      error
		challenge string
		identity  string
	}{
		// RFC 7628 §4.1.
		{"RFC 7628 §4.1", "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer " + rfcToken + "\x01\x01", nil, "", "user@example.com"},
		{"no authzid", "n,,\x01auth=Bearer " + rfcToken + "\x01\x01", nil, "", "user@example.com"},
		{"y flag, case", "y,a=USER@example.com,\x01AUTH=bearer  " + rfcToken + "\x01\x01", nil, "", "user@example.com"},
		// RFC 7628 §4.3: a token the server refuses.
		{"RFC 7628 §4.3", "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhdmlzdGEuY29tCg==\x01\x01", ErrInvalidCredentials, `{"status":"invalid_token"}`, ""},
		{"other user", "n,a=bob@example.com,\x01auth=Bearer " + rfcToken + "\x01\x01", ErrInvalidCredentials, `{"status":"invalid_token"}`, ""},
		{"temporary", "n,,\x01auth=Bearer temp\x01\x01", ErrTemporary, "", ""},
		{"channel binding", "p=tls-exporter,,\x01auth=Bearer " + rfcToken + "\x01\x01", ErrMalformed, "", ""},
		{"no auth", "n,,\x01host=x\x01\x01", ErrMalformed, "", ""},
		{"basic", "n,,\x01auth=Basic dXNlcjpwYXNz\x01\x01", ErrMalformed, "", ""},
		{"empty token", "n,,\x01auth=Bearer \x01\x01", ErrMalformed, "", ""},
		{"not b64token", "n,,\x01auth=Bearer a b\x01\x01", ErrMalformed, "", ""},
		{"missing final kvsep", "n,,\x01auth=Bearer " + rfcToken + "\x01", ErrMalformed, "", ""},
		{"missing first kvsep", "n,,auth=Bearer " + rfcToken + "\x01\x01", ErrMalformed, "", ""},
		{"repeated auth", "n,,\x01auth=Bearer x\x01auth=Bearer " + rfcToken + "\x01\x01", ErrMalformed, "", ""},
		{"bad key", "n,,\x01au-th=x\x01auth=Bearer " + rfcToken + "\x01\x01", ErrMalformed, "", ""},
		{"dummy", "\x01", ErrMalformed, "", ""},
		{"empty", "", ErrMalformed, "", ""},
	} {
		s := NewOAuthBearer(context.Background(), testTokens())
		ch, done, err := s.Next([]byte(c.msg))
		if c.want == nil {
			if err != nil || !done || ch != nil || s.Identity() != c.identity {
				t.Errorf("%s: %q done=%v err=%v identity %q", c.name, ch, done, err, s.Identity())
			}
			continue
		}
		if done || !errors.Is(err, c.want) || string(ch) != c.challenge || s.Identity() != "" {
			t.Errorf("%s: %q done=%v err=%v, want %v and %q", c.name, ch, done, err, c.want, c.challenge)
		}
		if err != nil && strings.Contains(err.Error(), "vF9dft4") {
			t.Errorf("%s: error contains the token: %v", c.name, err)
		}
	}
	// Without an initial response: an empty challenge first.
	s := NewOAuthBearer(context.Background(), testTokens())
	if ch, done, err := s.Next(nil); err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("Next(nil): %q %v %v", ch, done, err)
	}
	if _, done, err := s.Next([]byte("n,,\x01auth=Bearer " + rfcToken + "\x01\x01")); !done || err != nil {
		t.Fatalf("after the empty challenge: %v", err)
	}
}

func TestXOAUTH2(t *testing.T) {
	good := "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01"
	s := NewXOAUTH2(context.Background(), testTokens())
	if _, done, err := s.Next([]byte(good)); !done || err != nil || s.Identity() != "someuser@example.com" {
		t.Fatalf("good: done=%v err=%v identity %q", done, err, s.Identity())
	}
	for _, c := range []struct {
		msg, challenge string
		want           error
	}{
		{"user=other@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01", `{"status":"401","schemes":"bearer"}`, ErrInvalidCredentials},
		{"user=someuser@example.com\x01auth=Bearer expired\x01\x01", `{"status":"401","schemes":"bearer"}`, ErrInvalidCredentials},
		{"auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01", "", ErrMalformed},
		{"user=someuser@example.com\x01\x01", "", ErrMalformed},
		{"user=someuser@example.com\x01auth=Bearer x", "", ErrMalformed},
		{"n,,\x01auth=Bearer x\x01\x01", "", ErrMalformed},
	} {
		s := NewXOAUTH2(context.Background(), testTokens())
		ch, done, err := s.Next([]byte(c.msg))
		if done || !errors.Is(err, c.want) || string(ch) != c.challenge || s.Identity() != "" {
			t.Errorf("%q: %q done=%v err=%v", c.msg, ch, done, err)
		}
	}
}

func FuzzOAuthBearer(f *testing.F) {
	f.Add([]byte("n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer " + rfcToken + "\x01\x01"))
	f.Add([]byte("y,,\x01auth=bearer x\x01\x01"))
	f.Add([]byte("n,a=a=2Cb,\x01\x01"))
	f.Add([]byte("\x01"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fuzzToken(t, NewOAuthBearer(context.Background(), testTokens()), msg, `{"status":"invalid_token"}`)
	})
}

func FuzzXOAUTH2(f *testing.F) {
	f.Add([]byte("user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg\x01\x01"))
	f.Add([]byte("user=x\x01auth=Bearer y==\x01\x01"))
	f.Add([]byte("user=\x01\x01"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fuzzToken(t, NewXOAUTH2(context.Background(), testTokens()), msg, `{"status":"401","schemes":"bearer"}`)
	})
}

// fuzzToken checks the invariants of one OAUTHBEARER or XOAUTH2 message.
func fuzzToken(t *testing.T, s Server, msg []byte, errChallenge string) {
	ch, done, err := s.Next(msg)
	if done {
		if err != nil || ch != nil {
			t.Fatalf("done with %q %v", ch, err)
		}
		if u := s.Identity(); u != "user@example.com" && u != "someuser@example.com" {
			t.Fatalf("identity %q", u)
		}
		if !strings.Contains(string(msg), rfcToken) && !strings.Contains(string(msg), "ya29.vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg") {
			t.Fatalf("accepted %q without a known token", msg)
		}
		return
	}
	if s.Identity() != "" || err == nil {
		t.Fatalf("not done: identity %q err %v", s.Identity(), err)
	}
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		if string(ch) != errChallenge {
			t.Fatalf("challenge %q", ch)
		}
	case errors.Is(err, ErrMalformed):
		if ch != nil {
			t.Fatalf("challenge %q with a malformed message", ch)
		}
	default:
		t.Fatalf("error %v", err)
	}
}
