package oauth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"postern/internal/sasl"
)

func FuzzJWT(f *testing.F) {
	k1 := newKey(f, "k1", jose.ES256)
	path := filepath.Join(f.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks(f, k1), 0o600); err != nil {
		f.Fatal(err)
	}
	good := sign(f, k1, goodClaims())
	f.Add(good)
	f.Add(handMade(map[string]any{"alg": "none", "kid": "k1"}, goodClaims(), nil))
	f.Add(handMade(map[string]any{"alg": "HS256", "kid": "k1"}, goodClaims(), []byte("k")))
	f.Add("e30.e30.")
	v := &JWT{JWKSFile: path, Issuer: issuer, Audience: audience, UserClaim: "email", Leeway: 30 * time.Second, Now: func() time.Time { return t0 }}
	f.Fuzz(func(t *testing.T, token string) {
		user, err := v.VerifyToken(context.Background(), token)
		if err == nil {
			// Only a token signed by k1 can pass; the fuzzer cannot forge
			// ES256, so it must be the seed itself.
			if token != good || user != "alice@example.org" {
				t.Fatalf("accepted %q as %q", token, user)
			}
			return
		}
		if user != "" || (!errors.Is(err, sasl.ErrInvalidCredentials) && !errors.Is(err, sasl.ErrTemporary)) {
			t.Fatalf("%q %v", user, err)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	f.Add(jwks(f, newKey(f, "k1", jose.ES256), newKey(f, "r1", jose.RS256), newKey(f, "e1", jose.EdDSA)))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			if keys != nil || !errors.Is(err, sasl.ErrTemporary) {
				t.Fatalf("%d keys, err %v", len(keys), err)
			}
			return
		}
		for _, k := range keys {
			if !k.IsPublic() || !k.Valid() {
				t.Fatalf("kept a private or invalid key %+v", k)
			}
		}
	})
}

func FuzzIntrospectionAnswer(f *testing.F) {
	f.Add([]byte(`{"active":true,"username":"alice","exp":1795767000,"iss":"https://idp.example.org","aud":["smtp.example.org"]}`))
	f.Add([]byte(`{"active":false}`))
	f.Add([]byte(`{"active":"true","username":"alice"}`))
	f.Add([]byte(`[]`))
	in := &Introspection{Endpoint: "https://idp.example.org/introspect", UserClaim: "username", Issuer: issuer, Audience: audience}
	f.Fuzz(func(t *testing.T, body []byte) {
		user, exp, err := in.parse(body, t0)
		if err != nil {
			if user != "" || (!errors.Is(err, sasl.ErrInvalidCredentials) && !errors.Is(err, sasl.ErrTemporary)) {
				t.Fatalf("%q %v", user, err)
			}
			return
		}
		if user == "" || len(user) > sasl.MaxFieldLen || (!exp.IsZero() && !t0.Before(exp)) {
			t.Fatalf("accepted user %q exp %v", user, exp)
		}
	})
}
