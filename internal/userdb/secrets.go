package userdb

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"postern/internal/sasl"
)

// Key sizes of the SCRAM hash functions.
const (
	sha256Size = sha256.Size
	sha1Size   = sha1.Size
	// scramSaltLen is the salt drawn for a new SCRAM verifier.
	scramSaltLen = 16
)

// The DB is a sasl.SecretLookup for the SCRAM and CRAM-MD5 mechanisms.
var _ sasl.SecretLookup = (*DB)(nil)

// newSecrets derives every secret kept for password: the Argon2id hash, the
// SCRAM-SHA-256 and SCRAM-SHA-1 verifiers (each with its own random salt,
// Options.SCRAMIterations), and the CRAM-MD5 contexts when opts asks. A
// password that SASLprep (RFC 4013) refuses, which a SCRAM client could not
// send either, gets no SCRAM verifiers; PLAIN and LOGIN still work.
func (d *DB) newSecrets(addr, password string, opts []SetOptions) (secrets, error) {
	var opt SetOptions
	switch len(opts) {
	case 0:
	case 1:
		opt = opts[0]
	default:
		return secrets{}, errors.New("userdb: more than one SetOptions")
	}
	var s secrets
	var err error
	if s.hash, err = d.hasher.hash(context.Background(), password); err != nil {
		return secrets{}, err
	}
	if s.phc, err = parsePHC(s.hash); err != nil {
		return secrets{}, err
	}
	for _, m := range []struct {
		hash string
		dst  **scramSecret
	}{{sasl.HashSHA256, &s.scram256}, {sasl.HashSHA1, &s.scram1}} {
		salt := make([]byte, scramSaltLen)
		if _, err := rand.Read(salt); err != nil {
			return secrets{}, fmt.Errorf("userdb: salt: %w", err)
		}
		c, err := sasl.NewSCRAMCredentials(addr, password, m.hash, d.scramIter, salt)
		if err != nil {
			// The error names neither the password nor its characters.
			d.log.Warn("userdb: no SCRAM verifier for this password", "user", addr, "hash", m.hash, "err", err)
			continue
		}
		*m.dst = &scramSecret{salt: c.Salt, iterations: c.Iterations, storedKey: c.StoredKey, serverKey: c.ServerKey}
	}
	if opt.CRAMMD5 {
		c := sasl.NewCRAMMD5Secret(addr, password)
		s.cram = &cramSecret{inner: c.Inner, outer: c.Outer}
	}
	return s, nil
}

// check validates a stored verifier: keys of size bytes, a salt of 8 to
// 64 bytes, iterations within MinSCRAMIterations..maxSCRAMIterations.
func (s *scramSecret) check(size int) error {
	switch {
	case len(s.salt) < minSaltLen || len(s.salt) > maxSaltLen:
		return fmt.Errorf("salt of %d bytes", len(s.salt))
	case s.iterations < MinSCRAMIterations || s.iterations > maxSCRAMIterations:
		return fmt.Errorf("%d iterations", s.iterations)
	case len(s.storedKey) != size || len(s.serverKey) != size:
		return fmt.Errorf("keys are not %d bytes", size)
	}
	return nil
}

// SCRAM returns the SCRAM verifier of the user username (an address,
// matched ignoring case) for hash sasl.HashSHA256 or sasl.HashSHA1; it
// implements sasl.SecretLookup. The error wraps sasl.ErrInvalidCredentials
// when there is no such user or the user has no verifier for hash (a
// password set before verifiers were kept, or one SASLprep refuses), and
// sasl.ErrTemporary when the store cannot answer.
//
// SCRAM spends no Argon2 and so has nothing for the verified-credential
// cache to save: the verifier is read from the store on every exchange,
// which is also what makes a password change count at once.
func (d *DB) SCRAM(ctx context.Context, username, hash string) (sasl.SCRAMCredentials, error) {
	r, err := d.secretUser(ctx, "SCRAM", username)
	if err != nil {
		return sasl.SCRAMCredentials{}, err
	}
	var s *scramSecret
	switch hash {
	case sasl.HashSHA256:
		s = r.scram256
	case sasl.HashSHA1:
		s = r.scram1
	default:
		return sasl.SCRAMCredentials{}, fmt.Errorf("userdb: SCRAM: unknown hash %q: %w", hash, sasl.ErrInvalidCredentials)
	}
	if s == nil {
		return sasl.SCRAMCredentials{}, fmt.Errorf("userdb: SCRAM-%s: no verifier stored: %w", hash, sasl.ErrInvalidCredentials)
	}
	return sasl.SCRAMCredentials{
		User:       r.user.Address,
		Salt:       append([]byte(nil), s.salt...),
		Iterations: s.iterations,
		StoredKey:  append([]byte(nil), s.storedKey...),
		ServerKey:  append([]byte(nil), s.serverKey...),
	}, nil
}

// CRAMMD5 returns the CRAM-MD5 secret of the user username (an address,
// matched ignoring case); it implements sasl.SecretLookup. The error wraps
// sasl.ErrInvalidCredentials when there is no such user or the user has not
// opted in (SetOptions.CRAMMD5), and sasl.ErrTemporary when the store
// cannot answer. Like SCRAM it costs no Argon2 and bypasses the
// verified-credential cache.
func (d *DB) CRAMMD5(ctx context.Context, username string) (sasl.CRAMMD5Secret, error) {
	r, err := d.secretUser(ctx, "CRAM-MD5", username)
	if err != nil {
		return sasl.CRAMMD5Secret{}, err
	}
	if r.cram == nil {
		return sasl.CRAMMD5Secret{}, fmt.Errorf("userdb: CRAM-MD5: user has not opted in: %w", sasl.ErrInvalidCredentials)
	}
	return sasl.CRAMMD5Secret{User: r.user.Address, Inner: r.cram.inner, Outer: r.cram.outer}, nil
}

// secretUser returns the record of username for mechanism mech, or an
// error wrapping sasl.ErrUnknownUser (no such user) or
// sasl.ErrTemporary (the store failed).
func (d *DB) secretUser(ctx context.Context, mech, username string) (*record, error) {
	if len(username) > MaxAddressLen || strings.IndexByte(username, 0) >= 0 {
		return nil, fmt.Errorf("userdb: %s: %w", mech, sasl.ErrUnknownUser)
	}
	r, err := d.get(ctx, username)
	if err != nil {
		return nil, fmt.Errorf("userdb: %s: %w: %w", mech, sasl.ErrTemporary, err)
	}
	if r == nil {
		return nil, fmt.Errorf("userdb: %s: %w", mech, sasl.ErrUnknownUser)
	}
	return r, nil
}
