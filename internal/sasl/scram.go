package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/xdg-go/scram"
)

// SCRAM mechanism names (RFC 5802 §4, RFC 7677 §2).
const (
	// MechSCRAMSHA1 is SCRAM-SHA-1, for old clients.
	MechSCRAMSHA1 = "SCRAM-SHA-1"
	// MechSCRAMSHA1Plus is SCRAM-SHA-1 with channel binding.
	MechSCRAMSHA1Plus = "SCRAM-SHA-1-PLUS"
	// MechSCRAMSHA256 is SCRAM-SHA-256.
	MechSCRAMSHA256 = "SCRAM-SHA-256"
	// MechSCRAMSHA256Plus is SCRAM-SHA-256 with channel binding.
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
)

// maxSCRAMMessage bounds a client SCRAM message, in octets; real ones are
// well under 1 KiB.
const maxSCRAMMessage = 4096

// SCRAMOptions configures one SCRAM exchange.
type SCRAMOptions struct {
	// Hash is HashSHA1 or HashSHA256.
	Hash string
	// Plus selects the -PLUS variant: the client must bind the exchange
	// to the TLS channel with one of Bindings (RFC 5802 §6).
	Plus bool
	// PlusOffered tells a non-PLUS exchange that the -PLUS variant was
	// advertised on this session, so a client that says it supports
	// channel binding but thinks the server does not ("y") is under a
	// downgrade attack and fails (RFC 5802 §6).
	PlusOffered bool
	// Bindings are the session's channel bindings by type, from
	// ChannelBindings.
	Bindings map[string][]byte
	// Lookup finds the user's stored credentials.
	Lookup SecretLookup
	// MockKey keys the made-up salt shown for unknown users, so that it
	// stays the same from one attempt to the next and the exchange does
	// not reveal who exists (RFC 5802 §9). Nil: a random salt each time.
	MockKey []byte
	// MockIterations is the iteration count shown for unknown users; set
	// it to the count the directory uses for real ones. Default
	// MinSCRAMIterations.
	MockIterations int
	// Nonce returns the server's part of the nonce; nil means 24 octets
	// from crypto/rand, base64-encoded. Tests set it to replay RFC
	// examples.
	Nonce func() string
}

// scramServer is the server side of a SCRAM exchange.
type scramServer struct {
	guard
	ctx      context.Context
	opts     SCRAMOptions
	hash     scram.HashGeneratorFcn
	step     int // 0: start; 1: empty challenge sent; 2: server-first sent; 3: server-final sent; 4: finished
	conv     *scram.ServerConversation
	authzid  string
	username string
	identity string
	creds    SCRAMCredentials
	done     bool  // the exchange succeeded
	mock     error // not nil when the user is unknown (why): the exchange runs on made-up credentials
	lookErr  error // a temporary lookup failure, or ErrRefused
}

// NewSCRAM returns a Server for SCRAM-SHA-1 or SCRAM-SHA-256, plain or
// -PLUS (RFC 5802, RFC 7677), over the credentials opts.Lookup stores.
// The gs2 header's channel-binding flag is checked against the mechanism
// (RFC 5802 §6): -PLUS needs "p" with a type in opts.Bindings; a plain
// exchange refuses "p", and refuses "y" when -PLUS was offered. An
// authzid must name the user. On a wrong proof or channel binding the
// server-final message carries the RFC 5802 §7 error ("e=invalid-proof",
// "e=channel-bindings-dont-match") together with ErrInvalidCredentials. On
// success the server-final message "v=ServerSignature" is a challenge,
// and the client's empty answer completes the exchange (RFC 4954 §4 has
// no success data).
func NewSCRAM(ctx context.Context, opts SCRAMOptions) Guarded {
	h, _ := scramHash(opts.Hash)
	return &scramServer{ctx: ctx, opts: opts, hash: h}
}

// Next implements Server.
func (s *scramServer) Next(response []byte) ([]byte, bool, error) {
	step := s.step
	s.step = 4
	switch step {
	case 0:
		if response == nil {
			// RFC 4422 §5: a client-first mechanism without an initial
			// response gets an empty challenge.
			s.step = 1
			return []byte{}, false, nil
		}
		return s.first(response)
	case 1:
		if response == nil {
			return nil, false, s.errorf(ErrMalformed, "no client-first message")
		}
		return s.first(response)
	case 2:
		return s.final(response)
	case 3:
		if len(response) != 0 {
			return nil, false, s.errorf(ErrMalformed, "non-empty answer to the server-final message")
		}
		if s.identity == "" {
			return nil, false, s.errorf(ErrTemporary, "no identity")
		}
		s.done = true
		return nil, true, nil
	}
	return nil, false, s.errorf(ErrMalformed, "exchange already finished")
}

