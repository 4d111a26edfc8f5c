package mailauth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"postern/internal/metrics"
	"postern/internal/smtp"
)

// Algorithm names a DKIM signing algorithm (RFC 6376 §3.3, RFC 8463 §3).
type Algorithm string

// The two signing algorithms Postern uses.
const (
	Ed25519SHA256 Algorithm = "ed25519-sha256"
	RSASHA256     Algorithm = "rsa-sha256"
)

// keyExt returns the key file extension for the algorithm ("ed25519",
// "rsa").
func (a Algorithm) keyExt() string { return strings.TrimSuffix(string(a), "-sha256") }

// SigningKey is one DKIM private key: it signs for Domain with the public
// key published at Selector._domainkey.Domain.
type SigningKey struct {
	Domain   string // lower case, without a trailing dot
	Selector string
	// Key signs: an ed25519.PrivateKey or an *rsa.PrivateKey from a
	// file, or any crypto.Signer whose public key is Ed25519 or RSA,
	// such as a key in a PKCS#11 token that never leaves it.
	Key crypto.Signer
}

// Algorithm returns the signing algorithm of the key, from its public
// key; "" when the key type is not supported.
func (k SigningKey) Algorithm() Algorithm {
	switch k.Key.(type) {
	case nil:
		return ""
	case ed25519.PrivateKey:
		return Ed25519SHA256
	case *rsa.PrivateKey:
		return RSASHA256
	}
	switch k.Key.Public().(type) {
	case ed25519.PublicKey:
		return Ed25519SHA256
	case *rsa.PublicKey:
		return RSASHA256
	}
	return ""
}

// signedFields are the header fields a signature covers when present
// (RFC 6376 §5.4.1); From is oversigned (§8.15): listed once more than it
// occurs, so that a From field added later breaks the signature.
var signedFields = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding", "Content-Disposition", "Content-ID",
	"Sender", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post",
	"Resent-Date", "Resent-From", "Resent-To", "Resent-Cc", "Resent-Message-ID",
}

// Signer signs messages with the DKIM keys of their From domain. It is
// safe for concurrent use.
type Signer struct {
	keys map[string][]SigningKey // by domain
	now  func() time.Time
}

// NewSigner returns a Signer with the given keys; now is the clock for
// the t= tag (nil means time.Now). Keys of one domain sign in the order
// given; a key of an unsupported type is an error.
func NewSigner(keys []SigningKey, now func() time.Time) (*Signer, error) {
	s := &Signer{keys: make(map[string][]SigningKey), now: now}
	if s.now == nil {
		s.now = time.Now
	}
	for _, k := range keys {
		if k.Algorithm() == "" {
			return nil, fmt.Errorf("mailauth: key %s for %s: unsupported key type %T", k.Selector, k.Domain, k.Key)
		}
		if k.Domain == "" || k.Selector == "" {
			return nil, errors.New("mailauth: signing key without domain or selector")
		}
		if k.Algorithm() == RSASHA256 {
			// As for key files (ParsePrivateKey): RFC 8301 §3.2 allows
			// 1024, but we sign with 2048 or more.
			if n := k.Key.Public().(*rsa.PublicKey).N.BitLen(); n < 2048 {
				return nil, fmt.Errorf("mailauth: key %s for %s: RSA key of %d bits, want at least 2048", k.Selector, k.Domain, n)
			}
		}
		d := strings.ToLower(strings.TrimSuffix(k.Domain, "."))
		k.Domain = d
		s.keys[d] = append(s.keys[d], k)
	}
	return s, nil
}

// KeyPath returns where a key is stored in a data directory:
// DIR/dkim/DOMAIN/SELECTOR.ALG.pem, ALG being "ed25519" or "rsa".
func KeyPath(dataDir, domain, selector string, alg Algorithm) string {
	return filepath.Join(dataDir, "dkim", strings.ToLower(domain), selector+"."+alg.keyExt()+".pem")
}

