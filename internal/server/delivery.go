package server

import (
	"crypto/x509"
	"fmt"
	"log/slog"

	"postern/internal/config"
	"postern/internal/delivery/policy"
	"postern/internal/delivery/remote"
	"postern/internal/dns"
	"postern/internal/forward"
	"postern/internal/srs"
	"postern/internal/tlsconf"
	"postern/internal/userdb"
)

// dnsCacheSize is how many answers the resolver keeps (no key sets it).
const dnsCacheSize = 10000

// NewResolver builds the DNS resolver delivery and mail authentication
// share, from the [dns] table.
func NewResolver(cfg *config.Config) (*dns.Client, error) {
	c := dnsConfig(cfg)
	c.CacheSize = dnsCacheSize
	return dns.New(c)
}

// newPlanner builds the delivery policy engine: MX routing with DANE,
// MTA-STS and the configured per-domain minimum. Every name it depends
// on, the MTA-STS policy hosts included, is looked up through res. It
// counts into met (nil: a set registered nowhere).
func newPlanner(cfg *config.Config, res dns.Resolver, log *slog.Logger, met *policy.Metrics) (*policy.Engine, error) {
	o, err := plannerOptions(cfg)
	if err != nil {
		return nil, err
	}
	if o.Roots, err = outboundRoots(cfg.Delivery.CAFile, "delivery.ca_file"); err != nil {
		return nil, err
	}
	o.Resolver, o.Logger, o.Metrics = res, log, met
	return policy.New(o), nil
}

// outboundRoots returns the system roots plus the PEM certificates of
// file (the configuration key named key), or nil (the system roots) when
// file is "".
func outboundRoots(file, key string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	return tlsconf.LoadPool(file, key, true)
}

// newRemote builds the outbound SMTP client: MX delivery by the policy
// engine's plans, or a smarthost (its password in sec).
func newRemote(cfg *config.Config, sec config.Secrets, planner policy.Planner, log *slog.Logger) (*remote.Deliverer, error) {
	d := &remote.Deliverer{Hostname: cfg.Hostname, Planner: planner, Pool: poolOptions(cfg), Logger: log}
	if sh := smarthostOf(cfg, sec); sh != nil {
		file, key := cfg.Smarthost.CAFile, "smarthost.ca_file"
		if file == "" {
			file, key = cfg.Delivery.CAFile, "delivery.ca_file"
		}
		roots, err := outboundRoots(file, key)
		if err != nil {
			return nil, err
		}
		sh.RootCAs = roots
		d.Smarthost = sh
	}
	return d, nil
}

// newForwarder reads the SRS secrets (srs.secret_file, by default
// DATA/srs.secret, which it creates when missing) and returns the
// forwarder of aliases to other domains (internal/forward).
func newForwarder(cfg *config.Config, dir *userdb.Directory, log *slog.Logger) (*forward.Forwarder, error) {
	if cfg.SRS.SecretFile == cfg.DefaultSRSSecretFile() {
		if err := forward.CreateSecretFile(cfg.SRS.SecretFile); err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	list, err := cfg.SRSSecrets() // one a line, as every secret file is read
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	secrets := make([][]byte, len(list))
	for i, s := range list {
		secrets[i] = []byte(s)
	}
	rw, err := srs.New(secrets, srsOptions(cfg))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return forward.New(forward.Options{Directory: dir, SRS: rw, Domain: cfg.SRS.Domain, Logger: log}), nil
}
