package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"postern/internal/sasl"
)

var t0 = time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)

const (
	issuer   = "https://idp.example.org"
	audience = "smtp.example.org"
)

// signingKey is a private key with its id and algorithm.
type signingKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newKey(t testing.TB, kid string, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid: kid, alg: alg, priv: priv}
}

func (k signingKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

func jwks(t testing.TB, keys ...signingKey) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.jwk())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claims are a token's claims; zero fields are left out.
type claims struct {
	iss      string
	aud      []string
	exp, nbf time.Time
	email    string
}

func goodClaims() claims {
	return claims{iss: issuer, aud: []string{audience, "other"}, exp: t0.Add(time.Hour), email: "alice@example.org"}
}

func (c claims) std() (jwt.Claims, map[string]any) {
	s := jwt.Claims{Issuer: c.iss, Audience: c.aud, Subject: "248289761001", IssuedAt: jwt.NewNumericDate(t0.Add(-time.Minute))}
	if !c.exp.IsZero() {
		s.Expiry = jwt.NewNumericDate(c.exp)
	}
	if !c.nbf.IsZero() {
		s.NotBefore = jwt.NewNumericDate(c.nbf)
	}
	extra := map[string]any{}
	if c.email != "" {
		extra["email"] = c.email
	}
	return s, extra
}

func sign(t testing.TB, k signingKey, c claims) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("at+jwt")
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	std, extra := c.std()
	tok, err := jwt.Signed(signer).Claims(std).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// handMade builds a compact JWS with any header and an HMAC-SHA256 or no
// signature, as an attacker would.
func handMade(header map[string]any, c claims, hmacKey []byte) string {
	enc := base64.RawURLEncoding
	h, _ := json.Marshal(header)
	std, extra := c.std()
	p1, _ := json.Marshal(std)
	var m map[string]any
	json.Unmarshal(p1, &m)
	for k, v := range extra {
		m[k] = v
	}
	p, _ := json.Marshal(m)
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(p)
	if hmacKey == nil {
		return input + "."
	}
	mac := hmac.New(sha256.New, hmacKey)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// jwksServer serves a JWKS over TLS and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   []byte
	status int
	hits   int
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: 200}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(s.status)
		w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status = body, status
}

func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestJWTCases(t *testing.T) {
	k1 := newKey(t, "k1", jose.ES256)
	rsaKey := newKey(t, "r1", jose.RS256)
	edKey := newKey(t, "e1", jose.EdDSA)
	srv := newJWKSServer(t, jwks(t, k1, rsaKey, edKey))
	v := &JWT{JWKSURL: srv.URL + "/jwks", Issuer: issuer, Audience: audience, UserClaim: "email", Leeway: 30 * time.Second, Now: func() time.Time { return t0 }, HTTPClient: srv.Client()}

	pubDER, _ := x509.MarshalPKIXPublicKey(k1.priv.Public())
	stranger := newKey(t, "k1", jose.ES256) // same kid, other key
	noKid := k1
	noKid.kid = ""
	good := goodClaims()
	with := func(f func(*claims)) claims { c := goodClaims(); f(&c); return c }

	for _, c := range []struct {
		name  string
		token string
		want  string // user, or "" for a refusal
		why   string // part of the error
	}{
		{"good ES256", sign(t, k1, good), "alice@example.org", ""},
		{"good RS256", sign(t, rsaKey, good), "alice@example.org", ""},
		{"good EdDSA", sign(t, edKey, good), "alice@example.org", ""},
		{"no kid", sign(t, noKid, good), "alice@example.org", ""},
		{"expired", sign(t, k1, with(func(c *claims) { c.exp = t0.Add(-time.Minute) })), "", "expired"},
		{"expired within leeway", sign(t, k1, with(func(c *claims) { c.exp = t0.Add(-10 * time.Second) })), "alice@example.org", ""},
		{"not yet valid", sign(t, k1, with(func(c *claims) { c.nbf = t0.Add(time.Hour) })), "", "not valid yet"},
		{"no exp", sign(t, k1, with(func(c *claims) { c.exp = time.Time{} })), "", "no exp"},
		{"wrong audience", sign(t, k1, with(func(c *claims) { c.aud = []string{"imap.example.org"} })), "", "audience"},
		{"no audience", sign(t, k1, with(func(c *claims) { c.aud = nil })), "", "audience"},
		{"wrong issuer", sign(t, k1, with(func(c *claims) { c.iss = "https://evil.example" })), "", "issuer"},
		{"no user claim", sign(t, k1, with(func(c *claims) { c.email = "" })), "", `claim "email"`},
		{"bad signature", sign(t, stranger, good), "", "bad signature"},
		{"tampered payload", tamper(sign(t, k1, good)), "", "bad signature"},
		{"alg none", handMade(map[string]any{"alg": "none", "kid": "k1"}, good, nil), "", "not a JWT signed"},
		{"alg none, no kid", handMade(map[string]any{"alg": "none"}, good, nil), "", "not a JWT signed"},
		{"HS256 keyed with the public key", handMade(map[string]any{"alg": "HS256", "kid": "k1"}, good, pubDER), "", "not a JWT signed"},
		{"unknown kid", sign(t, newKey(t, "k9", jose.ES256), good), "", `no key with id "k9"`},
		{"RS256 header on an EC key", handMade(map[string]any{"alg": "RS256", "kid": "k1"}, good, []byte("x")), "", "bad signature"},
		{"garbage", "not.a.jwt", "", "not a JWT"},
		{"too long", strings.Repeat("a", MaxTokenLen+1), "", "longer"},
	} {
		user, err := v.VerifyToken(context.Background(), c.token)
		if c.want != "" {
			if err != nil || user != c.want {
				t.Errorf("%s: %q %v", c.name, user, err)
			}
			continue
		}
		if user != "" || !errors.Is(err, sasl.ErrInvalidCredentials) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %q %v, want a refusal mentioning %q", c.name, user, err, c.why)
		}
		if err != nil && len(c.token) > 20 && strings.Contains(err.Error(), c.token[len(c.token)-20:]) {
			t.Errorf("%s: error contains the token", c.name)
		}
	}
}

