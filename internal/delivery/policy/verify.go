package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"postern/internal/dns"
)

// TLSA certificate usages, selectors and matching types (RFC 6698 §2.1,
// RFC 7218).
const (
	usageDANETA   = 2
	usageDANEEE   = 3
	selectorCert  = 0
	selectorSPKI  = 1
	matchExact    = 0
	matchSHA256   = 1
	matchSHA512   = 2
	tlsaBaseLabel = "_25._tcp."
)

// usableTLSA returns the records an SMTP client may use. RFC 7672 §3.1:
// only DANE-TA(2) and DANE-EE(3); PKIX-TA(0) and PKIX-EE(1) are unusable
// in SMTP (§3.1.3), as are unknown selectors and matching types and
// digests of the wrong length.
func usableTLSA(recs []dns.TLSA) []dns.TLSA {
	var out []dns.TLSA
	for _, r := range recs {
		if r.Usage != usageDANETA && r.Usage != usageDANEEE {
			continue
		}
		if r.Selector != selectorCert && r.Selector != selectorSPKI {
			continue
		}
		switch {
		case r.MatchingType == matchExact && len(r.Data) > 0,
			r.MatchingType == matchSHA256 && len(r.Data) == sha256.Size,
			r.MatchingType == matchSHA512 && len(r.Data) == sha512.Size:
			out = append(out, r)
		}
	}
	return out
}

// tlsaMatches reports whether r matches cert (RFC 6698 §2.1.2, §2.1.3).
func tlsaMatches(r dns.TLSA, cert *x509.Certificate) bool {
	var data []byte
	switch r.Selector {
	case selectorCert:
		data = cert.Raw
	case selectorSPKI:
		data = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case matchExact:
		return bytes.Equal(data, r.Data)
	case matchSHA256:
		sum := sha256.Sum256(data)
		return bytes.Equal(sum[:], r.Data)
	case matchSHA512:
		sum := sha512.Sum512(data)
		return bytes.Equal(sum[:], r.Data)
	}
	return false
}

// peerChain returns the certificates of an established connection.
func peerChain(host string, cs tls.ConnectionState) ([]*x509.Certificate, error) {
	if !cs.HandshakeComplete {
		return nil, fmt.Errorf("policy: %s: TLS handshake not complete", host)
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, fmt.Errorf("policy: %s: server presented no certificate", host)
	}
	return cs.PeerCertificates, nil
}

// daneVerifier checks a connection to host against its usable TLSA
// records (RFC 7672 §3.1). DANE-EE(3): the leaf certificate or its public
// key matches; names and dates are not checked (§3.1.1). DANE-TA(2): a
// certificate of the presented chain matches, the leaf chains to it, and
// the leaf names the MX host or the recipient domain (§3.1.2, §3.2.2).
func daneVerifier(host, domain string, recs []dns.TLSA, now func() time.Time) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		chain, err := peerChain(host, cs)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Usage == usageDANEEE && tlsaMatches(r, chain[0]) {
				return nil
			}
		}
		var taErr error
		for _, r := range recs {
			if r.Usage != usageDANETA {
				continue
			}
			for i, c := range chain {
				if !tlsaMatches(r, c) {
					continue
				}
				if err := verifyToAnchor(chain, i, []string{host, domain}, now()); err != nil {
					taErr = err
					continue
				}
				return nil
			}
		}
		if taErr != nil {
			return fmt.Errorf("policy: %s: DANE: certificate chain does not verify to the TLSA trust anchor: %w", host, taErr)
		}
		return fmt.Errorf("policy: %s: DANE: no TLSA record at %s%s matches the certificate chain", host, tlsaBaseLabel, host)
	}
}

// verifyToAnchor checks that chain[0] chains to chain[anchor] and names
// one of names.
func verifyToAnchor(chain []*x509.Certificate, anchor int, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(chain[anchor])
	inter := x509.NewCertPool()
	for _, c := range chain[1:anchor] {
		inter.AddCert(c)
	}
	leaf := chain[0]
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		err := leaf.VerifyHostname(n)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// webPKIVerifier checks that a connection to host presents a chain to
// the Engine's roots (nil: the system roots) valid now for the name host.
// RFC 8461 §4.1: the MX host name must match the certificate.
func (e *Engine) webPKIVerifier(host string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		chain, err := peerChain(host, cs)
		if err != nil {
			return err
		}
		now := e.now()
		key := verifiedKey{host: host, chain: chainSum(chain)}
		if e.verified.valid(key, now) {
			return nil
		}
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		chains, err := chain[0].Verify(x509.VerifyOptions{
			DNSName:       host,
			Roots:         e.opts.Roots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return fmt.Errorf("policy: %s: certificate not trusted for this name: %w", host, err)
		}
		e.verified.add(key, chains[0])
		return nil
	}
}

// maxVerified bounds the verifiedCache.
const maxVerified = 1024

// verifiedKey names one WebPKI verification: the host name and the
// SHA-256 of the chain presented.
type verifiedKey struct {
	host  string
	chain [sha256.Size]byte
}

// validity is when a verified chain stays valid.
type validity struct{ notBefore, notAfter time.Time }

// verifiedCache remembers the chains a WebPKI check accepted, with the
// time span in which every certificate of the verified chain is valid,
// so that the same chain for the same name is not verified again while
// that lasts: a pooled session is checked again before each message
// (package remote), and a chain verification costs about 200 µs where a
// look-up here costs about 2 µs. The roots are the Engine's and do not
// change; refusals are not remembered. Safe for concurrent use.
type verifiedCache struct {
	mu sync.Mutex
	m  map[verifiedKey]validity
}

// valid reports whether k was verified and its chain is valid at now.
func (c *verifiedCache) valid(k verifiedKey, now time.Time) bool {
	c.mu.Lock()
	v, ok := c.m[k]
	c.mu.Unlock()
	return ok && !now.Before(v.notBefore) && !now.After(v.notAfter)
}

// add records that k verified to chain.
func (c *verifiedCache) add(k verifiedKey, chain []*x509.Certificate) {
	v := validity{notBefore: chain[0].NotBefore, notAfter: chain[0].NotAfter}
	for _, cert := range chain[1:] {
		if cert.NotBefore.After(v.notBefore) {
			v.notBefore = cert.NotBefore
		}
		if cert.NotAfter.Before(v.notAfter) {
			v.notAfter = cert.NotAfter
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerified {
		c.m = make(map[verifiedKey]validity) // start over: a bound, not an LRU
	}
	c.m[k] = v
}

// chainSum is the SHA-256 of the certificates of chain, each preceded by
// its length.
func chainSum(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	for _, c := range chain {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