// mechName returns the mechanism's name, for errors.
func (s *scramServer) mechName() string {
	name := "SCRAM-" + s.opts.Hash
	if s.opts.Plus {
		name += "-PLUS"
	}
	return name
}

// errorf returns an error wrapping kind, prefixed with the mechanism.
func (s *scramServer) errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("sasl: %s: %s: %w", s.mechName(), fmt.Sprintf(format, args...), kind)
}

// first handles the client-first message (RFC 5802 §7).
func (s *scramServer) first(msg []byte) ([]byte, bool, error) {
	if s.hash == nil {
		return nil, false, s.errorf(ErrTemporary, "unknown hash %q", s.opts.Hash)
	}
	if s.opts.Lookup == nil {
		return nil, false, s.errorf(ErrTemporary, "no secret store")
	}
	if len(msg) > maxSCRAMMessage || !utf8.Valid(msg) {
		return nil, false, s.errorf(ErrMalformed, "client-first message too long or not UTF-8")
	}
	flag, cbType, authzid, err := parseGS2Header(string(msg))
	if err != nil {
		return nil, false, s.errorf(ErrMalformed, "%v", err)
	}
	s.authzid = authzid
	var cb scram.ChannelBinding
	// RFC 5802 §6: the channel-binding flag against the mechanism.
	switch {
	case s.opts.Plus && flag != "p":
		return nil, false, s.errorf(ErrMalformed, "-PLUS selected without channel binding (flag %q)", flag)
	case !s.opts.Plus && flag == "p":
		return nil, false, s.errorf(ErrMalformed, "channel binding requested without -PLUS")
	case flag == "y" && s.opts.PlusOffered:
		return nil, false, s.errorf(ErrInvalidCredentials, "client thinks the server lacks channel binding though -PLUS was offered: downgrade")
	case flag == "p":
		data, ok := s.opts.Bindings[cbType]
		if !ok {
			return nil, false, s.errorf(ErrInvalidCredentials, "unsupported channel binding type %q (have %q)", cbType, bindingTypes(s.opts.Bindings))
		}
		cb = scram.ChannelBinding{Type: scram.ChannelBindingType(cbType), Data: data}
	}

	srv, err := s.hash.NewServer(s.lookup)
	if err != nil {
		return nil, false, s.errorf(ErrTemporary, "%v", err)
	}
	if s.opts.Nonce != nil {
		srv = srv.WithNonceGenerator(s.opts.Nonce)
	}
	if flag == "p" {
		s.conv = srv.NewConversationWithChannelBinding(cb)
	} else {
		s.conv = srv.NewConversation()
	}
	out, err := s.conv.Step(string(msg))
	if s.conv.Username() != "" {
		s.username = s.conv.Username()
	}
	switch {
	case s.lookErr != nil:
		return nil, false, fmt.Errorf("sasl: %s: %w", s.mechName(), s.lookErr)
	case err != nil:
		return nil, false, s.errorf(ErrMalformed, "client-first message: %v", err)
	}
	s.step = 2
	return []byte(out), false, nil
}

// lookup is the credential callback of xdg-go/scram. An unknown user gets
// made-up credentials so the exchange fails only at the proof, as for a
// wrong password.
func (s *scramServer) lookup(username string) (scram.StoredCredentials, error) {
	if username == "" || len(username) > MaxFieldLen || strings.IndexByte(username, 0) >= 0 {
		return scram.StoredCredentials{}, errors.New("bad user name")
	}
	if !s.allow(username) {
		s.lookErr = ErrRefused
		return scram.StoredCredentials{}, s.lookErr
	}
	if err := s.ctx.Err(); err != nil {
		s.lookErr = fmt.Errorf("%w: %w", ErrTemporary, err)
		return scram.StoredCredentials{}, s.lookErr
	}
	c, err := s.opts.Lookup.SCRAM(s.ctx, username, s.opts.Hash)
	switch {
	case err == nil && (c.User == "" || len(c.StoredKey) != len(c.ServerKey) || len(c.StoredKey) != s.hash().Size()):
		s.lookErr = fmt.Errorf("stored credentials are incomplete: %w", ErrTemporary)
		return scram.StoredCredentials{}, s.lookErr
	case errors.Is(err, ErrInvalidCredentials):
		s.mock = err // the proof fails; the log says why
		c = s.mockCredentials(username)
	case err != nil:
		s.lookErr = lookupError(err)
		return scram.StoredCredentials{}, s.lookErr
	}
	s.creds = c
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
		StoredKey:  c.StoredKey,
		ServerKey:  c.ServerKey,
	}, nil
}

