package config

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ACME challenge types (RFC 8555 §8.3, §8.4; RFC 8737).
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	ChallengeDNS01     = "dns-01"
)

// Defaults of the [acme] table.
const (
	// DefaultACMEDirectory is acme.directory_url: Let's Encrypt's
	// production directory.
	DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
	// DefaultACMEHTTPAddress is acme.http_address, where HTTP-01
	// challenges are answered (RFC 8555 §8.3: port 80).
	DefaultACMEHTTPAddress = ":80"
	// DefaultACMETLSALPNAddress is acme.tls_alpn_address, where
	// TLS-ALPN-01 challenges are answered (RFC 8737 §3: port 443).
	DefaultACMETLSALPNAddress = ":443"
	// DefaultACMERenewBefore is acme.renew_before: 30 days.
	DefaultACMERenewBefore = 30 * 24 * time.Hour
)

// ACME is the [acme] table: certificates obtained and renewed from an
// ACME certificate authority (RFC 8555). Enabled is false when the file
// has no [acme] table; the other fields then keep their zero values.
type ACME struct {
	// Enabled is true when the [acme] table is present.
	Enabled bool
	// DirectoryURL is the https URL of the CA's directory.
	DirectoryURL string
	// Email is the account's contact address; "" registers without one.
	Email string
	// Challenge is ChallengeHTTP01, ChallengeTLSALPN01 or ChallengeDNS01.
	Challenge string
	// HTTPAddress is host:port of the HTTP-01 responder.
	HTTPAddress string
	// TLSALPNAddress is host:port of the TLS-ALPN-01 responder.
	TLSALPNAddress string
	// DNSHook is the command that publishes DNS-01 records: it is run
	// as `HOOK add NAME VALUE` and `HOOK remove NAME VALUE`.
	DNSHook string
	// CARootsFile is a PEM file of roots trusted for the connection to
	// the directory, in addition to the system roots; "" means the
	// system roots only.
	CARootsFile string
	// RenewBefore is how long before expiry a certificate is renewed.
	RenewBefore time.Duration
	// Hostnames are the names the certificate covers, lower case; the
	// default is [Hostname].
	Hostnames []string
}

// ACMEDir is where ACME state lives: DataDir/acme.
func (c *Config) ACMEDir() string { return filepath.Join(c.DataDir, "acme") }

// Check is the [check] table: what `postern check` compares the DNS with.
type Check struct {
	// PublicAddresses are the server's public IP addresses: their PTR
	// must name Hostname, and SPF must allow them.
	PublicAddresses []netip.Addr
}

// acme decodes the [acme] table into c.ACME. With [acme], the [tls]
// table may name no certificate file: ACME supplies the certificate.
func (d *decoder) acme(t map[string]any, dir string, c *Config) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"acme"}, "directory_url", "email", "challenge", "http_address",
		"tls_alpn_address", "dns_hook", "ca_roots_file", "renew_before", "hostnames")
	a := ACME{
		Enabled:        true,
		DirectoryURL:   DefaultACMEDirectory,
		Challenge:      ChallengeHTTP01,
		HTTPAddress:    DefaultACMEHTTPAddress,
		TLSALPNAddress: DefaultACMETLSALPNAddress,
		RenewBefore:    DefaultACMERenewBefore,
	}
	d.str(t, "directory_url", "acme.directory_url", &a.DirectoryURL)
	d.str(t, "email", "acme.email", &a.Email)
	if d.str(t, "challenge", "acme.challenge", &a.Challenge) {
		a.Challenge = lower(a.Challenge)
	}
	d.str(t, "http_address", "acme.http_address", &a.HTTPAddress)
	d.str(t, "tls_alpn_address", "acme.tls_alpn_address", &a.TLSALPNAddress)
	d.path(t, "dns_hook", "acme.dns_hook", dir, &a.DNSHook)
	d.path(t, "ca_roots_file", "acme.ca_roots_file", dir, &a.CARootsFile)
	if du, ok := d.duration(t, "renew_before", "acme.renew_before"); ok {
		a.RenewBefore = du
	}
	if d.strs(t, "hostnames", "acme.hostnames", &a.Hostnames) {
		for i, h := range a.Hostnames {
			a.Hostnames[i] = lower(strings.TrimSuffix(h, "."))
		}
	} else if c.Hostname != "" {
		d.bad["acme.hostnames"] = true // derived from hostname
		a.Hostnames = []string{c.Hostname}
	}
	c.ACME = a
}

// check decodes the [check] table into c.Check.
func (d *decoder) check(t map[string]any, c *Check) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"check"}, "public_addresses")
	var addrs []string
	if !d.strs(t, "public_addresses", "check.public_addresses", &addrs) {
		return
	}
	for i, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			d.fail(fmt.Sprintf("check.public_addresses[%d]", i), "%q is not an IP address", s)
			continue
		}
		c.PublicAddresses = append(c.PublicAddresses, a.Unmap())
	}
}

// validateACME checks the [acme] table.
func (c *Config) validateACME(p *problems) {
	a := c.ACME
	if !a.Enabled {
		return
	}
	if !strings.HasPrefix(a.DirectoryURL, "https://") {
		p.addf("acme.directory_url", "%q is not an https URL", a.DirectoryURL)
	}
	if a.Email != "" {
		if err := checkAddress(a.Email); err != nil {
			p.add("acme.email", err)
		}
	}
	switch a.Challenge {
	case ChallengeHTTP01:
		if err := checkListenAddress(a.HTTPAddress); err != nil {
			p.add("acme.http_address", err)
		} else if a.HTTPAddress == c.HTTP.Address {
			p.addf("acme.http_address", "%q is already http.address", a.HTTPAddress)
		}
	case ChallengeTLSALPN01:
		if err := checkListenAddress(a.TLSALPNAddress); err != nil {
			p.add("acme.tls_alpn_address", err)
		} else if slices.ContainsFunc(c.Listeners, func(l Listener) bool { return l.Address == a.TLSALPNAddress }) {
			p.addf("acme.tls_alpn_address", "%q is already the address of a listener", a.TLSALPNAddress)
		}
	case ChallengeDNS01:
		if a.DNSHook == "" {
			p.addf("acme.dns_hook", "is required with challenge = \"dns-01\" (a command run as HOOK add|remove NAME VALUE)")
		}
	default:
		p.addf("acme.challenge", "%q is not http-01, tls-alpn-01 or dns-01", a.Challenge)
	}
	if a.RenewBefore <= 0 {
		p.addf("acme.renew_before", "must be greater than 0")
	}
	if len(a.Hostnames) == 0 {
		p.addf("acme.hostnames", "must name at least one host")
	}
	for i, h := range a.Hostnames {
		k := fmt.Sprintf("acme.hostnames[%d]", i)
		if err := checkDNSName(h); err != nil {
			p.add(k, err)
		} else if j := slices.Index(a.Hostnames, h); j < i {
			p.addf(k, "%q is listed twice", h)
		}
	}
}
