package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Pair names the files of one certificate: a PEM chain, leaf first, and
// the PEM private key of the leaf, or a key in a PKCS#11 token.
type Pair struct {
	// CertFile is the PEM certificate chain: the leaf, then each
	// intermediate in order up to (not necessarily including) the root.
	CertFile string
	// KeyFile is the PEM private key (PKCS #8, PKCS #1 or SEC 1) of the
	// leaf, or a PKCS#11 URI ("pkcs11:...", RFC 7512) that
	// Options.Keys loads.
	KeyFile string
}

// KeyLoader returns the private key a PKCS#11 URI names, from its token;
// the key signs without leaving it. pkcs11.Tokens.Key is one.
type KeyLoader func(uri string) (crypto.Signer, error)

// IsKeyURI reports whether a KeyFile is a PKCS#11 URI ("pkcs11:", any
// case), loaded by a KeyLoader, rather than a file.
func IsKeyURI(ref string) bool {
	const scheme = "pkcs11:"
	return len(ref) >= len(scheme) && strings.EqualFold(ref[:len(scheme)], scheme)
}

// Options configures OpenCerts.
type Options struct {
	// Pairs are the certificate files to serve, at least one unless
	// certificates are installed with Set before the first handshake.
	// The first pair is the default for a client whose server name
	// (SNI) no certificate covers.
	Pairs []Pair
	// Check is what every certificate is checked against, at open, at
	// each Reload and at each Set. Check.Now is ignored: Now is used.
	Check CheckOptions
	// AllowBrokenChain installs certificates even when Check finds
	// problems, logging each at ERROR level (postern serve
	// --allow-broken-chain, for emergencies).
	AllowBrokenChain bool
	// Logger receives reload, chain and expiry events; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Keys loads the keys of pairs whose KeyFile is a PKCS#11 URI, at
	// open and at each Reload (which finds the key in its token again);
	// nil refuses such pairs.
	Keys KeyLoader
	// Metrics receives the expiry gauge (NewMetrics); nil sets it in a
	// set registered nowhere.
	Metrics *Metrics
}

// Certs holds the certificates Postern serves, chooses one per
// handshake (GetCertificate), reloads them from their files (Reload) and
// accepts certificates from elsewhere, such as ACME (Set). It is safe for
// concurrent use.
type Certs struct {
	opts  Options
	log   *slog.Logger
	m     *Metrics // opts.Metrics, or a set of its own
	plain bool     // LoadCerts: no checks, no expiry events

	mu    sync.Mutex // serializes Reload, Set, Remove and expiry checks
	files []named    // from opts.Pairs, in order
	other []named    // from Set, in the order first set
	cur   atomic.Pointer[certSet]

	expiry expiryState // guarded by mu
}

// named is a certificate with the name it was loaded or Set under.
type named struct {
	name string
	cert *tls.Certificate
}

// certSet is an immutable snapshot served to handshakes.
type certSet struct {
	all    []named                       // files first, then Set ones
	byName map[string][]*tls.Certificate // lower-case DNS name or "*.domain"
	// fallback is for a client without SNI or with an unknown name: the
	// certificates for the default's first name (ECDSA first), then the
	// rest in order.
	fallback []*tls.Certificate
}

// ChainError is returned by OpenCerts, Reload and Set when a certificate
// fails Check and AllowBrokenChain is off. Its message lists every
// problem with how to fix it.
type ChainError struct {
	// Problems are what Check found, in certificate order.
	Problems []Problem
}

// Error implements error: one problem per line.
func (e *ChainError) Error() string {
	lines := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		lines = append(lines, p.String())
	}
	return "tlsconf: certificate refused:\n  " + strings.Join(lines, "\n  ")
}

