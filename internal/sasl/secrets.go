package sasl

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"fmt"

	"github.com/xdg-go/scram"
)

// SCRAM hash names, as SecretLookup.SCRAM and NewSCRAMCredentials take them.
const (
	// HashSHA1 selects SCRAM-SHA-1 (RFC 5802).
	HashSHA1 = "SHA-1"
	// HashSHA256 selects SCRAM-SHA-256 (RFC 7677).
	HashSHA256 = "SHA-256"
)

// SCRAMCredentials are what a server stores for SCRAM (RFC 5802 §3): never
// the password, and nothing from which a client proof can be computed
// without a dictionary attack on the salted, iterated hash.
type SCRAMCredentials struct {
	User       string // canonical user name
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte // HMAC(SaltedPassword, "Server Key")
}

// CRAMMD5Secret is the HMAC-MD5 key's intermediate contexts (RFC 2104): the
// MD5 chaining state after the (key XOR ipad) and (key XOR opad) blocks, as
// Dovecot's CRAM-MD5 scheme stores them. It is password-equivalent for
// CRAM-MD5 (whoever holds it can answer any challenge) but does not reveal
// the password itself.
type CRAMMD5Secret struct {
	User         string
	Inner, Outer [16]byte // MD5 state words A,B,C,D, little-endian
}

// SecretLookup finds the stored secrets mechanisms other than PLAIN/LOGIN
// need. Errors wrap ErrInvalidCredentials when the user does not exist or
// has no such secret, ErrTemporary when the store cannot answer.
// Implementations are safe for concurrent use.
type SecretLookup interface {
	// SCRAM returns the credentials of username for hash HashSHA1 or
	// HashSHA256.
	SCRAM(ctx context.Context, username, hash string) (SCRAMCredentials, error)
	// CRAMMD5 returns the CRAM-MD5 secret of username, stored only for
	// users who opted in.
	CRAMMD5(ctx context.Context, username string) (CRAMMD5Secret, error)
}

// MinSCRAMIterations is the smallest iteration count NewSCRAMCredentials
// accepts: RFC 7677 §4 asks for at least 4096.
const MinSCRAMIterations = 4096

// scramHash returns the xdg-go/scram hash generator for a hash name.
func scramHash(hash string) (scram.HashGeneratorFcn, error) {
	switch hash {
	case HashSHA1:
		return scram.SHA1, nil
	case HashSHA256:
		return scram.SHA256, nil
	}
	return nil, fmt.Errorf("sasl: SCRAM: unknown hash %q", hash)
}

// NewSCRAMCredentials derives SCRAMCredentials from a password (used by
// userdb when a password is set). hash is HashSHA1 or HashSHA256;
// iterations must be at least MinSCRAMIterations and salt at least 16
// octets (the caller draws it from crypto/rand). The password is
// normalized with SASLprep (RFC 5802 §2.2, RFC 4013) as clients do. The
// error never contains the password.
func NewSCRAMCredentials(user, password, hash string, iterations int, salt []byte) (SCRAMCredentials, error) {
	h, err := scramHash(hash)
	if err != nil {
		return SCRAMCredentials{}, err
	}
	if iterations < MinSCRAMIterations {
		return SCRAMCredentials{}, fmt.Errorf("sasl: SCRAM: %d iterations, want at least %d", iterations, MinSCRAMIterations)
	}
	if len(salt) < 16 {
		return SCRAMCredentials{}, fmt.Errorf("sasl: SCRAM: salt of %d octets, want at least 16", len(salt))
	}
	// The user name given to the client only matters for its own messages;
	// the stored keys depend on the password, salt and iterations alone.
	c, err := h.NewClient("u", password, "")
	if err != nil {
		// xdg-go/scram's SASLprep error names neither the password nor
		// the offending character (v1.3.0).
		return SCRAMCredentials{}, fmt.Errorf("sasl: SCRAM: password: %w", err)
	}
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return SCRAMCredentials{}, fmt.Errorf("sasl: SCRAM: derive keys: %w", err)
	}
	return SCRAMCredentials{
		User:       user,
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  sc.StoredKey,
		ServerKey:  sc.ServerKey,
	}, nil
}

// NewCRAMMD5Secret derives a CRAMMD5Secret from a password: the MD5 states
// after the first block of HMAC-MD5's inner and outer hashes (RFC 2104 §2).
// A password longer than 64 octets is first hashed, as RFC 2104 §3 says.
func NewCRAMMD5Secret(user, password string) CRAMMD5Secret {
	key := []byte(password)
	if len(key) > md5.BlockSize {
		k := md5.Sum(key)
		key = k[:]
	}
	var ipad, opad [md5.BlockSize]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	return CRAMMD5Secret{User: user, Inner: md5State(ipad[:]), Outer: md5State(opad[:])}
}

// md5State returns the MD5 chaining state after one 64-octet block, its
// words little-endian.
func md5State(block []byte) [16]byte {
	h := md5.New()
	h.Write(block)
	// crypto/md5's MarshalBinary form: "md5\x01", the words A, B, C, D
	// big-endian, the 64-octet buffer, the length big-endian.
	st, err := h.(interface{ MarshalBinary() ([]byte, error) }).MarshalBinary()
	if err != nil || len(st) < 20 {
		panic("sasl: crypto/md5 state cannot be marshaled")
	}
	var out [16]byte
	for i := range 4 {
		binary.LittleEndian.PutUint32(out[4*i:], binary.BigEndian.Uint32(st[4+4*i:]))
	}
	return out
}
