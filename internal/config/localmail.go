package config

import (
	"path/filepath"
	"slices"
)

// Sendmail is [sendmail]: how `postern sendmail` treats the mail of
// local programs (cron, logwatch, unattended-upgrades, smartd, mdadm).
type Sendmail struct {
	// Domain qualifies the bare names local programs use ("root",
	// "www-data"): as recipients, as the sender (-f) and in the From,
	// To, Cc, Bcc, Reply-To and Sender fields. Default: the domain of
	// postmaster. A bare name that names no user or alias in it goes to
	// the postmaster.
	Domain string
}

// SRS is [srs]: the Sender Rewriting Scheme of forwarded mail. An alias
// whose target is in another domain forwards the message unchanged
// (its DKIM signatures stay valid), with the envelope sender rewritten
// to an address in a local domain, so that SPF passes at the
// destination; a bounce to that address goes back to the original
// sender.
type SRS struct {
	// SecretFile holds the secrets that sign the rewritten addresses,
	// one a line: the first signs, every one verifies (so a new secret
	// goes first, and the old one stays below it while addresses made
	// with it may come back). Default: DefaultSRSSecretFile, which serve
	// creates (32 random bytes, mode 0600) when it is missing.
	SecretFile string
	// Domain is the domain of the rewritten addresses; it must be a
	// local domain, and its SPF record must allow this server. ""
	// (default) means the domain of the alias that forwards.
	Domain string
	// MaxAgeDays is how many days a rewritten address stays valid for
	// bounces, from 1 to 1000.
	MaxAgeDays int
}

// DefaultSRSMaxAgeDays is srs.max_age_days, as postsrsd and Mail::SRS.
const DefaultSRSMaxAgeDays = 21

// DefaultSRSSecretFile is srs.secret_file when the file does not set it:
// DATA/srs.secret.
func (c *Config) DefaultSRSSecretFile() string { return filepath.Join(c.DataDir, "srs.secret") }

// deriveLocalMail fills the defaults of [sendmail] and [srs] that depend
// on other keys.
func (c *Config) deriveLocalMail() {
	if c.Sendmail.Domain == "" && checkAddress(c.Postmaster) == nil {
		c.Sendmail.Domain = domainOf(c.Postmaster)
	}
	if c.SRS.SecretFile == "" {
		c.SRS.SecretFile = c.DefaultSRSSecretFile()
	}
}

// localMail decodes [sendmail] and [srs].
func (d *decoder) localMail(tree map[string]any, dir string, c *Config) {
	if t := d.table(tree, "sendmail", "sendmail"); t != nil {
		d.unknown(t, []string{"sendmail"}, "domain")
		if d.str(t, "domain", "sendmail.domain", &c.Sendmail.Domain) {
			c.Sendmail.Domain = lower(c.Sendmail.Domain)
		}
	}
	if t := d.table(tree, "srs", "srs"); t != nil {
		d.unknown(t, []string{"srs"}, "secret_file", "domain", "max_age_days")
		d.path(t, "secret_file", "srs.secret_file", dir, &c.SRS.SecretFile)
		if d.str(t, "domain", "srs.domain", &c.SRS.Domain) {
			c.SRS.Domain = lower(c.SRS.Domain)
		}
		if n, ok := d.integer(t, "max_age_days", "srs.max_age_days", 1, 1000); ok {
			c.SRS.MaxAgeDays = int(n)
		}
	}
}

// validateLocalMail checks [sendmail] and [srs].
func (c *Config) validateLocalMail(p *problems) {
	if c.Sendmail.Domain != "" {
		if err := checkDNSName(c.Sendmail.Domain); err != nil {
			p.add("sendmail.domain", err)
		}
	}
	if c.SRS.Domain != "" {
		if err := checkDNSName(c.SRS.Domain); err != nil {
			p.add("srs.domain", err)
		} else if !slices.Contains(c.LocalDomains, c.SRS.Domain) {
			p.addf("srs.domain", "%q is not one of local_domains: bounces to rewritten senders must come back here", c.SRS.Domain)
		}
	}
	if c.SRS.MaxAgeDays < 1 || c.SRS.MaxAgeDays > 1000 {
		p.addf("srs.max_age_days", "must be from 1 to 1000 (the timestamp wraps after 1024 days)")
	}
}