// why returns the error kind of a failed final message whose
// server-final is out: for the log only, the client gets out either
// way. An unknown user fails on made-up credentials (lookup).
func (s *scramServer) why(out string) error {
	switch {
	case s.mock != nil:
		return s.mock
	case out == scram.ErrInvalidProof:
		return ErrBadPassword
	}
	return ErrInvalidCredentials
}

// mockCredentials makes up credentials no proof matches.
func (s *scramServer) mockCredentials(username string) SCRAMCredentials {
	salt := make([]byte, 16)
	if s.opts.MockKey != nil {
		m := hmac.New(sha256.New, s.opts.MockKey)
		m.Write([]byte(s.opts.Hash + "\x00" + strings.ToLower(username)))
		copy(salt, m.Sum(nil))
	} else {
		rand.Read(salt)
	}
	key := make([]byte, s.hash().Size())
	rand.Read(key)
	return SCRAMCredentials{Salt: salt, Iterations: max(s.opts.MockIterations, MinSCRAMIterations), StoredKey: key, ServerKey: key}
}

// final handles the client-final message (RFC 5802 §7).
func (s *scramServer) final(msg []byte) ([]byte, bool, error) {
	if len(msg) > maxSCRAMMessage || !utf8.Valid(msg) {
		return nil, false, s.errorf(ErrMalformed, "client-final message too long or not UTF-8")
	}
	out, err := s.conv.Step(string(msg))
	switch {
	case err != nil && out == "":
		return nil, false, s.errorf(ErrMalformed, "client-final message: %v", err)
	case err != nil:
		// RFC 5802 §7: server-error in the server-final message.
		return []byte(out), false, s.errorf(s.why(out), "%s", strings.TrimPrefix(out, "e="))
	case !s.conv.Valid() || s.mock != nil:
		return []byte(scram.ErrInvalidProof), false, s.errorf(s.why(scram.ErrInvalidProof), "invalid-proof")
	}
	// RFC 5802 §5.1: the authzid may only name the user.
	if s.authzid != "" && !strings.EqualFold(s.authzid, s.username) && !strings.EqualFold(s.authzid, s.creds.User) {
		return []byte(scram.ErrOtherError), false, s.errorf(ErrInvalidCredentials, "authorization identity differs from the user")
	}
	s.identity = s.creds.User
	s.step = 3
	return []byte(out), false, nil
}

// parseGS2Header reads the gs2 header of a client-first message
// (RFC 5802 §7):
//
//	gs2-header     = gs2-cbind-flag "," [ authzid ] ","
//	gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
//	authzid        = "a=" saslname
//
// It returns flag "n", "y" or "p", the channel binding type for "p", and
// the decoded authzid.
func parseGS2Header(msg string) (flag, cbType, authzid string, err error) {
	f, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return "", "", "", errors.New("no gs2 header")
	}
	a, _, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", "", errors.New("gs2 header not terminated")
	}
	switch {
	case f == "n" || f == "y":
		flag = f
	case strings.HasPrefix(f, "p="):
		flag, cbType = "p", f[2:]
		// cb-name = 1*(ALPHA / DIGIT / "." / "-")
		if cbType == "" || strings.Trim(cbType, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
			return "", "", "", errors.New("bad channel binding name")
		}
	default:
		return "", "", "", errors.New("bad channel binding flag")
	}
	if a != "" {
		if !strings.HasPrefix(a, "a=") {
			return "", "", "", errors.New("bad authzid")
		}
		if authzid, ok = decodeSASLName(a[2:]); !ok || authzid == "" || len(authzid) > MaxFieldLen {
			return "", "", "", errors.New("bad authzid")
		}
	}
	return flag, cbType, authzid, nil
}

// decodeSASLName undoes RFC 5802 §5.1's escaping of "," as "=2C" and "="
// as "=3D"; any other "=" is an error.
func decodeSASLName(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '=')
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		b.WriteString(s[:i])
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		s = s[i+3:]
	}
}

// Identity implements Server.
func (s *scramServer) Identity() string {
	if !s.done {
		return ""
	}
	return s.identity
}

// Username implements Server.
func (s *scramServer) Username() string { return s.username }
