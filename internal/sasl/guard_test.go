package sasl

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestGuard runs every mechanism whose client names the user before
// proving it through Mechanisms.Start, with and without RequireCert: a
// Guard that refuses makes the exchange fail with ErrRefused, even with
// the right password, before any password check or secret lookup; one
// that allows is asked once, with the username as claimed, and the
// exchange goes on as without a Guard. OAUTHBEARER, XOAUTH2 and EXTERNAL
// are not Guarded.
func TestGuard(t *testing.T) {
	ca := newTestCA()
	asAlice := certSession(t, ca, ca.issue("mx.example.org"), new(ca.issue("Alice", "alice@example.org")), true, tls.VersionTLS13)
	secrets := newMemSecrets()
	secrets.add(t, "alice@example.org", "alice", "pw")
	checks := 0
	check := func(ctx context.Context, u, p string) (string, error) {
		checks++
		if u == "alice@example.org" && p == "pw" {
			return "alice", nil
		}
		return "", ErrInvalidCredentials
	}
	fixed := func() time.Time { return time.Unix(1e9, 0) }
	// exchange runs mech for alice@example.org with password pw.
	exchange := func(s Server, mech, pw string) (done bool, err error) {
		switch mech {
		case MechPlain:
			_, done, err = s.Next([]byte("\x00alice@example.org\x00" + pw))
		case MechLogin:
			_, done, err = run(s, nil, []byte("alice@example.org"), []byte(pw))
		case MechCRAMMD5:
			ch, _, err := s.Next(nil)
			if err != nil {
				return false, err
			}
			_, done, err = s.Next(cramResponse("alice@example.org", pw, ch))
			return done, err
		default: // SCRAM
			hash, gs2, cb := HashSHA256, "n,,", []byte(nil)
			if mech == MechSCRAMSHA1 {
				hash = HashSHA1
			}
			if mech == MechSCRAMSHA256Plus {
				gs2, cb = "p=tls-exporter,,", ChannelBindings(asAlice, nil)[CBTLSExporter]
			}
			cl := newSCRAMClient(hash, "alice@example.org", pw, gs2, cb)
			ch, _, err := s.Next(cl.clientFirst())
			if err != nil {
				return false, err
			}
			final, _ := cl.clientFinal(ch)
			if _, _, err = s.Next(final); err != nil {
				return false, err
			}
			_, done, err = s.Next([]byte{})
			return done, err
		}
		return done, err
	}
	mechs := []string{MechPlain, MechLogin, MechCRAMMD5, MechSCRAMSHA1, MechSCRAMSHA256, MechSCRAMSHA256Plus}
	for _, requireCert := range []bool{false, true} {
		m := &Mechanisms{Enabled: append(slices.Clone(mechs), MechOAuthBearer, MechXOAuth2, MechExternal),
			Check: check, Secrets: secrets, Tokens: testTokens(), Hostname: "mx.example.org", Now: fixed,
			Users: func(_ context.Context, name string) (string, error) {
				if name == "alice@example.org" {
					return "alice", nil
				}
				return "", ErrInvalidCredentials
			}}
		if requireCert {
			m.RequireCert = func(string) bool { return true }
		}
		for _, mech := range mechs {
			start := func() Guarded {
				s, ok := m.Start(context.Background(), mech, asAlice)
				if !ok {
					t.Fatalf("Start(%s) refused", mech)
				}
				g, ok := s.(Guarded)
				if !ok {
					t.Fatalf("%s (RequireCert %v): %T is not Guarded", mech, requireCert, s)
				}
				return g
			}
			for _, pw := range []string{"pw", "wrong"} {
				var asked []string
				s := start()
				s.SetGuard(func(u string) bool { asked = append(asked, u); return false })
				checks, secrets.calls = 0, 0
				done, err := exchange(s, mech, pw)
				if done || !errors.Is(err, ErrRefused) || !errors.Is(err, ErrInvalidCredentials) || s.Identity() != "" {
					t.Errorf("%s refused, password %s: done=%v err=%v identity %q; want ErrRefused", mech, pw, done, err, s.Identity())
				}
				if checks+secrets.calls != 0 {
					t.Errorf("%s refused, password %s: %d password checks and %d secret lookups, want none", mech, pw, checks, secrets.calls)
				}
				if !slices.Equal(asked, []string{"alice@example.org"}) {
					t.Errorf("%s refused: the Guard was asked about %q", mech, asked)
				}
			}
			var asked []string
			s := start()
			s.SetGuard(func(u string) bool { asked = append(asked, u); return true })
			if done, err := exchange(s, mech, "pw"); !done || err != nil || s.Identity() != "alice" {
				t.Errorf("%s allowed: done=%v err=%v identity %q", mech, done, err, s.Identity())
			}
			if !slices.Equal(asked, []string{"alice@example.org"}) {
				t.Errorf("%s allowed: the Guard was asked about %q", mech, asked)
			}
		}
		for _, mech := range []string{MechOAuthBearer, MechXOAuth2, MechExternal} {
			s, ok := m.Start(context.Background(), mech, asAlice)
			if !ok {
				t.Fatalf("Start(%s) refused", mech)
			}
			if _, ok := s.(Guarded); ok {
				t.Errorf("%s is Guarded: its user is known only once the token or certificate is checked", mech)
			}
		}
	}
}
