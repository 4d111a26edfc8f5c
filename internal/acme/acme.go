// Package acme obtains and renews Postern's certificate from an ACME
// certificate authority (RFC 8555), such as Let's Encrypt, on
// golang.org/x/crypto/acme. A Manager keeps its account key and the
// certificate under a directory of its own (DATA/acme), answers the
// challenges itself (HTTP-01 through HTTPHandler, TLS-ALPN-01 through
// ServeTLSALPN, DNS-01 through a DNSHook), installs every certificate it
// loads or obtains through a callback, and renews well before expiry,
// backing off on failure and raising an alert (a log event at ERROR and
// a metric).
//
// Time and the network are injected: Options.Now and Options.After drive
// the renewal loop, Options.HTTPClient reaches the CA.
package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	xacme "golang.org/x/crypto/acme"
)

// Challenge is an ACME challenge type.
type Challenge string

// The challenge types a Manager answers.
const (
	// HTTP01 answers on port 80 (RFC 8555 §8.3), through HTTPHandler.
	HTTP01 Challenge = "http-01"
	// TLSALPN01 answers on port 443 (RFC 8737), through ServeTLSALPN.
	TLSALPN01 Challenge = "tls-alpn-01"
	// DNS01 publishes a TXT record (RFC 8555 §8.4) through a DNSHook.
	DNS01 Challenge = "dns-01"
)

// Defaults of Options.
const (
	// DefaultRetryFirst is the wait after a first failed attempt.
	DefaultRetryFirst = 5 * time.Minute
	// DefaultRetryMax caps the wait between failed attempts.
	DefaultRetryMax = 6 * time.Hour
	// DefaultObtainTimeout bounds one attempt to obtain a certificate.
	DefaultObtainTimeout = 10 * time.Minute
	// maxSleep bounds one wait of the renewal loop, so that a clock
	// that jumps (a suspended machine) is noticed within a day.
	maxSleep = 24 * time.Hour
)

// Options configure a Manager.
type Options struct {
	// DirectoryURL is the CA's directory (required).
	DirectoryURL string
	// Email is the account's contact address; "" registers none.
	Email string
	// Hostnames are the names the certificate covers (at least one);
	// the first names the storage directory.
	Hostnames []string
	// Challenge is the challenge answered; "" means HTTP01.
	Challenge Challenge
	// DNSHook publishes DNS-01 records; required for DNS01.
	DNSHook DNSHook
	// Dir holds the account key and the certificates (created 0700).
	Dir string
	// HTTPClient reaches the CA; nil means http.DefaultClient. Its
	// transport decides which roots the directory's certificate must
	// chain to (see HTTPClient).
	HTTPClient *http.Client
	// RenewBefore is how long before expiry the certificate is renewed.
	// Required (positive): Postern's configuration resolves its default
	// (acme.renew_before), in internal/config.
	RenewBefore time.Duration
	// RetryFirst and RetryMax bound the exponential backoff after a
	// failed attempt; 0 means DefaultRetryFirst and DefaultRetryMax.
	RetryFirst, RetryMax time.Duration
	// ObtainTimeout bounds one attempt; 0 means DefaultObtainTimeout.
	ObtainTimeout time.Duration
	// Install receives each certificate the Manager loads or obtains,
	// leaf first, with Leaf set (for example tlsconf.Certs.Set). An
	// error refuses the certificate: Load and Obtain return it. It must
	// not block; nil accepts and discards them.
	Install func(*tls.Certificate) error
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// After waits for the renewal loop; nil means time.After.
	After func(time.Duration) <-chan time.Time
	// Logger receives the events; nil means slog.Default().
	Logger *slog.Logger
	// Metrics counts the attempts and shows the expiry (NewMetrics);
	// nil counts into a set registered nowhere.
	Metrics *Metrics
}

