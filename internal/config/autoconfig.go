package config

import (
	"math"
	"slices"
)

// Defaults of the [autoconfig] table.
const (
	// DefaultAutoconfigAddress is autoconfig.address: clients fetch
	// https://autoconfig.DOMAIN/ and https://autodiscover.DOMAIN/ on 443.
	DefaultAutoconfigAddress = ":443"
	// DefaultIMAPPort is autoconfig.imap_port: IMAP with implicit TLS
	// (RFC 8314 §3.3).
	DefaultIMAPPort = 993
)

// Autoconfig is the [autoconfig] table: an HTTPS listener that serves
// mail clients their settings (Mozilla autoconfig, Microsoft
// Autodiscover, an Apple profile; internal/autoconfig). Enabled is false
// when the file has no [autoconfig] table.
type Autoconfig struct {
	// Enabled is true when the [autoconfig] table is present.
	Enabled bool
	// Address is host:port of the HTTPS listener.
	Address string
	// IMAPHost is the IMAP server clients read mail from (Postern has
	// none); "" names none.
	IMAPHost string
	// IMAPPort is its port, with implicit TLS.
	IMAPPort int
	// ACMENames adds autoconfig.DOMAIN and autodiscover.DOMAIN of every
	// local domain to [acme] hostnames, so that the certificate ACME
	// obtains covers them; default true.
	ACMENames bool
}

// AutoconfigNames returns the host names clients fetch their settings
// from for domain: autoconfig.DOMAIN (Mozilla, Apple) and
// autodiscover.DOMAIN (Microsoft).
func AutoconfigNames(domain string) []string {
	return []string{"autoconfig." + domain, "autodiscover." + domain}
}

// autoconfig decodes the [autoconfig] table.
func (d *decoder) autoconfig(t map[string]any, a *Autoconfig) {
	if t == nil {
		return
	}
	d.unknown(t, []string{"autoconfig"}, "address", "imap_host", "imap_port", "acme_names")
	*a = Autoconfig{Enabled: true, Address: DefaultAutoconfigAddress, IMAPPort: DefaultIMAPPort, ACMENames: true}
	d.str(t, "address", "autoconfig.address", &a.Address)
	if d.str(t, "imap_host", "autoconfig.imap_host", &a.IMAPHost) {
		a.IMAPHost = lower(a.IMAPHost)
	}
	if n, ok := d.integer(t, "imap_port", "autoconfig.imap_port", 1, math.MaxUint16); ok {
		a.IMAPPort = int(n)
	}
	d.boolean(t, "acme_names", "autoconfig.acme_names", &a.ACMENames)
}

// deriveAutoconfigNames adds the autoconfig names of every local domain
// to [acme] hostnames when both tables are on and acme_names is true.
func (c *Config) deriveAutoconfigNames() {
	if !c.ACME.Enabled || !c.Autoconfig.Enabled || !c.Autoconfig.ACMENames {
		return
	}
	for _, d := range c.LocalDomains {
		for _, n := range AutoconfigNames(d) {
			if !slices.Contains(c.ACME.Hostnames, n) {
				c.ACME.Hostnames = append(c.ACME.Hostnames, n)
			}
		}
	}
}

// validateAutoconfig checks [autoconfig].
func (c *Config) validateAutoconfig(p *problems) {
	a := c.Autoconfig
	if !a.Enabled {
		return
	}
	if err := checkListenAddress(a.Address); err != nil {
		p.add("autoconfig.address", err)
	} else {
		taken := map[string]string{c.HTTP.Address: "http.address", c.Admin.HTTPAddress: "admin.http_address"}
		if c.ACME.Enabled {
			taken[c.ACME.HTTPAddress] = "acme.http_address"
			if c.ACME.Challenge == ChallengeTLSALPN01 {
				taken[c.ACME.TLSALPNAddress] = "acme.tls_alpn_address"
			}
		}
		for _, l := range c.Listeners {
			taken[l.Address] = "the address of listener " + l.Name
		}
		if what, ok := taken[a.Address]; ok && a.Address != "" {
			p.addf("autoconfig.address", "%q is already %s", a.Address, what)
		}
	}
	if !slices.ContainsFunc(c.Listeners, func(l Listener) bool { return l.Role == RoleSubmission || l.Role == RoleSubmissions }) {
		p.addf("autoconfig", "needs a submission or submissions listener to name")
	}
	if a.IMAPHost != "" {
		if err := checkDNSName(a.IMAPHost); err != nil {
			p.add("autoconfig.imap_host", err)
		}
	}
}