// tamper changes the payload of a compact JWS, keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), "alice@", "mallory@", 1))
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
}

// TestJWKSRotation: a token signed with a new key id makes the verifier
// fetch the JWKS again, at most once per MinRefresh; the TTL refreshes
// the set; a failing fetch keeps the cached keys.
func TestJWKSRotation(t *testing.T) {
	k1 := newKey(t, "k1", jose.ES256)
	k2 := newKey(t, "k2", jose.ES256)
	srv := newJWKSServer(t, jwks(t, k1))
	clk := &clock{t: t0}
	v := &JWT{JWKSURL: srv.URL, Issuer: issuer, Audience: audience, UserClaim: "email", Leeway: 30 * time.Second, Now: clk.now, HTTPClient: srv.Client(), TTL: time.Hour, MinRefresh: time.Minute}
	good := goodClaims()
	good.exp = t0.Add(24 * time.Hour)
	ok := func(tok string) {
		t.Helper()
		if u, err := v.VerifyToken(context.Background(), tok); err != nil || u != "alice@example.org" {
			t.Fatalf("refused: %v", err)
		}
	}
	refused := func(tok, why string) {
		t.Helper()
		if _, err := v.VerifyToken(context.Background(), tok); !errors.Is(err, sasl.ErrInvalidCredentials) || !strings.Contains(err.Error(), why) {
			t.Fatalf("err %v, want %q", err, why)
		}
	}
	ok(sign(t, k1, good))
	ok(sign(t, k1, good))
	if n := srv.count(); n != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", n)
	}
	// The issuer rotates to k2. A k2 token within MinRefresh of the
	// first fetch is refused without a fetch.
	srv.set(jwks(t, k1, k2), 200)
	refused(sign(t, k2, good), `no key with id "k2"`)
	if n := srv.count(); n != 1 {
		t.Fatalf("%d fetches within MinRefresh, want 1", n)
	}
	// After MinRefresh the unknown kid triggers one fetch.
	clk.add(2 * time.Minute)
	ok(sign(t, k2, good))
	if n := srv.count(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// An attacker's unknown kids cannot make it fetch on every token.
	for range 5 {
		refused(sign(t, newKey(t, "k9", jose.ES256), good), `no key with id "k9"`)
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("%d fetches after unknown kids, want 2", n)
	}
	// k1 is withdrawn; after the TTL the set is fetched again and k1
	// tokens are refused.
	srv.set(jwks(t, k2), 200)
	clk.add(time.Hour)
	refused(sign(t, k1, good), `no key with id "k1"`)
	ok(sign(t, k2, good))
	if n := srv.count(); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}
	// The JWKS endpoint fails: the cached keys stay in use.
	srv.set([]byte("oops"), 503)
	clk.add(2 * time.Hour)
	ok(sign(t, k2, good))
	if n := srv.count(); n != 4 {
		t.Fatalf("%d fetches, want 4", n)
	}
}