// Manager obtains, stores, installs and renews one certificate. Its
// methods are safe for concurrent use.
type Manager struct {
	o     Options
	store store
	log   *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate            // current, nil before the first
	http01 map[string]string           // token -> key authorization
	alpn   map[string]*tls.Certificate // host -> TLS-ALPN-01 certificate
	obtain sync.Mutex                  // one order at a time
}

// New checks o and returns a Manager. It does not touch the network or
// the disk.
func New(o Options) (*Manager, error) {
	if o.DirectoryURL == "" {
		return nil, errors.New("acme: no directory URL")
	}
	if len(o.Hostnames) == 0 {
		return nil, errors.New("acme: no host name")
	}
	if o.Dir == "" {
		return nil, errors.New("acme: no directory to store the certificate in")
	}
	switch o.Challenge {
	case "":
		o.Challenge = HTTP01
	case HTTP01, TLSALPN01:
	case DNS01:
		if o.DNSHook == nil {
			return nil, errors.New("acme: dns-01 needs a DNS hook")
		}
	default:
		return nil, fmt.Errorf("acme: unknown challenge %q", o.Challenge)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.RenewBefore <= 0 {
		return nil, errors.New("acme: RenewBefore must be positive")
	}
	if o.RetryFirst <= 0 {
		o.RetryFirst = DefaultRetryFirst
	}
	if o.RetryMax <= 0 {
		o.RetryMax = DefaultRetryMax
	}
	if o.ObtainTimeout <= 0 {
		o.ObtainTimeout = DefaultObtainTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Install == nil {
		o.Install = func(*tls.Certificate) error { return nil }
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	o.Hostnames = slices.Clone(o.Hostnames)
	return &Manager{
		o:      o,
		store:  store{dir: o.Dir, name: o.Hostnames[0]},
		log:    log.With("component", "acme"),
		http01: map[string]string{},
		alpn:   map[string]*tls.Certificate{},
	}, nil
}

// Certificate returns the current certificate, nil before one was
// loaded or obtained.
func (m *Manager) Certificate() *tls.Certificate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cert
}

// Load reads the stored certificate, installs it and returns it. It
// returns an error wrapping fs.ErrNotExist when none is stored yet, and
// the error of Options.Install when that refuses it. A
// stored certificate is installed even when expired or missing a host
// name: the renewal loop replaces it.
func (m *Manager) Load() (*tls.Certificate, error) {
	c, err := m.store.loadCert()
	if err != nil {
		return nil, err
	}
	if err := m.install(c); err != nil {
		return nil, err
	}
	m.log.Info("acme certificate loaded", "names", strings.Join(m.o.Hostnames, ","),
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	m.setExpiry(c)
	return c, nil
}

// install hands c to Options.Install and, when accepted, makes it the
// current certificate.
func (m *Manager) install(c *tls.Certificate) error {
	if err := m.o.Install(c); err != nil {
		return fmt.Errorf("acme: install certificate: %w", err)
	}
	m.mu.Lock()
	m.cert = c
	m.mu.Unlock()
	return nil
}

// Due reports whether c must be renewed at now: it is nil, it expires
// within RenewBefore, or it does not cover every host name.
func (m *Manager) Due(c *tls.Certificate, now time.Time) bool {
	return !now.Before(m.renewAt(c))
}

// renewAt is when c is due: RenewBefore ahead of its expiry, or (zero
// time) at once.
func (m *Manager) renewAt(c *tls.Certificate) time.Time {
	if c == nil || c.Leaf == nil {
		return time.Time{}
	}
	for _, h := range m.o.Hostnames {
		if c.Leaf.VerifyHostname(h) != nil {
			return time.Time{}
		}
	}
	return c.Leaf.NotAfter.Add(-m.o.RenewBefore)
}

// Obtain orders a new certificate for the host names (RFC 8555 §7.4),
// answering its challenges, stores it and installs it; when
// Options.Install refuses it, it stays stored but is not current, and
// the error is returned. Concurrent calls run one after the other.
func (m *Manager) Obtain(ctx context.Context) (*tls.Certificate, error) {
	m.obtain.Lock()
	defer m.obtain.Unlock()
	ctx, cancel := context.WithTimeout(ctx, m.o.ObtainTimeout)
	defer cancel()
	key, err := m.store.accountKey()
	if err != nil {
		return nil, err
	}
	cl := &xacme.Client{Key: key, DirectoryURL: m.o.DirectoryURL, HTTPClient: m.o.HTTPClient, UserAgent: "postern"}
	if err := m.register(ctx, cl); err != nil {
		return nil, err
	}
	order, err := cl.AuthorizeOrder(ctx, xacme.DomainIDs(m.o.Hostnames...))
	if err != nil {
		return nil, fmt.Errorf("acme: new order: %w", err)
	}
	for _, u := range order.AuthzURLs {
		if err := m.authorize(ctx, cl, u); err != nil {
			return nil, err
		}
	}
	if order, err = cl.WaitOrder(ctx, order.URI); err != nil {
		return nil, fmt.Errorf("acme: order: %w", err)
	}
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("acme: generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: m.o.Hostnames[0]},
		DNSNames: m.o.Hostnames,
	}, certKey)
	if err != nil {
		return nil, fmt.Errorf("acme: certificate request: %w", err)
	}
	der, _, err := cl.CreateCertFromOrder(ctx, order, csr, true)
	if err != nil {
		return nil, fmt.Errorf("acme: finalize order: %w", err)
	}
	c, err := m.checkIssued(der, certKey)
	if err != nil {
		return nil, err
	}
	if err := m.store.saveCert(der, certKey); err != nil {
		return nil, err
	}
	if err := m.install(c); err != nil {
		return nil, err
	}
	m.log.Info("acme certificate obtained", "names", strings.Join(m.o.Hostnames, ","),
		"not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "issuer", c.Leaf.Issuer.CommonName)
	return c, nil
}

// checkIssued parses what the CA returned and checks that it is a
// certificate for our key and every host name.
func (m *Manager) checkIssued(der [][]byte, key crypto.Signer) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("acme: the CA returned no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("acme: issued certificate: %w", err)
	}
	if !publicKeyEqual(leaf.PublicKey, key.Public()) {
		return nil, errors.New("acme: issued certificate is not for our key")
	}
	for _, h := range m.o.Hostnames {
		if err := leaf.VerifyHostname(h); err != nil {
			return nil, fmt.Errorf("acme: issued certificate: %w", err)
		}
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// register makes sure the account exists (RFC 8555 §7.3), agreeing to
// the CA's terms of service.
func (m *Manager) register(ctx context.Context, cl *xacme.Client) error {
	acct := &xacme.Account{}
	if m.o.Email != "" {
		acct.Contact = []string{"mailto:" + m.o.Email}
	}
	_, err := cl.Register(ctx, acct, xacme.AcceptTOS)
	if err == nil || errors.Is(err, xacme.ErrAccountAlreadyExists) {
		return nil
	}
	return fmt.Errorf("acme: register account: %w", err)
}

// authorize answers one authorization of the order with the configured
// challenge and waits until the CA has validated it.
func (m *Manager) authorize(ctx context.Context, cl *xacme.Client, url string) error {
	z, err := cl.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("acme: authorization: %w", err)
	}
	if z.Status == xacme.StatusValid {
		return nil // reused (RFC 8555 §7.1.4)
	}
	host := z.Identifier.Value
	var chal *xacme.Challenge
	for _, c := range z.Challenges {
		if c.Type == string(m.o.Challenge) {
			chal = c
		}
	}
	if chal == nil {
		return fmt.Errorf("acme: authorization for %s: the CA offers no %s challenge", host, m.o.Challenge)
	}
	cleanup, err := m.present(ctx, cl, host, chal)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := cl.Accept(ctx, chal); err != nil {
		return fmt.Errorf("acme: accept %s challenge for %s: %w", m.o.Challenge, host, err)
	}
	if _, err := cl.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("acme: %s challenge for %s: %w", m.o.Challenge, host, err)
	}
	return nil
}
