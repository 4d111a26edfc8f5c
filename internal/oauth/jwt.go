package oauth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// allowedAlgs returns the signature algorithms JWT accepts (RFC 7518
// §3.1, RFC 8037 §3.1). "none" and the HMAC algorithms are never
// accepted: a JWKS publishes public keys, and an HMAC "verified" with a
// public key proves nothing.
func allowedAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}
}

// JWT checks access tokens that are JWTs (RFC 7519, RFC 9068) locally: the
// signature against a key of a JWKS (RFC 7517), then the issuer, the
// audience, the expiry (required) and the claim that names the user.
// Set the exported fields, then use a *JWT from any number of goroutines;
// it must not be copied or changed after first use.
//
// The JWKS comes from a file or an https URL, and is cached for TTL. A
// token signed with a key id the cached set lacks (the issuer rotated its
// keys) makes JWT fetch the set again, at most once per MinRefresh. When
// a fetch fails, the keys already cached stay in use.
type JWT struct {
	// JWKSFile is the path of a JWKS document; or set JWKSURL.
	JWKSFile string
	// JWKSURL is the https URL of a JWKS document (an issuer's jwks_uri).
	JWKSURL string
	// Issuer must equal the token's "iss" claim. Required.
	Issuer string
	// Audience must be among the token's "aud" claim. Required.
	Audience string
	// UserClaim names the claim that holds the user name ("email" in
	// Postern's default configuration). Required.
	UserClaim string
	// Leeway allows for clock skew when checking "exp", "nbf" and "iat";
	// 0 allows none. (Postern's configuration resolves the defaults of
	// UserClaim and Leeway, in internal/config.)
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches JWKSURL; nil means http.DefaultClient.
	HTTPClient *http.Client
	// TTL is how long a fetched JWKS is used before it is fetched again;
	// default 1h.
	TTL time.Duration
	// MinRefresh is the least time between two fetches caused by unknown
	// key ids; default 1m.
	MinRefresh time.Duration

	fetchMu sync.Mutex // held while fetching, so one fetch runs at a time

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // when keys were fetched; zero: never
	tried   time.Time // when a fetch was last attempted
	fetches int       // fetches attempted, for tests
}

// Check reports a JWT whose fields cannot work: no key source or two, no
// issuer or audience, a JWKSURL that is not https.
func (j *JWT) Check() error {
	switch {
	case (j.JWKSFile == "") == (j.JWKSURL == ""):
		return errors.New("oauth: JWT needs exactly one of JWKSFile and JWKSURL")
	case j.Issuer == "":
		return errors.New("oauth: JWT needs an Issuer")
	case j.Audience == "":
		return errors.New("oauth: JWT needs an Audience")
	case j.UserClaim == "":
		return errors.New("oauth: JWT needs a UserClaim")
	case j.JWKSURL != "":
		return checkHTTPS(j.JWKSURL)
	}
	return nil
}

func (j *JWT) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

// VerifyToken implements sasl.TokenVerifier: it returns the value of
// UserClaim of a valid token.
func (j *JWT) VerifyToken(ctx context.Context, token string) (string, error) {
	if err := j.Check(); err != nil {
		return "", temporary("%v", err)
	}
	if len(token) > MaxTokenLen {
		return "", invalid("token longer than %d octets", MaxTokenLen)
	}
	// RFC 7515 §5.2: parsing refuses algorithms outside the list, "none"
	// and HMAC included.
	tok, err := jwt.ParseSigned(token, allowedAlgs())
	if err != nil {
		return "", invalid("not a JWT signed with RS256, ES256 or EdDSA")
	}
	if len(tok.Headers) != 1 {
		return "", invalid("JWT has %d signatures", len(tok.Headers))
	}
	hdr := tok.Headers[0]
	keys, err := j.keysFor(ctx, hdr.KeyID)
	if err != nil {
		return "", err
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if !usable(k, jose.SignatureAlgorithm(hdr.Algorithm)) {
			continue
		}
		if tok.Claims(k.Key, &std, &all) == nil {
			verified = true
			break
		}
	}
	if !verified {
		if len(keys) == 0 {
			return "", invalid("no key with id %q", hdr.KeyID)
		}
		return "", invalid("bad signature (key id %q, %s)", hdr.KeyID, hdr.Algorithm)
	}
	// RFC 7519 §4.1 and RFC 9068 §4: issuer, audience, validity period.
	if std.Expiry == nil {
		return "", invalid("JWT has no exp claim")
	}
	exp := jwt.Expected{Issuer: j.Issuer, AnyAudience: jwt.Audience{j.Audience}, Time: j.now()}
	if err := std.ValidateWithLeeway(exp, j.Leeway); err != nil {
		return "", invalid("%v", err)
	}
	return userName(all[j.UserClaim], j.UserClaim)
}

