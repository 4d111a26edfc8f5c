package userdb

import (
	"strings"
	"testing"
)

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2i$v=19$m=0,t=0,p=0$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		// Whatever parses is within the limits and prints back as itself.
		if p.params.validate() != nil || len(p.salt) < minSaltLen || len(p.key) < minKeyLen {
			t.Fatalf("accepted out-of-limits %q", s)
		}
		if p.String() != s {
			t.Fatalf("%q parses but prints as %q", s, p.String())
		}
	})
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"users":[]}`))
	f.Add([]byte(`{"version":1,"users":[{"address":"a@b.c","password":"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc","created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		users, err := parseFile(b)
		if err != nil {
			return
		}
		// A file that parses survives a write and a re-read unchanged.
		out, err := encodeFile(users)
		if err != nil {
			t.Fatal(err)
		}
		again, err := parseFile(out)
		if err != nil || len(again) != len(users) {
			t.Fatalf("re-read: %v, %d users of %d", err, len(again), len(users))
		}
		for k, r := range users {
			if k != userKey(r.user.Address) || again[k] == nil || again[k].hash != r.hash {
				t.Fatalf("user %q changed", k)
			}
		}
	})
}

func FuzzNormalizeAddress(f *testing.F) {
	for _, s := range []string{"alice@example.org", "A@B", "../x@y", "a@b@c", "ünï@bü.ch"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := NormalizeAddress(s)
		if err != nil {
			return
		}
		if strings.Count(a, "@") != 1 || strings.ContainsAny(a, "/\\ \t\r\n\x00") || len(a) > MaxAddressLen {
			t.Fatalf("accepted %q as %q", s, a)
		}
		if b, err := NormalizeAddress(a); err != nil || b != a {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, a, b, err)
		}
	})
}
