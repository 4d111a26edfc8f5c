package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"postern/internal/sasl"
)

// introspector is an RFC 7662 endpoint with fixed answers per token.
type introspector struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string]map[string]any
	posts   int
	fail    bool
}

func newIntrospector(t *testing.T) *introspector {
	in := &introspector{answers: map[string]map[string]any{
		"good":     {"active": true, "username": "alice", "exp": t0.Add(time.Hour).Unix(), "iss": issuer, "aud": []string{audience}},
		"soon":     {"active": true, "username": "alice", "exp": t0.Add(time.Minute).Unix(), "iss": issuer, "aud": audience},
		"inactive": {"active": false},
		"expired":  {"active": true, "username": "alice", "exp": t0.Add(-time.Minute).Unix(), "iss": issuer, "aud": audience},
		"otheraud": {"active": true, "username": "alice", "exp": t0.Add(time.Hour).Unix(), "iss": issuer, "aud": "imap"},
		"otheriss": {"active": true, "username": "alice", "exp": t0.Add(time.Hour).Unix(), "iss": "https://evil", "aud": audience},
		"nouser":   {"active": true, "exp": t0.Add(time.Hour).Unix(), "iss": issuer, "aud": audience},
	}}
	in.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		defer in.mu.Unlock()
		in.posts++
		// RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic.
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if r.Method != http.MethodPost || !ok || id != "postern" || secret != "s3cr%t" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if in.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		if r.FormValue("token_type_hint") != "access_token" {
			http.Error(w, "hint", http.StatusBadRequest)
			return
		}
		ans, ok := in.answers[r.FormValue("token")]
		if !ok {
			ans = map[string]any{"active": false}
		}
		json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(in.Close)
	return in
}

func (in *introspector) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.posts
}

func TestIntrospection(t *testing.T) {
	srv := newIntrospector(t)
	clk := &clock{t: t0}
	v := &Introspection{
		Endpoint: srv.URL + "/introspect", UserClaim: "username", ClientID: "postern", ClientSecret: "s3cr%t",
		Issuer: issuer, Audience: audience, Now: clk.now, HTTPClient: srv.Client(),
	}
	for _, c := range []struct{ token, want, why string }{
		{"good", "alice", ""},
		{"inactive", "", "not active"},
		{"unknown", "", "not active"},
		{"expired", "", "expired"},
		{"otheraud", "", "audience"},
		{"otheriss", "", "issuer"},
		{"nouser", "", `claim "username"`},
	} {
		u, err := v.VerifyToken(context.Background(), c.token)
		if c.want != "" && (err != nil || u != c.want) {
			t.Errorf("%s: %q %v", c.token, u, err)
		}
		if c.want == "" && (u != "" || !errors.Is(err, sasl.ErrInvalidCredentials) || !strings.Contains(err.Error(), c.why)) {
			t.Errorf("%s: %q %v, want refusal with %q", c.token, u, err, c.why)
		}
	}
	n := srv.count()
	// Cached: good answers and refusals are not asked again.
	v.VerifyToken(context.Background(), "good")
	v.VerifyToken(context.Background(), "inactive")
	if srv.count() != n {
		t.Errorf("cached answers asked again")
	}
	// Refusals expire from the cache after NegativeTTL (30s), good ones
	// after CacheTTL (5m) or the token's exp.
	v.VerifyToken(context.Background(), "soon")
	clk.add(31 * time.Second)
	v.VerifyToken(context.Background(), "inactive")
	v.VerifyToken(context.Background(), "good")
	if srv.count() != n+2 {
		t.Errorf("%d posts, want %d", srv.count(), n+2)
	}
	clk.add(time.Minute)
	if _, err := v.VerifyToken(context.Background(), "soon"); !errors.Is(err, sasl.ErrInvalidCredentials) {
		t.Errorf("soon after exp: %v", err)
	}
	// The endpoint fails: temporary, and not cached.
	srv.mu.Lock()
	srv.fail = true
	srv.mu.Unlock()
	clk.add(time.Hour)
	for range 2 {
		if _, err := v.VerifyToken(context.Background(), "good"); !errors.Is(err, sasl.ErrTemporary) {
			t.Errorf("endpoint down: %v", err)
		}
	}
	srv.mu.Lock()
	srv.fail = false
	srv.mu.Unlock()
	if u, err := v.VerifyToken(context.Background(), "good"); err == nil || u != "" {
		// good's exp (t0+1h) has passed by now.
		t.Errorf("good after its exp: %q %v", u, err)
	}
	// Wrong client credentials: temporary (our fault, not the token's).
	bad := &Introspection{Endpoint: v.Endpoint, UserClaim: "username", ClientID: "postern", ClientSecret: "nope", Now: clk.now, HTTPClient: srv.Client()}
	if _, err := bad.VerifyToken(context.Background(), "other"); !errors.Is(err, sasl.ErrTemporary) || strings.Contains(err.Error(), "nope") {
		t.Errorf("bad client secret: %v", err)
	}
	if (&Introspection{Endpoint: "http://idp/introspect", UserClaim: "username"}).Check() == nil {
		t.Error("http endpoint accepted")
	}
}
