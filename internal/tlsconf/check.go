package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ProblemKind names what is wrong with a certificate.
type ProblemKind string

// The problems Check reports.
const (
	// ProblemMissingIntermediate: the file lacks an intermediate between
	// the leaf (or the last certificate) and a trusted root. Clients do
	// not fetch it themselves.
	ProblemMissingIntermediate ProblemKind = "missing-intermediate"
	// ProblemWrongOrder: the file holds the chain out of order (each
	// certificate must be followed by its issuer), or a certificate that
	// belongs to no chain.
	ProblemWrongOrder ProblemKind = "wrong-order"
	// ProblemExpired: a certificate of the chain is past its NotAfter.
	ProblemExpired ProblemKind = "expired"
	// ProblemNotYetValid: a certificate of the chain is before its
	// NotBefore.
	ProblemNotYetValid ProblemKind = "not-yet-valid"
	// ProblemWrongHostname: no certificate covers a configured host name.
	ProblemWrongHostname ProblemKind = "wrong-hostname"
	// ProblemKeyMismatch: the private key is not the leaf's.
	ProblemKeyMismatch ProblemKind = "key-mismatch"
	// ProblemSelfSigned: the leaf is self-signed and not trusted, outside
	// development mode.
	ProblemSelfSigned ProblemKind = "self-signed"
	// ProblemUnknownRoot: the chain leads to a root that is not trusted.
	ProblemUnknownRoot ProblemKind = "unknown-root"
	// ProblemUsage: the leaf is not for TLS servers (extended key usage).
	ProblemUsage ProblemKind = "usage"
	// ProblemInvalid: any other reason a client refuses the chain.
	ProblemInvalid ProblemKind = "invalid"
)

// Problem is one reason a client would refuse a certificate.
type Problem struct {
	// Kind is what is wrong, for programs.
	Kind ProblemKind
	// Cert says which certificate: the file (or Set name) and the
	// position, subject and serial within the chain.
	Cert string
	// Message says what is wrong, with the values involved.
	Message string
	// Fix says how to fix it.
	Fix string
}

// String returns "CERT: MESSAGE (fix: FIX)".
func (p Problem) String() string {
	return fmt.Sprintf("%s: %s (fix: %s)", p.Cert, p.Message, p.Fix)
}

// CheckOptions is what Check checks a certificate against.
type CheckOptions struct {
	// Roots are the trusted roots; nil means the system's.
	Roots *x509.CertPool
	// Hostnames are the names the certificate must cover (Postern's
	// host name and the names clients use).
	Hostnames []string
	// Now is the time of the check.
	Now time.Time
	// AllowSelfSigned accepts a self-signed leaf (development mode,
	// tls.self_signed): its trust is not checked, its dates, names and
	// key are.
	AllowSelfSigned bool
}

// Check checks cert as a client would and returns every problem found,
// or nil: the private key is the leaf's; each certificate of the chain
// is valid at opts.Now; the chain is in order (each certificate followed
// by its issuer) and complete up to a root in opts.Roots (a self-signed
// leaf is refused unless opts.AllowSelfSigned or it is itself a trusted
// root); the leaf is for server authentication; and it covers each of
// opts.Hostnames. cert.Leaf, when nil, is parsed from cert.Certificate[0].
func Check(cert *tls.Certificate, opts CheckOptions) []Problem {
	return checkOne(cert, "", opts)
}