// OpenCerts reads the files of opts.Pairs, checks each certificate with
// Check (as a client would), and returns the Certs serving them. A
// certificate with problems is refused with a *ChainError unless
// opts.AllowBrokenChain. Expiry warnings and the expiry gauge are
// updated at once.
func OpenCerts(opts Options) (*Certs, error) {
	c := &Certs{opts: opts, log: opts.Logger, m: opts.Metrics}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.m == nil {
		c.m = NewMetrics(nil)
	}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// LoadCerts reads a PEM certificate chain (leaf first) from certFile and
// its PEM private key from keyFile, without chain checks. The error names
// the file and the problem: unreadable, no PEM block, unparsable, or a
// key that does not match the leaf.
func LoadCerts(certFile, keyFile string) (*Certs, error) {
	c := &Certs{opts: Options{Pairs: []Pair{{certFile, keyFile}}}, log: slog.New(slog.DiscardHandler), m: NewMetrics(nil), plain: true}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Certs) now() time.Time {
	if c.opts.Now != nil {
		return c.opts.Now()
	}
	return time.Now()
}

func (c *Certs) checkOptions() CheckOptions {
	o := c.opts.Check
	o.Now = c.now()
	return o
}

// Reload reads every pair's files again and checks them. When all load
// and pass Check (or AllowBrokenChain is set), they replace the current
// certificates for new handshakes; sessions already running keep theirs.
// Otherwise the current certificates stay and the error says why:
// unreadable files, or a *ChainError.
func (c *Certs) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	files := make([]named, 0, len(c.opts.Pairs))
	for _, p := range c.opts.Pairs {
		read := ReadCertificate
		switch {
		case c.plain:
			read = readPair
		case IsKeyURI(p.KeyFile):
			read = func(cf, kf string) (*tls.Certificate, error) { return ReadCertificateKey(cf, kf, c.opts.Keys) }
		}
		cert, err := read(p.CertFile, p.KeyFile)
		if err != nil {
			return err
		}
		files = append(files, named{name: p.CertFile, cert: cert})
	}
	if !c.plain {
		if err := c.admit(append(slices.Clone(files), c.other...)); err != nil {
			return err
		}
	}
	c.files = files
	c.publish()
	if !c.plain {
		c.checkExpiryLocked()
	}
	return nil
}

// admit checks the certificates about to be served and decides whether
// they may be: with problems, only when AllowBrokenChain is set, and
// then each problem is logged at ERROR level.
func (c *Certs) admit(all []named) error {
	certs := make([]*tls.Certificate, 0, len(all))
	names := make([]string, 0, len(all))
	for _, n := range all {
		certs = append(certs, n.cert)
		names = append(names, n.name)
	}
	probs := CheckSet(certs, names, c.checkOptions())
	if len(probs) == 0 {
		return nil
	}
	if c.opts.AllowBrokenChain {
		for _, p := range probs {
			c.log.Error("BROKEN CERTIFICATE SERVED (--allow-broken-chain): clients will refuse it",
				"certificate", p.Cert, "problem", p.Message, "fix", p.Fix)
		}
		return nil
	}
	return &ChainError{Problems: probs}
}

// Set installs cert under name (for example "acme:mail.example.com"),
// replacing the certificate Set earlier under the same name; the files'
// certificates stay. cert.Leaf may be nil. cert is checked like the
// files (Options.Check, AllowBrokenChain): on a *ChainError nothing
// changes. New handshakes choose among all certificates by server name
// and key type. This is how ACME installs what it obtains or renews.
func (c *Certs) Set(name string, cert *tls.Certificate) error {
	if cert == nil || len(cert.Certificate) == 0 {
		return fmt.Errorf("tlsconf: set %s: empty certificate", name)
	}
	if cert.Leaf == nil {
		cp := *cert
		leaf, err := x509.ParseCertificate(cp.Certificate[0])
		if err != nil {
			return fmt.Errorf("tlsconf: set %s: %w", name, err)
		}
		cp.Leaf = leaf
		cert = &cp
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := named{name: name, cert: cert}
	other := slices.Clone(c.other)
	if i := slices.IndexFunc(other, func(o named) bool { return o.name == name }); i >= 0 {
		other[i] = n
	} else {
		other = append(other, n)
	}
	if err := c.admit(append(slices.Clone(c.files), other...)); err != nil {
		return err
	}
	c.other = other
	c.publish()
	c.checkExpiryLocked()
	return nil
}

// Remove takes away the certificate Set under name, if any.
func (c *Certs) Remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.other = slices.DeleteFunc(slices.Clone(c.other), func(n named) bool { return n.name == name })
	c.publish()
	c.checkExpiryLocked()
}

// publish builds and installs a new snapshot; c.mu held (or c unshared).
func (c *Certs) publish() {
	s := &certSet{byName: map[string][]*tls.Certificate{}}
	s.all = append(append(s.all, c.files...), c.other...)
	// ECDSA first among certificates for the same name: chosen when the
	// client supports it, RSA otherwise.
	ordered := slices.Clone(s.all)
	slices.SortStableFunc(ordered, func(a, b named) int { return keyRank(a.cert) - keyRank(b.cert) })
	for _, n := range ordered {
		for _, name := range leafNames(n.cert.Leaf) {
			s.byName[name] = append(s.byName[name], n.cert)
		}
	}
	if len(s.all) > 0 {
		if names := leafNames(s.all[0].cert.Leaf); len(names) > 0 {
			s.fallback = slices.Clone(s.byName[names[0]])
		}
		for _, n := range s.all {
			if !slices.Contains(s.fallback, n.cert) {
				s.fallback = append(s.fallback, n.cert)
			}
		}
	}
	c.cur.Store(s)
}