// LoadKeys reads every key stored under DIR/dkim (see KeyPath). A
// missing DIR/dkim means no keys. Keys of a domain are returned
// ed25519 first, then by selector.
func LoadKeys(dataDir string) ([]SigningKey, error) {
	root := filepath.Join(dataDir, "dkim")
	domains, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("mailauth: read keys: %w", err)
	}
	var keys []SigningKey
	for _, d := range domains {
		if !d.IsDir() {
			continue
		}
		files, err := filepath.Glob(filepath.Join(root, d.Name(), "*.pem"))
		if err != nil {
			return nil, fmt.Errorf("mailauth: read keys: %w", err)
		}
		var dk []SigningKey
		for _, f := range files {
			base := strings.TrimSuffix(filepath.Base(f), ".pem")
			sel, ext, ok := strings.Cut(base, ".")
			if !ok || (ext != "ed25519" && ext != "rsa") {
				continue
			}
			k, err := LoadKeyFile(f)
			if err != nil {
				return nil, err
			}
			dk = append(dk, SigningKey{Domain: d.Name(), Selector: sel, Key: k})
		}
		sort.SliceStable(dk, func(i, j int) bool {
			ai, aj := dk[i].Algorithm() == Ed25519SHA256, dk[j].Algorithm() == Ed25519SHA256
			if ai != aj {
				return ai
			}
			return dk[i].Selector < dk[j].Selector
		})
		keys = append(keys, dk...)
	}
	return keys, nil
}

// LoadKeyFile reads a PEM private key: PKCS #8 ("PRIVATE KEY", ed25519 or
// RSA) or PKCS #1 ("RSA PRIVATE KEY"). RSA keys under 2048 bits are
// refused (RFC 8301 §3.2 allows 1024, but we sign with 2048).
func LoadKeyFile(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mailauth: read key: %w", err)
	}
	k, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("mailauth: key %s: %w", path, err)
	}
	return k, nil
}

// ParsePrivateKey parses a PEM private key as LoadKeyFile does.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("mailauth: no PEM block")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("mailauth: PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("mailauth: parse key: %w", err)
	}
	switch k := k.(type) {
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("mailauth: RSA key of %d bits, want at least 2048", k.N.BitLen())
		}
		return k, nil
	}
	return nil, fmt.Errorf("mailauth: unsupported key type %T", k)
}

// HasKey reports whether the Signer has a key for domain.
func (s *Signer) HasKey(domain string) bool {
	return len(s.keys[strings.ToLower(strings.TrimSuffix(domain, "."))]) > 0
}

// Sign returns the DKIM-Signature header fields (each ending in CRLF) to
// prepend to msg: one for each key of the domain of msg's From address
// (of each From domain that has keys, when there are several), relaxed/
// relaxed (RFC 6376 §3.4), with t= from the Signer's clock. Signing with
// the From domain makes DKIM align for DMARC (RFC 7489 §3.1.1). It
// returns nil when no From domain has a key.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	_, end := splitHeader(msg)
	return s.SignMessage(msg[:end], smtp.BodyBytes(msg[end:]))
}

// SignMessage is Sign for a message given as its header section and its
// body, which may be in a file: the body is read once, as a stream, for
// its hash.
func (s *Signer) SignMessage(header []byte, body smtp.Body) ([]byte, error) {
	fields, _ := splitHeader(header)
	domains := fromDomains(fields)
	var out []byte
	for _, d := range domains {
		keys := s.keys[d]
		if len(keys) == 0 {
			continue
		}
		h, err := s.signWith(keys, fields, body)
		if err != nil {
			return nil, err
		}
		out = append(out, h...)
	}
	return out, nil
}

// SignAs is Sign with an explicit signing domain (d=), which must have a
// key; it does not look at From.
func (s *Signer) SignAs(domain string, msg []byte) ([]byte, error) {
	keys := s.keys[strings.ToLower(strings.TrimSuffix(domain, "."))]
	if len(keys) == 0 {
		return nil, fmt.Errorf("mailauth: sign: no key for %s", domain)
	}
	fields, end := splitHeader(msg)
	return s.signWith(keys, fields, smtp.BodyBytes(msg[end:]))
}