// CheckSet checks several certificates served together, named by
// names (their files; same length as certs): each as Check does but for
// host names, and then that each of opts.Hostnames is covered by at
// least one of them.
func CheckSet(certs []*tls.Certificate, names []string, opts CheckOptions) []Problem {
	var out []Problem
	hosts := opts.Hostnames
	opts.Hostnames = nil
	var leaves []*x509.Certificate
	for i, c := range certs {
		ps := checkOne(c, names[i]+": ", opts)
		out = append(out, ps...)
		if len(c.Certificate) > 0 {
			if l, err := leafOf(c); err == nil {
				leaves = append(leaves, l)
			}
		}
	}
	for _, h := range hosts {
		covered := false
		var have []string
		for _, l := range leaves {
			if l.VerifyHostname(h) == nil {
				covered = true
				break
			}
			have = append(have, leafNames(l)...)
		}
		if !covered {
			out = append(out, Problem{
				Kind:    ProblemWrongHostname,
				Cert:    strings.Join(names, ", "),
				Message: fmt.Sprintf("no certificate covers host name %q; they cover %s", h, quoteList(have)),
				Fix:     fmt.Sprintf("get a certificate whose names (subject alternative names) include %q, or correct hostname in the configuration", h),
			})
		}
	}
	return out
}

func leafOf(c *tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	return x509.ParseCertificate(c.Certificate[0])
}

// checkOne checks one certificate chain and its key, as a client would
// see them: the key, the dates, the order, the trust, the host names.
func checkOne(cert *tls.Certificate, prefix string, opts CheckOptions) []Problem {
	if cert == nil || len(cert.Certificate) == 0 {
		return []Problem{{Kind: ProblemInvalid, Cert: strings.TrimSuffix(prefix, ": "), Message: "no certificate", Fix: "put the PEM certificate chain, leaf first, in the certificate file"}}
	}
	chain := make([]*x509.Certificate, len(cert.Certificate))
	for i, der := range cert.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			return []Problem{{Kind: ProblemInvalid, Cert: fmt.Sprintf("%scertificate %d", prefix, i+1), Message: err.Error(), Fix: "replace it with the PEM certificate your CA issued"}}
		}
		chain[i] = x
	}
	c := &chainCheck{chain: chain, prefix: prefix, opts: opts, now: opts.Now}
	if c.now.IsZero() {
		c.now = time.Now()
	}
	if c.checkKey(cert.PrivateKey) {
		return c.out // the leaf is not first: the rest would only repeat it
	}
	timeBad := c.checkDates()
	orderBad := c.checkOrder()
	verifyAt := c.now
	if timeBad {
		verifyAt = validTime(chain)
	}
	if !orderBad && !verifyAt.IsZero() {
		c.checkTrust(verifyAt, timeBad)
	}
	return append(c.out, hostProblems(chain[0], opts.Hostnames, c.label(0))...)
}

// chainCheck is one run of checkOne: the parsed chain, leaf first, and
// the problems found so far.
type chainCheck struct {
	chain  []*x509.Certificate
	prefix string
	opts   CheckOptions
	now    time.Time
	out    []Problem
}

// label names certificate i of the chain in a Problem.
func (c *chainCheck) label(i int) string {
	x := c.chain[i]
	role := "intermediate"
	switch {
	case !x.IsCA:
		role = "leaf"
	case isSelfSigned(x):
		role = "root"
	}
	return fmt.Sprintf("%scertificate %d of %d (%s %q, serial %s)", c.prefix, i+1, len(c.chain), role, subjectName(x), serialOf(x))
}

func (c *chainCheck) add(k ProblemKind, i int, msg, fix string) {
	c.out = append(c.out, Problem{Kind: k, Cert: c.label(i), Message: msg, Fix: fix})
}

// checkKey checks that key belongs to the leaf. It reports true when
// the leaf is in the chain but not first.
func (c *chainCheck) checkKey(key crypto.PrivateKey) (leafNotFirst bool) {
	s, ok := key.(crypto.Signer)
	if !ok {
		return false
	}
	pub, ok := s.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || pub.Equal(c.chain[0].PublicKey) {
		return false
	}
	if j := indexKey(c.chain, pub); j > 0 {
		c.add(ProblemWrongOrder, 0, fmt.Sprintf("the leaf (the certificate of the private key) is certificate %d, not the first", j+1),
			"put the leaf first in the certificate file, then its issuer, then that one's issuer")
		return true
	}
	msg, fix := "the private key does not belong to this certificate (its public key differs from the leaf's)",
		"use the key file generated with this certificate's request, or the certificate issued for this key"
	if s, ok := key.(fmt.Stringer); ok && IsKeyURI(s.String()) {
		// A key in a token (pkcs11.Key).
		msg = fmt.Sprintf("the key %s in the token does not belong to this certificate (its public key differs from the leaf's)", s)
		fix = "name the token's key this certificate was issued for (pkcs11-tool --list-objects shows labels and ids), or get a certificate for this key (a request signed in the token, e.g. openssl req -engine pkcs11 -keyform engine -key URI)"
	}
	c.add(ProblemKeyMismatch, 0, msg, fix)
	return false
}