func TestJWKSUnavailable(t *testing.T) {
	k1 := newKey(t, "k1", jose.ES256)
	srv := newJWKSServer(t, []byte("{}"))
	srv.set(nil, 500)
	clk := &clock{t: t0}
	v := &JWT{JWKSURL: srv.URL, Issuer: issuer, Audience: audience, UserClaim: "email", Leeway: 30 * time.Second, Now: clk.now, HTTPClient: srv.Client()}
	for range 3 {
		if _, err := v.VerifyToken(context.Background(), sign(t, k1, goodClaims())); !errors.Is(err, sasl.ErrTemporary) {
			t.Fatalf("err %v, want temporary", err)
		}
	}
	if n := srv.count(); n != 1 {
		t.Errorf("%d fetches of a failing JWKS within MinRefresh, want 1", n)
	}
	// A JWKS without a usable key (a symmetric one only) is an outage too.
	srv.set([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"k1"}]}`), 200)
	clk.add(time.Hour)
	if _, err := v.VerifyToken(context.Background(), sign(t, k1, goodClaims())); !errors.Is(err, sasl.ErrTemporary) {
		t.Fatalf("err %v, want temporary", err)
	}
	// A plain-HTTP URL is refused by Check.
	if err := (&JWT{JWKSURL: "http://idp.example/jwks", Issuer: issuer, Audience: audience, UserClaim: "email"}).Check(); err == nil {
		t.Error("http JWKS URL accepted")
	}
	for _, bad := range []*JWT{{Issuer: issuer, Audience: audience}, {JWKSFile: "x", Audience: audience}, {JWKSFile: "x", Issuer: issuer}, {JWKSFile: "x", JWKSURL: "https://x", Issuer: issuer, Audience: audience}} {
		if bad.Check() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestJWKSFile(t *testing.T) {
	k1 := newKey(t, "k1", jose.EdDSA)
	path := filepath.Join(t.TempDir(), "jwks.json")
	// Unknown key types and private keys in the file are skipped.
	raw := `{"keys":[{"kty":"XYZ","kid":"odd"},` + strings.TrimPrefix(string(jwks(t, k1)), `{"keys":[`)
	if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
		t.Fatal(err)
	}
	v := &JWT{JWKSFile: path, Issuer: issuer, Audience: audience, UserClaim: "sub", Now: func() time.Time { return t0 }}
	if u, err := v.VerifyToken(context.Background(), sign(t, k1, goodClaims())); err != nil || u != "248289761001" {
		t.Fatalf("%q %v", u, err)
	}
}

// Both verifiers are sasl.TokenVerifiers.
var (
	_ sasl.TokenVerifier = (*JWT)(nil)
	_ sasl.TokenVerifier = (*Introspection)(nil)
)

// TestJWTConcurrent verifies tokens from many goroutines while the key
// set rotates (run with -race).
func TestJWTConcurrent(t *testing.T) {
	k1 := newKey(t, "k1", jose.ES256)
	k2 := newKey(t, "k2", jose.ES256)
	srv := newJWKSServer(t, jwks(t, k1, k2))
	clk := &clock{t: t0}
	v := &JWT{JWKSURL: srv.URL, Issuer: issuer, Audience: audience, UserClaim: "email", Leeway: 30 * time.Second, Now: clk.now, HTTPClient: srv.Client()}
	c := goodClaims()
	c.exp = t0.Add(48 * time.Hour)
	toks := []string{sign(t, k1, c), sign(t, k2, c)}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				if i == 0 {
					clk.add(10 * time.Minute)
				}
				if _, err := v.VerifyToken(context.Background(), toks[(i+j)%2]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := srv.count(); n < 1 || n > 5 {
		t.Errorf("%d fetches", n)
	}
}

// Leeway and UserClaim have no default here (Postern's configuration
// resolves them, in internal/config): a Leeway of 0 allows no skew, and
// a JWT or an introspection without UserClaim is refused by Check.
func TestNoDefaults(t *testing.T) {
	k1 := newKey(t, "k1", jose.ES256)
	srv := newJWKSServer(t, jwks(t, k1))
	v := &JWT{JWKSURL: srv.URL + "/jwks", Issuer: issuer, Audience: audience, UserClaim: "email",
		Now: func() time.Time { return t0 }, HTTPClient: srv.Client()}
	c := goodClaims()
	c.exp = t0.Add(-10 * time.Second)
	if user, err := v.VerifyToken(context.Background(), sign(t, k1, c)); err == nil {
		t.Errorf("a token expired 10s ago passed with Leeway 0, as %q", user)
	}
	v.UserClaim = ""
	if err := v.Check(); err == nil || !strings.Contains(err.Error(), "UserClaim") {
		t.Errorf("JWT without UserClaim: Check = %v", err)
	}
	in := &Introspection{Endpoint: "https://idp.example.org/introspect"}
	if err := in.Check(); err == nil || !strings.Contains(err.Error(), "UserClaim") {
		t.Errorf("introspection without UserClaim: Check = %v", err)
	}
}
