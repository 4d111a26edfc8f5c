package sasl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// OAuth mechanism names.
const (
	// MechOAuthBearer is RFC 7628's OAUTHBEARER.
	MechOAuthBearer = "OAUTHBEARER"
	// MechXOAuth2 is Google's XOAUTH2, which many mail clients speak.
	MechXOAuth2 = "XOAUTH2"
)

// TokenVerifier checks an OAuth 2.0 bearer access token (RFC 6750) and
// returns the user it was issued for. Errors wrap ErrInvalidCredentials
// when the token is invalid, expired or not meant for this server, and
// ErrTemporary when it cannot be checked now. Neither the error nor a log
// line may contain the token. Implementations (package oauth) are safe
// for concurrent use.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token string) (user string, err error)
}

// maxTokenMessage bounds an OAUTHBEARER or XOAUTH2 message, in octets:
// an AUTH line of 12288 octets (RFC 4954 §4) carries at most 9216.
const maxTokenMessage = 9216

// The error challenges, sent before the failure (RFC 7628 §3.2.2; Google's
// XOAUTH2 documentation).
const (
	oauthBearerError = `{"status":"invalid_token"}`
	xoauth2Error     = `{"status":"401","schemes":"bearer"}`
)

// tokenServer is the server side of OAUTHBEARER and XOAUTH2.
type tokenServer struct {
	ctx      context.Context
	verifier TokenVerifier
	xoauth2  bool
	users    UserResolver // nil: the token's user as it is
	step     oneMessage
	username string
	identity string
}

// NewOAuthBearer returns a Server for OAUTHBEARER (RFC 7628). The client's
// message is a gs2 header ("n" or "y", no channel binding, an optional
// authzid) and key=value pairs separated by 0x01, of which "auth" carries
// "Bearer <token>" (RFC 7628 §3.1); without an initial response the server
// first sends an empty challenge. verifier checks the token; an authzid
// must name the token's user. When the token is refused the Server fails
// with ErrInvalidCredentials and the RFC 7628 §3.2.2 JSON status
// {"status":"invalid_token"} as its challenge; the client's dummy answer
// (0x01) is then met with the failure reply.
func NewOAuthBearer(ctx context.Context, verifier TokenVerifier) Server {
	return &tokenServer{ctx: ctx, verifier: verifier}
}

// NewXOAUTH2 returns a Server for XOAUTH2, the client message being
// "user=" user 0x01 "auth=Bearer " token 0x01 0x01. user must name the
// token's user. A refused token fails like OAUTHBEARER's, with the JSON
// status {"status":"401","schemes":"bearer"} as the challenge.
func NewXOAUTH2(ctx context.Context, verifier TokenVerifier) Server {
	return &tokenServer{ctx: ctx, verifier: verifier, xoauth2: true}
}

func (s *tokenServer) name() string {
	if s.xoauth2 {
		return MechXOAuth2
	}
	return MechOAuthBearer
}

// Next implements Server.
func (s *tokenServer) Next(response []byte) ([]byte, bool, error) {
	if ok, challenge, err := s.step.take(s.name(), response); !ok {
		return challenge, false, err
	}
	var user, token string
	var err error
	if s.xoauth2 {
		user, token, err = parseXOAUTH2(response)
	} else {
		user, token, err = parseOAuthBearer(response)
	}
	s.username = user
	if err != nil {
		return nil, false, fmt.Errorf("sasl: %s: %w", s.name(), err)
	}
	errChallenge := []byte(oauthBearerError)
	if s.xoauth2 {
		errChallenge = []byte(xoauth2Error)
	}
	if s.verifier == nil {
		return nil, false, fmt.Errorf("sasl: %s: no token verifier: %w", s.name(), ErrTemporary)
	}
	if err := s.ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("sasl: %s: %w: %w", s.name(), ErrTemporary, err)
	}
	tokenUser, err := s.verifier.VerifyToken(s.ctx, token)
	switch {
	case err == nil && tokenUser == "":
		return nil, false, fmt.Errorf("sasl: %s: verifier returned no user: %w", s.name(), ErrTemporary)
	case err != nil:
		err = lookupError(err)
		if errors.Is(err, ErrInvalidCredentials) {
			return errChallenge, false, fmt.Errorf("sasl: %s: %w", s.name(), err)
		}
		return nil, false, fmt.Errorf("sasl: %s: %w", s.name(), err)
	}
	if s.username == "" {
		s.username = tokenUser
	}
	canonical := tokenUser
	if s.users != nil {
		if canonical, err = s.users(s.ctx, tokenUser); err != nil || canonical == "" {
			if err == nil {
				err = fmt.Errorf("user resolver returned no user: %w", ErrTemporary)
			}
			err = lookupError(err)
			if errors.Is(err, ErrInvalidCredentials) {
				return errChallenge, false, fmt.Errorf("sasl: %s: token's user: %w", s.name(), err)
			}
			return nil, false, fmt.Errorf("sasl: %s: token's user: %w", s.name(), err)
		}
	}
	// RFC 7628 §3.1: the authzid, when given, must be one the token's
	// owner may act as; Postern allows only oneself.
	if user != "" && !strings.EqualFold(user, tokenUser) && !strings.EqualFold(user, canonical) {
		return errChallenge, false, fmt.Errorf("sasl: %s: user differs from the token's: %w", s.name(), ErrInvalidCredentials)
	}
	s.identity = canonical
	return nil, true, nil
}

