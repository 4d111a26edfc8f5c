// Package oauth checks OAuth 2.0 bearer access tokens (RFC 6750) for the
// OAUTHBEARER and XOAUTH2 SASL mechanisms: locally, as JWTs signed by keys
// from a JWKS (RFC 7517, RFC 7519), or remotely, with token introspection
// (RFC 7662). Both verifiers implement sasl.TokenVerifier: their errors
// wrap sasl.ErrInvalidCredentials when a token is refused and
// sasl.ErrTemporary when it cannot be checked now, and never contain the
// token.
package oauth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"postern/internal/sasl"
)

// MaxTokenLen is the longest token looked at, in octets. Longer ones are
// refused without parsing.
const MaxTokenLen = 8192

// maxBody bounds a JWKS document or introspection response, in octets.
const maxBody = 1 << 20

// defaultHTTPTimeout bounds a fetch when the caller's context has no
// deadline.
const defaultHTTPTimeout = 10 * time.Second

// invalid returns an error for a refused token; reason must not contain
// the token.
func invalid(format string, args ...any) error {
	return fmt.Errorf("oauth: %s: %w", fmt.Sprintf(format, args...), sasl.ErrInvalidCredentials)
}

// temporary returns an error for a token that cannot be checked now.
func temporary(format string, args ...any) error {
	return fmt.Errorf("oauth: %s: %w", fmt.Sprintf(format, args...), sasl.ErrTemporary)
}

// checkHTTPS refuses anything but an absolute https URL: keys and
// introspection answers must come over an authenticated channel.
func checkHTTPS(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("oauth: URL %q: %w", raw, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("oauth: URL %q is not https", raw)
	}
	return nil
}

// do sends req with client (nil: http.DefaultClient) and returns the
// body of a 200 response, at most maxBody octets. Non-200 answers and
// transport errors are temporary: the fault is not the token's.
func do(ctx context.Context, client *http.Client, req *http.Request) ([]byte, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultHTTPTimeout)
		defer cancel()
	}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		// The error names the URL, never a token (tokens travel in bodies).
		return nil, temporary("%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	switch {
	case err != nil:
		return nil, temporary("%s %s: read: %v", req.Method, req.URL.Redacted(), err)
	case len(body) > maxBody:
		return nil, temporary("%s %s: answer longer than %d octets", req.Method, req.URL.Redacted(), maxBody)
	case resp.StatusCode != http.StatusOK:
		return nil, temporary("%s %s: status %s", req.Method, req.URL.Redacted(), resp.Status)
	}
	return body, nil
}

// userName checks a user name taken from a token's claims.
func userName(v any, claim string) (string, error) {
	s, ok := v.(string)
	switch {
	case !ok || s == "":
		return "", invalid("claim %q is missing or not a string", claim)
	case len(s) > sasl.MaxFieldLen || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", invalid("claim %q is not a usable user name", claim)
	}
	return s, nil
}
