package userdb

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"postern/internal/sasl"
)

// Argon2Params are the Argon2id cost parameters for new password hashes
// (RFC 9106). Hashes already stored keep the parameters written in their
// PHC string, so changing these affects only passwords set afterwards.
type Argon2Params struct {
	// Time is the number of passes over memory (RFC 9106 §3.1 "t").
	Time uint32
	// MemoryKiB is the memory size in KiB (RFC 9106 §3.1 "m").
	MemoryKiB uint32
	// Threads is the degree of parallelism (RFC 9106 §3.1 "p").
	Threads uint8
}

// Limits on the parameters of a stored or configured hash, so a corrupt or
// hostile users file cannot make a login allocate gigabytes or spin forever.
const (
	maxArgonTime   = 64
	maxArgonMemKiB = 1 << 20 // 1 GiB
	minSaltLen     = 8       // RFC 9106 §3.1: salt at least 8 bytes
	maxSaltLen     = 64
	minKeyLen      = 16
	maxKeyLen      = 64
	saltLen        = 16 // RFC 9106 §3.1: 16 bytes recommended
	keyLen         = 32 // RFC 9106 §4: tag length 256 bits
)

// phcB64 returns the base64 of the PHC string format: standard alphabet,
// no padding, strict.
func phcB64() *base64.Encoding { return base64.RawStdEncoding.Strict() }

// phc is a parsed Argon2id hash in PHC string format.
type phc struct {
	params Argon2Params
	salt   []byte
	key    []byte
}

// validate checks p against the limits above.
func (p Argon2Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("argon2 time %d outside 1..%d", p.Time, maxArgonTime)
	case p.Threads < 1:
		return fmt.Errorf("argon2 threads must be at least 1")
	case p.MemoryKiB < 8*uint32(p.Threads): // RFC 9106 §3.1: m >= 8*p
		return fmt.Errorf("argon2 memory %d KiB below 8 KiB per thread", p.MemoryKiB)
	case p.MemoryKiB > maxArgonMemKiB:
		return fmt.Errorf("argon2 memory %d KiB above %d KiB", p.MemoryKiB, maxArgonMemKiB)
	}
	return nil
}

// String returns the hash in PHC string format:
//
//	$argon2id$v=19$m=65536,t=2,p=1$<salt>$<hash>
func (h phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.MemoryKiB, h.params.Time, h.params.Threads,
		phcB64().EncodeToString(h.salt), phcB64().EncodeToString(h.key))
}

// parsePHC parses an Argon2id hash in PHC string format, strictly: the
// version must be 19 (RFC 9106 §3.1, 0x13), the parameters in the order
// m, t, p, decimal without sign or leading zeros, salt and hash in unpadded
// standard base64. Its errors never contain the input.
func parsePHC(s string) (phc, error) {
	var h phc
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, fmt.Errorf("userdb: password hash: not a PHC string")
	}
	if parts[1] != "argon2id" {
		return h, fmt.Errorf("userdb: password hash: algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, fmt.Errorf("userdb: password hash: argon2 version is not %d", argon2.Version)
	}
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return h, fmt.Errorf("userdb: password hash: want parameters m, t, p")
	}
	var vals [3]uint32
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return h, fmt.Errorf("userdb: password hash: want parameter %s in position %d", name, i+1)
		}
		n, err := parseDecimal(v)
		if err != nil {
			return h, fmt.Errorf("userdb: password hash: parameter %s: %w", name, err)
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return h, fmt.Errorf("userdb: password hash: parallelism above 255")
	}
	h.params = Argon2Params{MemoryKiB: vals[0], Time: vals[1], Threads: uint8(vals[2])}
	if err := h.params.validate(); err != nil {
		return h, fmt.Errorf("userdb: password hash: %w", err)
	}
	var ok bool
	if h.salt, ok = decodeB64(parts[4]); !ok || len(h.salt) < minSaltLen || len(h.salt) > maxSaltLen {
		return h, fmt.Errorf("userdb: password hash: salt is not %d to %d bytes of base64", minSaltLen, maxSaltLen)
	}
	if h.key, ok = decodeB64(parts[5]); !ok || len(h.key) < minKeyLen || len(h.key) > maxKeyLen {
		return h, fmt.Errorf("userdb: password hash: hash is not %d to %d bytes of base64", minKeyLen, maxKeyLen)
	}
	return h, nil
}

// decodeB64 decodes PHC base64 and accepts only the canonical encoding
// (encoding/base64 skips CR and LF even in strict mode).
func decodeB64(s string) ([]byte, bool) {
	b, err := phcB64().DecodeString(s)
	if err != nil || phcB64().EncodeToString(b) != s {
		return nil, false
	}
	return b, true
}

// parseDecimal parses a PHC decimal: digits only, no leading zero, fits
// in 32 bits.
func parseDecimal(s string) (uint32, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a plain decimal")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	return uint32(n), nil
}

// hasher runs Argon2id with a bound on the hashes in flight and counts
// them. It is safe for concurrent use.
type hasher struct {
	params Argon2Params
	sem    chan struct{}
	count  func() // called once per hash computed (tests and metrics)
}

// acquire takes a hashing slot, or fails with ErrTemporary when ctx ends
// first.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("userdb: waiting to hash: %w: %w", sasl.ErrTemporary, ctx.Err())
	}
}

func (h *hasher) release() { <-h.sem }

// hash returns a new PHC string for password with a fresh random salt.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("userdb: salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	h.count()
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, keyLen)
	return phc{params: h.params, salt: salt, key: key}.String(), nil
}

// verify reports whether password matches the parsed hash, comparing in
// constant time.
func (h *hasher) verify(ctx context.Context, stored phc, password string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	h.count()
	key := argon2.IDKey([]byte(password), stored.salt, stored.params.Time, stored.params.MemoryKiB, stored.params.Threads, uint32(len(stored.key)))
	return subtle.ConstantTimeCompare(key, stored.key) == 1, nil
}

// dummyHash returns a PHC record with params and random salt and key: a
// verification against it costs what a real one costs and always fails.
func dummyHash(params Argon2Params) (phc, error) {
	h := phc{params: params, salt: make([]byte, saltLen), key: make([]byte, keyLen)}
	if _, err := rand.Read(h.salt); err != nil {
		return h, fmt.Errorf("userdb: dummy hash: %w", err)
	}
	if _, err := rand.Read(h.key); err != nil {
		return h, fmt.Errorf("userdb: dummy hash: %w", err)
	}
	return h, nil
}