// Identity implements Server.
func (s *tokenServer) Identity() string { return s.identity }

// Username implements Server.
func (s *tokenServer) Username() string { return s.username }

// parseOAuthBearer reads an OAUTHBEARER client response (RFC 7628 §3.1):
//
//	client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
//	kvpair      = key "=" value kvsep
//	key         = 1*(ALPHA)
//	value       = *(VCHAR / SP / HTAB / CR / LF)
//	kvsep       = %x01
//
// It returns the authzid (may be empty) and the token of the "auth" pair.
// The error never contains the token.
func parseOAuthBearer(msg []byte) (authzid, token string, err error) {
	if len(msg) > maxTokenMessage || !utf8.Valid(msg) {
		return "", "", fmt.Errorf("message too long or not UTF-8: %w", ErrMalformed)
	}
	if len(msg) == 1 && msg[0] == 1 {
		return "", "", fmt.Errorf("dummy response outside an error: %w", ErrMalformed)
	}
	flag, cbType, authzid, err := parseGS2Header(string(msg))
	if err != nil {
		return "", "", fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	if flag == "p" || cbType != "" {
		// RFC 7628 §3.1: OAUTHBEARER does not support channel binding.
		return authzid, "", fmt.Errorf("channel binding requested: %w", ErrMalformed)
	}
	// The gs2 header ends at the second comma, and the pairs follow.
	i := bytes.IndexByte(msg, ',')
	j := bytes.IndexByte(msg[i+1:], ',')
	rest := msg[i+1+j+1:]
	if len(rest) == 0 || rest[0] != 1 {
		return authzid, "", fmt.Errorf("no 0x01 after the gs2 header: %w", ErrMalformed)
	}
	pairs, err := parseKVPairs(rest[1:])
	if err != nil {
		return authzid, "", err
	}
	token, err = bearerToken(pairs)
	return authzid, token, err
}

// parseXOAUTH2 reads an XOAUTH2 client response:
// "user=" user 0x01 "auth=Bearer " token 0x01 0x01.
func parseXOAUTH2(msg []byte) (user, token string, err error) {
	if len(msg) > maxTokenMessage || !utf8.Valid(msg) {
		return "", "", fmt.Errorf("message too long or not UTF-8: %w", ErrMalformed)
	}
	pairs, err := parseKVPairs(msg)
	if err != nil {
		return "", "", err
	}
	u := pairs["user"]
	if u == "" || len(u) > MaxFieldLen || strings.ContainsAny(u, "\x00\r\n") {
		return "", "", fmt.Errorf("missing or bad user: %w", ErrMalformed)
	}
	token, err = bearerToken(pairs)
	return u, token, err
}

// parseKVPairs reads "*kvpair kvsep": key=value pairs, each ended by
// 0x01, and one more 0x01 at the end. Keys are 1*ALPHA, lower-cased;
// values are VCHAR, SP, HTAB, CR or LF. A repeated key is an error.
func parseKVPairs(b []byte) (map[string]string, error) {
	if len(b) == 0 || b[len(b)-1] != 1 {
		return nil, fmt.Errorf("not ended by 0x01: %w", ErrMalformed)
	}
	b = b[:len(b)-1]
	pairs := make(map[string]string)
	for len(b) > 0 {
		kv, rest, ok := bytes.Cut(b, []byte{1})
		if !ok {
			return nil, fmt.Errorf("pair not ended by 0x01: %w", ErrMalformed)
		}
		b = rest
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok || len(k) == 0 {
			return nil, fmt.Errorf("pair without a key: %w", ErrMalformed)
		}
		for _, c := range k {
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
				return nil, fmt.Errorf("bad key: %w", ErrMalformed)
			}
		}
		for _, c := range v {
			if c < 0x20 && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
				return nil, fmt.Errorf("control character in a value: %w", ErrMalformed)
			}
		}
		key := strings.ToLower(string(k))
		if _, dup := pairs[key]; dup {
			return nil, fmt.Errorf("repeated key %q: %w", key, ErrMalformed)
		}
		pairs[key] = string(v)
	}
	return pairs, nil
}

// bearerToken returns the token of the "auth" pair, "Bearer" 1*SP
// b64token (RFC 6750 §2.1; the scheme is case-insensitive, RFC 7235 §2.1).
func bearerToken(pairs map[string]string) (string, error) {
	auth, ok := pairs["auth"]
	if !ok {
		return "", fmt.Errorf("no auth pair: %w", ErrMalformed)
	}
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("auth is not a Bearer credential: %w", ErrMalformed)
	}
	token = strings.TrimLeft(token, " ")
	// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	body := strings.TrimRight(token, "=")
	if body == "" {
		return "", fmt.Errorf("empty token: %w", ErrMalformed)
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return "", fmt.Errorf("token is not a b64token: %w", ErrMalformed)
		}
	}
	return token, nil
}