// keyRank orders key types by preference: ECDSA, Ed25519, RSA, others.
func keyRank(c *tls.Certificate) int {
	switch c.Leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return 0
	case ed25519.PublicKey:
		return 1
	case *rsa.PublicKey:
		return 2
	}
	return 3
}

// leafNames returns the lower-case DNS names of leaf (SANs; the common
// name only when there is no SAN), wildcards as "*.domain".
func leafNames(leaf *x509.Certificate) []string {
	names := leaf.DNSNames
	if len(names) == 0 && len(leaf.IPAddresses) == 0 && leaf.Subject.CommonName != "" {
		names = []string{leaf.Subject.CommonName}
	}
	out := make([]string, 0, len(names)+len(leaf.IPAddresses))
	for _, n := range names {
		out = append(out, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	for _, ip := range leaf.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// GetCertificate chooses the certificate for a handshake; it has the
// signature of tls.Config.GetCertificate. Candidates are the
// certificates whose names match the server name the client sent (SNI):
// an exact name first, else a wildcard for it. With no SNI (common on
// port 25) or no match, they are the certificates for the default
// certificate's name (the first pair's), then every other. Among
// candidates, ECDSA before RSA, it returns the first the client supports
// (tls.ClientHelloInfo.SupportsCertificate), else the first candidate.
func (c *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s := c.cur.Load()
	if s == nil || len(s.all) == 0 {
		return nil, errors.New("tlsconf: no certificate loaded")
	}
	if hello == nil {
		return s.all[0].cert, nil
	}
	var cands []*tls.Certificate
	if hello.ServerName != "" {
		name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
		cands = s.byName[name]
		if len(cands) == 0 {
			if i := strings.IndexByte(name, '.'); i > 0 {
				cands = s.byName["*"+name[i:]]
			}
		}
	}
	if len(cands) == 0 {
		cands = s.fallback
	}
	for _, cert := range cands {
		if hello.SupportsCertificate(cert) == nil {
			return cert, nil
		}
	}
	return cands[0], nil
}

// Leaf returns the parsed leaf of the default certificate (the first
// pair's, else the first Set), or nil when there is none.
func (c *Certs) Leaf() *x509.Certificate {
	s := c.cur.Load()
	if s == nil || len(s.all) == 0 {
		return nil
	}
	return s.all[0].cert.Leaf
}

// LeafFor returns the parsed leaf of the certificate served to a client
// that asks for serverName (SNI), or nil when there is none: the
// certificate a session's channel binding names (RFC 5929 §4,
// tls-server-end-point).
func (c *Certs) LeafFor(serverName string) *x509.Certificate {
	cert, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: serverName})
	if err != nil || cert == nil {
		return nil
	}
	leaf, err := leafOf(cert)
	if err != nil {
		return nil
	}
	return leaf
}

// Certificates returns the certificates served now, files first, each
// with its name (the certificate file, or the name given to Set).
func (c *Certs) Certificates() map[string]*tls.Certificate {
	s := c.cur.Load()
	out := map[string]*tls.Certificate{}
	if s != nil {
		for _, n := range s.all {
			out[n.name] = n.cert
		}
	}
	return out
}

// Files returns every certificate and key file served, for watching;
// keys in tokens are not files.
func (c *Certs) Files() []string {
	var out []string
	for _, p := range c.opts.Pairs {
		out = append(out, p.CertFile)
		if !IsKeyURI(p.KeyFile) {
			out = append(out, p.KeyFile)
		}
	}
	return out
}

// ReadCertificate reads a PEM chain (leaf first) and a PEM private key
// without requiring that they match: Check reports a key that does not
// go with the leaf, with how to fix it. Errors name the file: unreadable,
// no PEM block, unparsable.
func ReadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := readChain(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: key file %s: %w", keyFile, err)
	}
	cert.PrivateKey = key
	return cert, nil
}

// ReadCertificateKey is ReadCertificate for a key in a PKCS#11 token:
// keyURI is loaded by keys (nil: an error saying no token access is
// set up). The key is not required to match: Check says so.
func ReadCertificateKey(certFile, keyURI string, keys KeyLoader) (*tls.Certificate, error) {
	cert, err := readChain(certFile)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		return nil, fmt.Errorf("tlsconf: key %s: keys in PKCS#11 tokens are not set up", keyURI)
	}
	key, err := keys(keyURI)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate %s: %w", certFile, err)
	}
	cert.PrivateKey = key
	return cert, nil
}

// readChain reads a PEM chain, leaf first, with Leaf set and no key.
func readChain(certFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read certificate: %w", err)
	}
	return parseChain(certFile, certPEM)
}

// parseKey returns the first private key in keyPEM.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	for rest := keyPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key block")
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Type, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		return s, nil
	}
}