// checkDates checks the validity period of every certificate (RFC 5280
// §4.1.2.5); it reports whether one is expired or not yet valid.
func (c *chainCheck) checkDates() (timeBad bool) {
	now := c.now
	for i, x := range c.chain {
		switch {
		case now.After(x.NotAfter):
			timeBad = true
			fix := "renew the certificate (or use ACME) and install the new one; Postern reloads on SIGHUP or when the file changes"
			if i > 0 {
				fix = "replace this intermediate in the certificate file with the current one from your CA"
			}
			c.add(ProblemExpired, i, fmt.Sprintf("expired on %s (%s ago)", x.NotAfter.UTC().Format(time.RFC3339), now.Sub(x.NotAfter).Round(time.Second)), fix)
		case now.Before(x.NotBefore):
			timeBad = true
			c.add(ProblemNotYetValid, i, fmt.Sprintf("not valid before %s (in %s)", x.NotBefore.UTC().Format(time.RFC3339), x.NotBefore.Sub(now).Round(time.Second)),
				"check the server clock (NTP), or keep the previous certificate until then")
		}
	}
	return timeBad
}

// checkOrder checks that each certificate is followed by its issuer,
// reporting the first place where it is not; it reports whether one was
// found.
func (c *chainCheck) checkOrder() (orderBad bool) {
	chain := c.chain
	for i := 1; i < len(chain); i++ {
		if signedBy(chain[i-1], chain[i]) {
			continue
		}
		if j := issuerIndex(chain, i-1); j >= 0 {
			c.add(ProblemWrongOrder, i, fmt.Sprintf("does not follow its subject: certificate %d (%q) is issued by certificate %d (%q), which should come right after it", i, subjectName(chain[i-1]), j+1, subjectName(chain[j])),
				"order the certificate file: leaf, then its issuer, then that one's issuer, up to the root")
		} else if !isSelfSigned(chain[i-1]) {
			c.add(ProblemMissingIntermediate, i-1, fmt.Sprintf("its issuer %q is not in the certificate file (certificate %d, %q, is not it)%s", chain[i-1].Issuer.String(), i+1, subjectName(chain[i]), aia(chain[i-1])),
				"insert the intermediate certificate that issued it, right after it (use your CA's full-chain file)")
		} else {
			c.add(ProblemWrongOrder, i, "follows a self-signed root: nothing may come after the root", "remove it, or the root, from the certificate file")
		}
		return true
	}
	return false
}

// checkTrust builds the chain as a client does, at verifyAt (a time at
// which every certificate is valid when timeBad), and says why it fails.
func (c *chainCheck) checkTrust(verifyAt time.Time, timeBad bool) {
	chain, n, leaf := c.chain, len(c.chain), c.chain[0]
	inter := x509.NewCertPool()
	for _, x := range chain[1:] {
		inter.AddCert(x)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: c.opts.Roots, Intermediates: inter, CurrentTime: verifyAt, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	ss := isSelfSigned(leaf)
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case err == nil:
	case ss && c.opts.AllowSelfSigned:
	case ss && errors.As(err, &ua):
		c.add(ProblemSelfSigned, 0, "is self-signed: no client trusts it",
			"use a certificate from a CA (ACME, or cert_file/key_file from your CA); tls.self_signed = true is for development only")
	case errors.As(err, &ua):
		c.unknownAuthority(chain[n-1], n-1)
	case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
		c.add(ProblemUsage, 0, "is not for TLS servers (its extended key usage lacks serverAuth)", "get a certificate issued for TLS server authentication")
	case errors.As(err, &ci) && ci.Reason == x509.Expired && timeBad:
	default:
		c.add(ProblemInvalid, 0, "a client refuses the chain: "+err.Error(), "get a certificate chain from your CA that verifies (openssl verify -untrusted chain.pem leaf.pem)")
	}
}

