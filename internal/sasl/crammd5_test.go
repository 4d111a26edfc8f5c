package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

func cramResponse(user, password string, challenge []byte) []byte {
	m := hmac.New(md5.New, []byte(password))
	m.Write(challenge)
	return []byte(user + " " + hex.EncodeToString(m.Sum(nil)))
}

// TestCRAMMD5RFC2195 replays RFC 2195 §2's example with its challenge.
func TestCRAMMD5RFC2195(t *testing.T) {
	secrets := newMemSecrets()
	secrets.add(t, "tim", "tim", "tanstaaftanstaaf")
	// The example's challenge, <1896.697170952@postoffice.reston.mci.net>:
	// random 1896, timestamp 697170952 (seconds; here nanoseconds).
	random := bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0x07, 0x68})
	now := func() time.Time { return time.Unix(0, 697170952) }
	s := newCRAMMD5(context.Background(), "postoffice.reston.mci.net", secrets, now, random)
	ch, done, err := s.Next(nil)
	if err != nil || done || string(ch) != "<1896.697170952@postoffice.reston.mci.net>" {
		t.Fatalf("challenge %q done=%v err=%v", ch, done, err)
	}
	_, done, err = s.Next([]byte("tim b913a602c7eda7a495b4e6e7334d3890"))
	if err != nil || !done || s.Identity() != "tim" || s.Username() != "tim" {
		t.Fatalf("done=%v err=%v identity %q", done, err, s.Identity())
	}
}

func TestCRAMMD5(t *testing.T) {
	secrets := newMemSecrets()
	secrets.add(t, "alice@example.org", "alice", "pässwörd")
	secrets.add(t, "with space", "Spacey", "pw")
	now := func() time.Time { return time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC) }
	re := regexp.MustCompile(`^<[0-9]+\.[0-9]+@mx\.example\.org>$`)
	seen := map[string]bool{}
	for _, c := range []struct {
		user, pw string
		want     error
		identity string
	}{
		{"alice@example.org", "pässwörd", nil, "alice"},
		{"ALICE@example.org", "pässwörd", nil, "alice"},
		{"with space", "pw", nil, "Spacey"},
		{"alice@example.org", "wrong", ErrInvalidCredentials, ""},
		{"nobody", "pw", ErrInvalidCredentials, ""},
		{"tempfail", "pw", ErrTemporary, ""},
	} {
		s := NewCRAMMD5(context.Background(), "mx.example.org", secrets, now)
		ch, _, err := s.Next(nil)
		if err != nil || !re.Match(ch) {
			t.Fatalf("challenge %q: %v", ch, err)
		}
		if seen[string(ch)] {
			t.Errorf("challenge %q repeated", ch)
		}
		seen[string(ch)] = true
		_, done, err := s.Next(cramResponse(c.user, c.pw, ch))
		if c.want == nil && (err != nil || !done || s.Identity() != c.identity) {
			t.Errorf("%s: done=%v err=%v identity %q", c.user, done, err, s.Identity())
		}
		if c.want != nil && (done || !errors.Is(err, c.want) || s.Identity() != "") {
			t.Errorf("%s: done=%v err=%v identity %q, want %v", c.user, done, err, s.Identity(), c.want)
		}
		if s.Username() != c.user {
			t.Errorf("username %q", s.Username())
		}
	}
	// Upper-case hex is accepted; the response to another challenge is not.
	s := NewCRAMMD5(context.Background(), "mx.example.org", secrets, now)
	ch, _, _ := s.Next(nil)
	if _, done, err := s.Next(bytes.ToUpper(cramResponse("alice@example.org", "pässwörd", ch))); !done || err != nil {
		// ToUpper also upper-cases the user name, which the store ignores.
		t.Errorf("upper-case hex: %v", err)
	}
	s = NewCRAMMD5(context.Background(), "mx.example.org", secrets, now)
	s.Next(nil)
	if _, done, err := s.Next(cramResponse("alice@example.org", "pässwörd", ch)); done || !errors.Is(err, ErrInvalidCredentials) {
		t.Errorf("replayed response: done=%v err=%v", done, err)
	}
}

func TestCRAMMD5Malformed(t *testing.T) {
	secrets := newMemSecrets()
	secrets.add(t, "tim", "tim", "tanstaaftanstaaf")
	// An initial response is refused (RFC 2195 §2: server first).
	s := NewCRAMMD5(context.Background(), "h", secrets, nil)
	if _, _, err := s.Next([]byte("tim b913a602c7eda7a495b4e6e7334d3890")); !errors.Is(err, ErrMalformed) {
		t.Errorf("initial response: %v", err)
	}
	for _, m := range []string{
		"", "tim", "timb913a602c7eda7a495b4e6e7334d3890", " b913a602c7eda7a495b4e6e7334d3890",
		"tim b913a602c7eda7a495b4e6e7334d389", "tim b913a602c7eda7a495b4e6e7334d3890 ",
		"tim zz13a602c7eda7a495b4e6e7334d3890", "t\x00m b913a602c7eda7a495b4e6e7334d3890",
		strings.Repeat("u", 256) + " b913a602c7eda7a495b4e6e7334d3890", "\xff b913a602c7eda7a495b4e6e7334d3890",
	} {
		secrets.calls = 0
		s := NewCRAMMD5(context.Background(), "h", secrets, nil)
		s.Next(nil)
		if _, done, err := s.Next([]byte(m)); done || !errors.Is(err, ErrMalformed) || secrets.calls != 0 {
			t.Errorf("%q: done=%v err=%v calls=%d", m, done, err, secrets.calls)
		}
	}
}

func FuzzCRAMMD5(f *testing.F) {
	f.Add([]byte("tim b913a602c7eda7a495b4e6e7334d3890"))
	f.Add([]byte("tim B913A602C7EDA7A495B4E6E7334D3890"))
	f.Add([]byte("a b c 00000000000000000000000000000000"))
	f.Add([]byte(" "))
	secrets := newMemSecrets()
	secrets.add(f, "tim", "tim", "tanstaaftanstaaf")
	now := func() time.Time { return time.Unix(0, 697170952) }
	f.Fuzz(func(t *testing.T, resp []byte) {
		random := bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0x07, 0x68})
		s := newCRAMMD5(context.Background(), "postoffice.reston.mci.net", secrets, now, random)
		if _, _, err := s.Next(nil); err != nil {
			t.Fatal(err)
		}
		ch, done, err := s.Next(resp)
		if ch != nil || done == (err != nil) {
			t.Fatalf("challenge %q done=%v err=%v", ch, done, err)
		}
		if done {
			// Only the real digest (any hex case) of tim, any case, passes.
			if !strings.EqualFold(string(resp), "tim b913a602c7eda7a495b4e6e7334d3890") || s.Identity() != "tim" {
				t.Fatalf("accepted %q as %q", resp, s.Identity())
			}
		} else if s.Identity() != "" {
			t.Fatal("identity after failure")
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("error %v", err)
		}
		if _, done, err := s.Next(resp); done || err == nil {
			t.Fatal("Next after the end")
		}
	})
}