func (s *Signer) signWith(keys []SigningKey, fields []field, body smtp.Body) ([]byte, error) {
	hb := sha256.New()
	cw := relaxedBodyWriter{w: hb}
	if _, err := body.WriteTo(&cw); err != nil {
		return nil, fmt.Errorf("mailauth: sign: read body: %w", err)
	}
	cw.Close()
	bh := hb.Sum(nil)
	// h=: each present field as often as it occurs (RFC 6376 §5.4.2),
	// From once more.
	var names []string
	for _, name := range signedFields {
		n := 0
		for _, f := range fields {
			if strings.EqualFold(f.name, name) {
				n++
			}
		}
		if strings.EqualFold(name, "From") {
			n++
		}
		for range n {
			names = append(names, strings.ToLower(name))
		}
	}
	var hdata []byte
	picker := newPicker(fields)
	for _, name := range names {
		if f, ok := picker.pick(name); ok {
			hdata = append(hdata, relaxedHeader(f.raw)...)
		}
	}
	t := s.now().Unix()
	var out []byte
	for _, k := range keys {
		sig := formatSignature(k, t, names, base64.StdEncoding.EncodeToString(bh[:]))
		// RFC 6376 §3.7: the signature field itself, b= empty, last,
		// without its final CRLF.
		h := sha256.New()
		h.Write(hdata)
		canon := relaxedHeader([]byte(sig + "\r\n"))
		h.Write(canon[:len(canon)-2])
		digest := h.Sum(nil)
		// Through crypto.Signer, so that a key in a token signs too.
		opts := crypto.SignerOpts(crypto.SHA256) // RSA PKCS #1 v1.5 over the SHA-256 hash
		if k.Algorithm() == Ed25519SHA256 {
			opts = crypto.Hash(0) // RFC 8463 §3: PureEdDSA over the SHA-256 hash
		}
		b, err := k.Key.Sign(rand.Reader, digest, opts)
		if err != nil {
			return nil, fmt.Errorf("mailauth: sign %s: %w", k.Domain, err)
		}
		metrics.DKIMSignatures.WithLabelValues(string(k.Algorithm())).Inc()
		out = append(out, sig...)
		out = appendFolded(out, base64.StdEncoding.EncodeToString(b))
		out = append(out, "\r\n"...)
	}
	return out, nil
}

// formatSignature returns the DKIM-Signature field up to and including
// "b=", folded.
func formatSignature(k SigningKey, t int64, names []string, bh string) string {
	var sb strings.Builder
	sb.WriteString("DKIM-Signature: v=1; a=" + string(k.Algorithm()) + "; c=relaxed/relaxed;\r\n")
	sb.WriteString("\td=" + k.Domain + "; s=" + k.Selector + "; t=" + strconv.FormatInt(t, 10) + ";\r\n")
	sb.WriteString("\th=")
	line := 3
	for i, n := range names {
		if i > 0 {
			sb.WriteByte(':')
			line++
		}
		if line+len(n) > 76 {
			sb.WriteString("\r\n\t ")
			line = 2
		}
		sb.WriteString(n)
		line += len(n)
	}
	sb.WriteString(";\r\n\tbh=" + bh + ";\r\n\tb=")
	return sb.String()
}

// appendFolded appends a base64 value folded into lines of at most 76
// characters.
func appendFolded(out []byte, v string) []byte {
	first := 76 - len("\tb=")
	for len(v) > first {
		out = append(out, v[:first]...)
		out = append(out, "\r\n\t "...)
		v = v[first:]
		first = 74
	}
	return append(out, v...)
}

// picker picks header fields bottom-up, each instance once (RFC 6376
// §5.4.2).
type picker struct {
	fields []field
	used   map[string]int
}

func newPicker(fields []field) *picker { return &picker{fields: fields, used: map[string]int{}} }

func (p *picker) pick(name string) (field, bool) {
	skip := p.used[name]
	for i := len(p.fields) - 1; i >= 0; i-- {
		if !strings.EqualFold(p.fields[i].name, name) {
			continue
		}
		if skip == 0 {
			p.used[name]++
			return p.fields[i], true
		}
		skip--
	}
	return field{}, false
}