// usable reports whether k may verify a signature with alg: a public
// signing key (RFC 7517 §4.2 "use" absent or "sig"), of alg's type, whose
// "alg", if given, is alg (RFC 7517 §4.4).
func usable(k jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != string(alg)) || !k.IsPublic() {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == jose.RS256 && key.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && key.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// keysFor returns the cached keys with id kid (all keys when kid is
// empty), fetching the set first when it is older than TTL, or when kid is
// unknown and the last fetch is older than MinRefresh.
func (j *JWT) keysFor(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	ttl, minRefresh := j.TTL, j.MinRefresh
	if ttl <= 0 {
		ttl = time.Hour
	}
	if minRefresh <= 0 {
		minRefresh = time.Minute
	}
	now := j.now()
	j.mu.Lock()
	keys, fetched, tried := j.keys, j.fetched, j.tried
	j.mu.Unlock()
	found := pick(keys, kid)
	stale := fetched.IsZero() || now.Sub(fetched) >= ttl
	if !stale && len(found) > 0 {
		return found, nil
	}
	if now.Sub(tried) < minRefresh {
		// Fetched (or tried to) a moment ago: no new fetch yet.
		if keys == nil {
			// Never fetched: wait for a first fetch that may be running.
			j.fetchMu.Lock()
			j.fetchMu.Unlock()
			return j.cached(kid)
		}
		return found, nil
	}

	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	j.mu.Lock()
	if j.tried.After(tried) || !j.fetched.Equal(fetched) {
		// Another goroutine fetched meanwhile (or finished a fetch it
		// had begun when this one looked: tried was already its own).
		j.mu.Unlock()
		return j.cached(kid)
	}
	j.tried = now
	j.fetches++
	j.mu.Unlock()

	fresh, err := j.fetch(ctx)
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		if j.keys == nil {
			return nil, err
		}
		// Keep the keys we have: the issuer's outage is not a reason to
		// refuse tokens signed with keys it published.
		return pick(j.keys, kid), nil
	}
	j.keys, j.fetched = fresh, now
	return pick(fresh, kid), nil
}

// cached returns the cached keys with id kid, or a temporary error when
// no JWKS was ever fetched.
func (j *JWT) cached(kid string) ([]jose.JSONWebKey, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.keys == nil {
		return nil, temporary("JWKS not available")
	}
	return pick(j.keys, kid), nil
}

// pick returns the keys with id kid, or all of them when kid is empty.
func pick(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	if kid == "" {
		return keys
	}
	var out []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

// fetch reads the JWKS from its file or URL.
func (j *JWT) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	var body []byte
	var err error
	if j.JWKSFile != "" {
		body, err = os.ReadFile(j.JWKSFile)
		if err != nil {
			return nil, temporary("JWKS: %v", err)
		}
	} else {
		req, err := http.NewRequest(http.MethodGet, j.JWKSURL, nil)
		if err != nil {
			return nil, temporary("JWKS: %v", err)
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		if body, err = do(ctx, j.HTTPClient, req); err != nil {
			return nil, fmt.Errorf("oauth: JWKS: %w", err)
		}
	}
	return parseJWKS(body)
}

// parseJWKS reads a JWKS document (RFC 7517 §5), skipping keys it cannot
// use (unknown types, private or symmetric keys) rather than refusing the
// whole set.
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&raw); err != nil {
		return nil, temporary("JWKS: %v", err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(r) != nil || !k.Valid() || !k.IsPublic() {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, temporary("JWKS has no usable public key")
	}
	return keys, nil
}
