package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"postern/internal/sasl"
)

// Introspection checks access tokens by asking the authorization server
// (RFC 7662): a POST of the token to Endpoint, authenticated as the client
// ClientID with ClientSecret (HTTP Basic, RFC 6749 §2.3.1). A token is
// good when the answer says "active": true, its "exp" (when present) has
// not passed, and its "iss" and "aud" match Issuer and Audience (when
// set). Answers are cached, keyed by a hash of the token: good ones until
// they expire or for CacheTTL, whichever is first; refusals for
// NegativeTTL. Set the exported fields, then use an *Introspection from
// any number of goroutines; it must not be copied or changed after first
// use.
type Introspection struct {
	// Endpoint is the https URL of the introspection endpoint. Required.
	Endpoint string
	// ClientID and ClientSecret authenticate Postern to the endpoint.
	ClientID, ClientSecret string
	// UserClaim names the member of the answer that holds the user name
	// ("username", RFC 7662 §2.2, in Postern's default configuration).
	// Required.
	UserClaim string
	// Issuer, when set, must equal the answer's "iss".
	Issuer string
	// Audience, when set, must be among the answer's "aud".
	Audience string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient posts to Endpoint; nil means http.DefaultClient.
	HTTPClient *http.Client
	// CacheTTL bounds how long a good answer is reused; default 5m.
	// Negative: no caching.
	CacheTTL time.Duration
	// NegativeTTL is how long a refusal is reused; default 30s.
	// Negative: refusals are not cached.
	NegativeTTL time.Duration
	// MaxCache bounds the number of cached answers; default 10000.
	MaxCache int

	mu    sync.Mutex
	cache map[[32]byte]introspected
	posts int // requests sent, for tests
}

// introspected is a cached answer.
type introspected struct {
	user  string
	err   error
	until time.Time
}

// Check reports an Introspection whose fields cannot work.
func (in *Introspection) Check() error {
	if in.Endpoint == "" {
		return errors.New("oauth: Introspection needs an Endpoint")
	}
	if in.UserClaim == "" {
		return errors.New("oauth: Introspection needs a UserClaim")
	}
	return checkHTTPS(in.Endpoint)
}

func (in *Introspection) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

// VerifyToken implements sasl.TokenVerifier.
func (in *Introspection) VerifyToken(ctx context.Context, token string) (string, error) {
	if err := in.Check(); err != nil {
		return "", temporary("%v", err)
	}
	if token == "" || len(token) > MaxTokenLen {
		return "", invalid("token empty or longer than %d octets", MaxTokenLen)
	}
	key := sha256.Sum256([]byte(token))
	now := in.now()
	in.mu.Lock()
	if c, ok := in.cache[key]; ok && now.Before(c.until) {
		in.mu.Unlock()
		return c.user, c.err
	}
	in.posts++
	in.mu.Unlock()

	user, exp, err := in.ask(ctx, token, now)
	ttl := in.CacheTTL
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	if err != nil {
		ttl = in.NegativeTTL
		if ttl == 0 {
			ttl = 30 * time.Second
		}
		if !errors.Is(err, sasl.ErrInvalidCredentials) {
			return "", err // temporary: not cached
		}
	}
	until := now.Add(ttl)
	if !exp.IsZero() && exp.Before(until) {
		until = exp
	}
	if ttl > 0 {
		in.store(key, introspected{user: user, err: err, until: until}, now)
	}
	return user, err
}

// store caches an answer, dropping expired entries, or arbitrary ones,
// when the cache is full.
func (in *Introspection) store(key [32]byte, v introspected, now time.Time) {
	max := in.MaxCache
	if max <= 0 {
		max = 10000
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cache == nil {
		in.cache = make(map[[32]byte]introspected)
	}
	if len(in.cache) >= max {
		for k, c := range in.cache {
			if !now.Before(c.until) {
				delete(in.cache, k)
			}
		}
		for k := range in.cache {
			if len(in.cache) < max {
				break
			}
			delete(in.cache, k)
		}
	}
	in.cache[key] = v
}

// ask posts the token to the endpoint (RFC 7662 §2.1) and reads the answer
// (§2.2). Refusals wrap sasl.ErrInvalidCredentials.
func (in *Introspection) ask(ctx context.Context, token string, now time.Time) (user string, exp time.Time, err error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequest(http.MethodPost, in.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, temporary("introspection: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if in.ClientID != "" {
		// RFC 6749 §2.3.1: both form-urlencoded, then HTTP Basic.
		req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	}
	body, err := do(ctx, in.HTTPClient, req)
	if err != nil {
		return "", time.Time{}, err
	}
	return in.parse(body, now)
}

// parse reads an introspection answer (RFC 7662 §2.2). Refusals wrap
// sasl.ErrInvalidCredentials; an answer that is not a JSON object is
// temporary.
func (in *Introspection) parse(body []byte, now time.Time) (user string, exp time.Time, err error) {
	var ans map[string]any
	if err := json.Unmarshal(body, &ans); err != nil {
		return "", time.Time{}, temporary("introspection answer: %v", err)
	}
	refuse := func(format string, args ...any) (string, time.Time, error) {
		return "", time.Time{}, invalid(format, args...)
	}
	if active, _ := ans["active"].(bool); !active {
		return refuse("token is not active")
	}
	if e, ok := ans["exp"].(float64); ok {
		exp = time.Unix(int64(e), 0)
		if !now.Before(exp) {
			return refuse("token expired")
		}
	}
	if in.Issuer != "" && ans["iss"] != in.Issuer {
		return refuse("token from another issuer")
	}
	if in.Audience != "" && !hasAudience(ans["aud"], in.Audience) {
		return refuse("token for another audience")
	}
	user, err = userName(ans[in.UserClaim], in.UserClaim)
	return user, exp, err
}

// hasAudience reports whether aud, a string or an array of strings
// (RFC 7519 §4.1.3), contains want.
func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		for _, v := range a {
			if v == want {
				return true
			}
		}
	}
	return false
}