// unknownAuthority says why a chain ending at last (certificate i)
// leads to no trusted root: an untrusted root, a missing intermediate,
// or an issuer that is neither.
func (c *chainCheck) unknownAuthority(last *x509.Certificate, i int) {
	switch {
	case isSelfSigned(last):
		c.add(ProblemUnknownRoot, i, "the chain ends at this root, which is not trusted (not among the system roots or in tls.ca_file)",
			"use a certificate from a publicly trusted CA, or, for a private CA its clients trust, add its root to tls.ca_file")
	case !last.IsCA:
		c.add(ProblemMissingIntermediate, i, fmt.Sprintf("its issuer %q is not in the certificate file, and clients do not fetch it%s", last.Issuer.String(), aia(last)),
			"append the intermediate certificate(s) after the leaf in the certificate file (your CA's full-chain file, e.g. certbot's fullchain.pem)")
	default:
		c.add(ProblemUnknownRoot, i, fmt.Sprintf("the chain ends here, and its issuer %q is neither in the certificate file nor a trusted root%s", last.Issuer.String(), aia(last)),
			fmt.Sprintf("if %q is an intermediate, append it to the certificate file; if it is a root, it is not trusted: use a publicly trusted CA, or add it to tls.ca_file", last.Issuer.String()))
	}
}

func hostProblems(leaf *x509.Certificate, hosts []string, label string) []Problem {
	var out []Problem
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			out = append(out, Problem{Kind: ProblemWrongHostname, Cert: label,
				Message: fmt.Sprintf("does not cover host name %q: it covers %s", h, quoteList(leafNames(leaf))),
				Fix:     fmt.Sprintf("get a certificate whose names (subject alternative names) include %q, or correct hostname in the configuration", h)})
		}
	}
	return out
}

// validTime returns a time at which every certificate of chain is valid,
// or the zero time when there is none.
func validTime(chain []*x509.Certificate) time.Time {
	from, to := chain[0].NotBefore, chain[0].NotAfter
	for _, x := range chain[1:] {
		if x.NotBefore.After(from) {
			from = x.NotBefore
		}
		if x.NotAfter.Before(to) {
			to = x.NotAfter
		}
	}
	if from.After(to) {
		return time.Time{}
	}
	return from.Add(to.Sub(from) / 2)
}

// signedBy reports whether parent issued child.
func signedBy(child, parent *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) &&
		parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

func isSelfSigned(x *x509.Certificate) bool { return signedBy(x, x) }

// issuerIndex returns the index of the certificate in chain that issued
// chain[i], or -1.
func issuerIndex(chain []*x509.Certificate, i int) int {
	for j, x := range chain {
		if j != i && signedBy(chain[i], x) {
			return j
		}
	}
	return -1
}

// indexKey returns the index of the certificate in chain whose public
// key is pub, or -1.
func indexKey(chain []*x509.Certificate, pub interface{ Equal(crypto.PublicKey) bool }) int {
	for i, x := range chain {
		if pub.Equal(x.PublicKey) {
			return i
		}
	}
	return -1
}

func aia(x *x509.Certificate) string {
	if len(x.IssuingCertificateURL) == 0 {
		return ""
	}
	return fmt.Sprintf(" (the CA publishes it at %s)", strings.Join(x.IssuingCertificateURL, ", "))
}

func subjectName(x *x509.Certificate) string {
	if x.Subject.CommonName != "" {
		return x.Subject.CommonName
	}
	return x.Subject.String()
}

func serialOf(x *x509.Certificate) string {
	return fmt.Sprintf("%x", x.SerialNumber)
}

func quoteList(s []string) string {
	if len(s) == 0 {
		return "no DNS name"
	}
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
