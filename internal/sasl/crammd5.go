package sasl

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// md5Resume returns an MD5 hash whose state is s, as after 64 octets of
// input: crypto/md5's UnmarshalBinary form is "md5\x01", the words A, B, C,
// D big-endian, the 64-octet buffer and the length so far, big-endian.
func md5Resume(s [16]byte) (hashWriter, error) {
	st := make([]byte, 0, 4+16+md5.BlockSize+8)
	st = append(st, "md5\x01"...)
	for i := range 4 {
		st = binary.BigEndian.AppendUint32(st, binary.LittleEndian.Uint32(s[4*i:]))
	}
	st = append(st, make([]byte, md5.BlockSize)...)
	st = binary.BigEndian.AppendUint64(st, md5.BlockSize)
	h := md5.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
		return nil, fmt.Errorf("resume MD5: %w", err)
	}
	return h, nil
}

// hashWriter is the part of hash.Hash cramDigest uses.
type hashWriter interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
}

// cramDigest computes HMAC-MD5(key, msg) from the key's stored contexts
// (RFC 2104 §2: H(K XOR opad, H(K XOR ipad, text))).
func cramDigest(sec CRAMMD5Secret, msg []byte) ([]byte, error) {
	in, err := md5Resume(sec.Inner)
	if err != nil {
		return nil, err
	}
	in.Write(msg)
	out, err := md5Resume(sec.Outer)
	if err != nil {
		return nil, err
	}
	out.Write(in.Sum(nil))
	return out.Sum(nil), nil
}

// MechCRAMMD5 is RFC 2195's CRAM-MD5.
const MechCRAMMD5 = "CRAM-MD5"

// cramMD5 is the server side of CRAM-MD5.
type cramMD5 struct {
	guard
	ctx       context.Context
	hostname  string
	lookup    SecretLookup
	now       func() time.Time
	random    io.Reader
	step      int // 0: start; 1: challenge sent; 2: finished
	challenge []byte
	username  string
	identity  string
}

// NewCRAMMD5 returns a Server for CRAM-MD5 (RFC 2195). It sends a challenge
// in the form of an RFC 5322 msg-id, "<random.timestamp@hostname>", unique
// per exchange (64 random bits from crypto/rand and now's nanoseconds); the
// client answers "username SP digest", the lower-case hex HMAC-MD5 of the
// challenge keyed with the password. The server holds only the user's
// CRAMMD5Secret, from lookup. CRAM-MD5 has no initial response (RFC 2195
// §2): one is malformed.
func NewCRAMMD5(ctx context.Context, hostname string, lookup SecretLookup, now func() time.Time) Guarded {
	return newCRAMMD5(ctx, hostname, lookup, now, rand.Reader)
}

// newCRAMMD5 is NewCRAMMD5 with the random source injected (for tests).
func newCRAMMD5(ctx context.Context, hostname string, lookup SecretLookup, now func() time.Time, random io.Reader) *cramMD5 {
	if now == nil {
		now = time.Now
	}
	if hostname == "" {
		hostname = "localhost"
	}
	return &cramMD5{ctx: ctx, hostname: hostname, lookup: lookup, now: now, random: random}
}

// Next implements Server.
func (c *cramMD5) Next(response []byte) ([]byte, bool, error) {
	switch c.step {
	case 0:
		c.step = 2
		if response != nil {
			return nil, false, fmt.Errorf("sasl: CRAM-MD5: initial response not allowed: %w", ErrMalformed)
		}
		var r [8]byte
		if _, err := io.ReadFull(c.random, r[:]); err != nil {
			return nil, false, fmt.Errorf("sasl: CRAM-MD5: challenge: %w: %w", ErrTemporary, err)
		}
		// RFC 2195 §2: the challenge is a msg-id; random and timestamp
		// make it unique, the hostname names the server.
		c.challenge = fmt.Appendf(nil, "<%d.%d@%s>", binary.BigEndian.Uint64(r[:]), c.now().UnixNano(), c.hostname)
		c.step = 1
		return c.challenge, false, nil
	case 1:
		c.step = 2
	default:
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: exchange already finished: %w", ErrMalformed)
	}
	user, digest, err := parseCRAMMD5(response)
	c.username = user
	if err != nil {
		return nil, false, err
	}
	if !c.allow(user) {
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: %w", ErrRefused)
	}
	if c.lookup == nil {
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: no secret store: %w", ErrTemporary)
	}
	if err := c.ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: %w: %w", ErrTemporary, err)
	}
	sec, err := c.lookup.CRAMMD5(c.ctx, user)
	if err != nil {
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: %w", lookupError(err))
	}
	want, err := cramDigest(sec, c.challenge)
	if err != nil {
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: %w: %w", ErrTemporary, err)
	}
	if !hmac.Equal(want, digest) {
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: digest mismatch: %w", ErrBadPassword)
	}
	if sec.User == "" {
		return nil, false, fmt.Errorf("sasl: CRAM-MD5: secret store returned no user: %w", ErrTemporary)
	}
	c.identity = sec.User
	return nil, true, nil
}

// parseCRAMMD5 splits a CRAM-MD5 response (RFC 2195 §2): the user name,
// one space, and 32 lower-case hex digits. The user name may itself
// contain spaces; the digest follows the last one. Upper-case hex is
// accepted too.
func parseCRAMMD5(b []byte) (user string, digest []byte, err error) {
	i := bytes.LastIndexByte(b, ' ')
	if i < 0 {
		return "", nil, fmt.Errorf("sasl: CRAM-MD5: no space in the response: %w", ErrMalformed)
	}
	u, d := b[:i], b[i+1:]
	if len(u) > 0 && len(u) <= MaxFieldLen && utf8.Valid(u) && bytes.IndexByte(u, 0) < 0 {
		user = string(u)
	}
	switch {
	case user == "":
		return "", nil, fmt.Errorf("sasl: CRAM-MD5: bad user name: %w", ErrMalformed)
	case len(d) != 2*md5.Size:
		return user, nil, fmt.Errorf("sasl: CRAM-MD5: digest of %d characters, want %d: %w", len(d), 2*md5.Size, ErrMalformed)
	}
	digest = make([]byte, md5.Size)
	if _, err := hex.Decode(digest, d); err != nil {
		return user, nil, fmt.Errorf("sasl: CRAM-MD5: digest is not hex: %w", ErrMalformed)
	}
	return user, digest, nil
}

// Identity implements Server.
func (c *cramMD5) Identity() string { return c.identity }

// Username implements Server.
func (c *cramMD5) Username() string { return c.username }

// lookupError makes sure a SecretLookup or TokenVerifier error wraps
// ErrInvalidCredentials or ErrTemporary; one that wraps neither is
// temporary (RFC 4954 §6: 454).
func lookupError(err error) error {
	if errors.Is(err, ErrInvalidCredentials) || errors.Is(err, ErrTemporary) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrTemporary, err)
}
